"""A loop that claims due rows and works on them concurrently, the rows holding the state.

The connector dispatcher and webhook delivery share this shape: claim what is due (with a
lease, so a worker that dies leaves its claims to lapse), start each piece of work as a task,
go round again at once while there may be more, otherwise wait until woken or the poll
interval passes. At start a worker releases its own claims from before a restart (all of
them when it is the only worker there is, as on the embedded profile); at close it stops
claiming and lets the work in flight finish, bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Unavailable
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger

log = get_logger(__name__)


class ClaimLoop(ABC):
    """Subclasses say how to release claims, what one round does, and how long work may take."""

    name: str

    def __init__(
        self, *, node_id: str, poll_interval_s: float, release_all_claims_on_start: bool, clock: Clock = system_clock
    ) -> None:
        self._clock = clock
        self._node_id = node_id
        self._poll_interval_s = poll_interval_s
        self._release_all = release_all_claims_on_start
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    @abstractmethod
    async def _release(self, *, claimer: str | None, now: datetime) -> int:
        """Makes claims due again: this node's (``claimer``), or every one (None)."""

    @abstractmethod
    async def _round(self) -> bool:
        """Claims and starts what is due; True if more may be due right now."""

    @abstractmethod
    def _work_timeout_s(self) -> float:
        """How long work in flight may still take at close."""

    def wake(self) -> None:
        """New work is due (or a slot came free)."""
        self._wake.set()

    async def start(self) -> None:
        released = await self._release(claimer=None if self._release_all else self._node_id, now=self._clock())
        if released:
            log.info("work claimed before a restart is due again", worker=self.name, count=released)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        """Stops claiming, lets the work in flight finish (bounded by its timeout), then stops."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:
            _, late = await asyncio.wait(self._in_flight, timeout=self._work_timeout_s() + 1)
            for task in late:  # their claims lapse, or are released at the next start
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def ping(self) -> None:
        if self._task is None or self._task.done():
            raise Unavailable(f"{self.name} is not running")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            more = False
            try:
                more = await self._round()
            except Exception:
                metrics.WORKER_ERRORS.labels(self.name).inc()
                log.exception("round failed; retrying", worker=self.name)
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    def _start(
        self, work: Coroutine[Any, Any, None], *, done: Callable[[], None] | None = None, **context: Any
    ) -> None:
        """Runs ``work`` as a task of its own. A failure is logged with ``context`` and its claim
        lapses after the lease (the work is tried again); ``done`` runs in any case, and the
        loop is woken: a slot is free, and the next item of the same subject may be due."""
        task = asyncio.create_task(self._guarded(work, done, context))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _guarded(
        self, work: Coroutine[Any, Any, None], done: Callable[[], None] | None, context: dict[str, Any]
    ) -> None:
        try:
            await work
        except Exception:
            metrics.WORKER_ERRORS.labels(self.name).inc()
            log.exception("work failed; its claim lapses and it is tried again", worker=self.name, **context)
        finally:
            if done is not None:
                done()
            self._wake.set()
