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
process stored them, or a retry came due) it polls every ``poll_interval_s``. Claims, restarts
and closing are those of every ``ClaimLoop`` (``workers/claim_loop.py``).
"""

from __future__ import annotations

from datetime import datetime

from chat4all.connectors.hub import ConnectorHub, LiveConnector
from chat4all.domain.ids import utcnow
from chat4all.ports import ClaimedDelivery, DeliveryQueue
from chat4all.services.connector_dispatch import ConnectorSender
from chat4all.workers.claim_loop import ClaimLoop

REJECT_BATCH = 100


class ConnectorDispatcher(ClaimLoop):
    """Started and stopped by the runtime; ``wake()`` says new external deliveries are due."""

    name = "connector-dispatch"

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        hub: ConnectorHub,
        dispatch: ConnectorSender,
        node_id: str,
        poll_interval_s: float,
        lease_s: float,
        release_all_claims_on_start: bool = False,
    ) -> None:
        super().__init__(
            node_id=node_id, poll_interval_s=poll_interval_s, release_all_claims_on_start=release_all_claims_on_start
        )
        self._queue = queue
        self._hub = hub
        self._dispatch = dispatch
        self._lease_s = lease_s

    async def _release(self, *, claimer: str | None, now: datetime) -> int:
        return await self._queue.release(claimer=claimer, now=now)

    def _work_timeout_s(self) -> float:
        return max((c.limits.send_timeout_s for c in self._hub.configs()), default=10.0)

    async def _round(self) -> bool:
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
                self._send(live, delivery)
            more = more or len(claimed) == free
        orphans = sorted(due - enabled)
        if orphans:
            claimed = await self._queue.claim(
                now=now, limit=REJECT_BATCH, claimer=self._node_id, lease_s=self._lease_s, channels=orphans
            )
            for delivery in claimed:
                self._start(self._reject(delivery), message_id=delivery.key.message_id, channel=delivery.key.channel)
            more = more or len(claimed) == REJECT_BATCH
        return more

    def _lease_for(self, live: LiveConnector) -> float:
        # long enough that a send in progress (bounded by its timeout) never loses its claim
        return max(self._lease_s, 2 * live.config.limits.send_timeout_s + 5)

    async def _reject(self, delivery: ClaimedDelivery) -> None:
        await self._dispatch.reject(delivery, self._hub.unavailable_reason(delivery.key.channel))

    def _send(self, live: LiveConnector, delivery: ClaimedDelivery) -> None:
        live.in_flight += 1  # counted from the claim, so the next round sees the slot taken

        def free_slot() -> None:
            live.in_flight -= 1

        self._start(
            self._dispatch.deliver(delivery, live),
            done=free_slot,
            message_id=delivery.key.message_id,
            channel=delivery.key.channel,
        )
