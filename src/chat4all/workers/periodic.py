"""A task that runs every few seconds in the background (e.g. dropping abandoned uploads).

A failing run is logged and the next one happens on schedule; stopping waits for the run in
progress, never interrupting it halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from chat4all.observability.logging import get_logger

log = get_logger(__name__)


class PeriodicTask:
    def __init__(self, name: str, action: Callable[[], Awaitable[Any]], *, interval_s: float) -> None:
        self.name = name
        self._action = action
        self._interval_s = interval_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"periodic-{self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._action()
            except Exception:
                log.exception("periodic task failed; it runs again on schedule", task=self.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self._interval_s)
