"""Relays the status outbox to the event log (``adapters/sql/status_outbox.py``).

Runs in every process that changes statuses. Woken in-process right after a commit that wrote
events (so the log sees them within milliseconds), otherwise it looks every ``poll_interval_s``
(events written by another process whose relay is gone, or left by a crash). Each pass appends
up to ``batch_size`` events with one ``append_many`` and deletes them, and repeats while a pass
was full.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from chat4all.adapters.sql.status_outbox import SqlStatusOutbox
from chat4all.domain.errors import Unavailable
from chat4all.domain.events import StatusEvent
from chat4all.observability.logging import get_logger
from chat4all.ports import EventLog

log = get_logger(__name__)


class OutboxRelay:
    def __init__(
        self, outbox: SqlStatusOutbox, log: EventLog, *, poll_interval_s: float = 1.0, batch_size: int = 1000
    ) -> None:
        self._outbox = outbox
        self._log = log
        self._poll = poll_interval_s
        self._batch = batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def drain(self) -> int:
        """Relays until the outbox is empty (or another process's relay holds it); how many."""
        total = 0
        while True:
            n = await self._outbox.relay(self._publish, limit=self._batch)
            total += n
            if n < self._batch:
                return total

    async def _publish(self, events: Sequence[tuple[str, bytes]]) -> None:
        await self._log.append_many(StatusEvent.topic, events)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # what is left waits in the outbox for the next start
            await self.drain()

    async def ping(self) -> None:
        if self._task is not None and self._task.done():
            raise Unavailable("the outbox relay stopped")

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
            self._wake.clear()
            try:
                await self.drain()
            except Exception:  # the log or the database is down: the rows wait, the next pass retries
                log.exception("relaying status events failed; retrying")
                await asyncio.sleep(min(self._poll, 1.0))
