"""The connector dispatcher: its own loop, beside the router's (R9.4), that sends the due
external deliveries through their connectors.

Each round it asks which channels have due deliveries, then claims for each enabled channel
at most as many as that channel has free slots (``limits.max_in_flight``), so a slow or broken
provider fills only its own slots and never holds up another channel — nor the router, which
only stores rows and wakes this loop. Claimed deliveries go out concurrently, across channels
and recipients; per (recipient, channel, conversation) the queue hands out only the lowest
pending sequence number, so order holds across retries and dispatchers. Deliveries of a
channel with no enabled connector fail at once, with the reason.

The router wakes the loop in-process when it stores external deliveries; otherwise (another
process stored them, or a retry came due) it polls every ``poll_interval_s``. At start it
releases its own claims (all of them on SQLite, where it is alone); others lapse after the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from chat4all.connectors.hub import ConnectorHub, LiveConnector
from chat4all.domain.errors import Unavailable
from chat4all.domain.ids import utcnow
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.ports import ClaimedDelivery, DeliveryQueue
from chat4all.services.connector_dispatch import ConnectorDispatch

log = get_logger(__name__)
NAME = "connector-dispatch"
REJECT_BATCH = 100


class ConnectorDispatcher:
    """Started and stopped by the runtime; ``wake()`` says new external deliveries are due."""

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        hub: ConnectorHub,
        dispatch: ConnectorDispatch,
        node_id: str,
        poll_interval_s: float,
        lease_s: float,
        release_all_claims_on_start: bool = False,
    ) -> None:
        self._queue = queue
        self._hub = hub
        self._dispatch = dispatch
        self._node_id = node_id
        self._poll_interval_s = poll_interval_s
        self._lease_s = lease_s
        self._release_all = release_all_claims_on_start
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        released = await self._queue.release(claimer=None if self._release_all else self._node_id, now=utcnow())
        if released:
            log.info("external deliveries held before a restart are due again", count=released)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=NAME)

    async def close(self) -> None:
        """Stops claiming, lets the sends in flight finish (bounded by their timeout), then stops."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:
            timeout = max((c.limits.send_timeout_s for c in self._hub.configs()), default=10.0) + 1
            _, late = await asyncio.wait(self._in_flight, timeout=timeout)
            for task in late:  # their claims lapse, or are released at the next start
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    async def ping(self) -> None:
        if self._task is None or self._task.done():
            raise Unavailable("the connector dispatcher is not running")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            more = False
            try:
                more = await self._round()
            except Exception:
                metrics.WORKER_ERRORS.labels(NAME).inc()
                log.exception("connector dispatch round failed; retrying")
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_interval_s)

    async def _round(self) -> bool:
        """Claims and starts what is due; True if a channel may have more due right now."""
        now = utcnow()
        due = await self._queue.due_channels(now=now)
        if not due:
            return False
        more = False
        enabled = set(self._hub.enabled_channels())
        for channel in sorted(due & enabled):
            live = self._hub.get(channel)
            if live is None or live.free_slots == 0:
                continue
            free = live.free_slots
            claimed = await self._queue.claim(
                now=now, limit=free, claimer=self._node_id, lease_s=self._lease_for(live), channels=[channel]
            )
            for delivery in claimed:
                self._start(live, self._dispatch.deliver(delivery, live))
            more = more or len(claimed) == free
        orphans = sorted(due - enabled)
        if orphans:
            claimed = await self._queue.claim(
                now=now, limit=REJECT_BATCH, claimer=self._node_id, lease_s=self._lease_s, channels=orphans
            )
            for delivery in claimed:
                self._start(None, self._reject(delivery))
            more = more or len(claimed) == REJECT_BATCH
        return more

    def _lease_for(self, live: LiveConnector) -> float:
        # long enough that a send in progress (bounded by its timeout) never loses its claim
        return max(self._lease_s, 2 * live.config.limits.send_timeout_s + 5)

    async def _reject(self, delivery: ClaimedDelivery) -> None:
        await self._dispatch.reject(delivery, self._hub.unavailable_reason(delivery.key.channel))

    def _start(self, live: LiveConnector | None, work: Coroutine[Any, Any, None]) -> None:
        if live is not None:
            live.in_flight += 1  # counted from the claim, so the next round sees the slot taken
        task = asyncio.create_task(self._guarded(live, work))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _guarded(self, live: LiveConnector | None, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except Exception:
            # the claim lapses after the lease and the delivery is tried again
            metrics.WORKER_ERRORS.labels(NAME).inc()
            log.exception("external delivery could not be recorded")
        finally:
            if live is not None:
                live.in_flight -= 1
            self._wake.set()  # a slot is free, and the next message of this recipient may be due
