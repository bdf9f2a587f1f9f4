"""Fixtures for the unit tests: pure code, no servers."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No ``CHAT4ALL_*`` variable from the caller's shell leaks into the test (e.g. after
    ``eval "$(scripts/services.sh env)"``); the test sets what it needs on the returned patcher."""
    for name in list(os.environ):
        if name.startswith("CHAT4ALL_"):
            monkeypatch.delenv(name)
    return monkeypatch
