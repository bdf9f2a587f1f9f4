"""Shared by the ops tests: the metric names Chat4All exports, and the test Prometheus."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.conftest import server_missing

PROMETHEUS_URL_ENV = "CHAT4ALL_TEST_PROMETHEUS_URL"
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}


def exported_metric_names() -> set[str]:
    """Every sample name a Chat4All node's /metrics can carry: its own metrics and the process
    and runtime collectors of prometheus_client, with their type's suffixes."""
    import chat4all.observability.metrics  # noqa: F401  (registers them)

    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    return names


@pytest.fixture
async def prometheus() -> AsyncIterator[httpx.AsyncClient]:
    """The Prometheus of scripts/services.sh (skipped without it, failed in CI)."""
    url = os.environ.get(PROMETHEUS_URL_ENV)
    if not url:
        message = f"{PROMETHEUS_URL_ENV} is not set; run `scripts/services.sh up prometheus`"
        server_missing(message)
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        yield client
