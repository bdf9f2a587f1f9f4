"""Crash injection for tests: ``CHAT4ALL_FAILPOINTS=name[,name]`` makes the process kill itself
(SIGKILL: no cleanup, no flush) when it reaches a named point. Unset, a check is one set lookup."""

from __future__ import annotations

import os
import signal

_ARMED = frozenset(p.strip() for p in os.environ.get("CHAT4ALL_FAILPOINTS", "").split(",") if p.strip())


def hit(name: str) -> None:
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
