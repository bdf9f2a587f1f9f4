"""The one place where a delivery's status moves (R6).

Forward only: the store's guarded update ignores late and repeated receipts. Every change is
recorded in the history and, in the same transaction, in the status outbox (the store writes
both); the outbox relay appends the StatusEvents to the log. The sender's sockets are shown a
status frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chat4all.domain.errors import Unavailable
from chat4all.domain.frames import status_frame, v2_copy
from chat4all.domain.ids import utcnow
from chat4all.domain.models import Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import current_traceparent
from chat4all.batching import GroupCommit
from chat4all.ports import MessageStore, Push, Receipt

MAX_IDS_PER_RECEIPT = 1000
_RECEIPTS = (DeliveryStatus.DELIVERED, DeliveryStatus.READ)
log = get_logger(__name__)


class Relay(Protocol):
    """The status outbox's relay (workers/outbox_relay.py)."""

    def wake(self) -> None: ...

    async def drain(self) -> int: ...


class DeliveryService:
    def __init__(
        self,
        *,
        messages: MessageStore,
        push: Push,
        relay: Relay | None = None,
        receipt_linger_s: float = 0.005,
        wait_for_relay: bool = False,
    ) -> None:
        self._messages = messages
        self._push = push
        self._relay = relay
        # outside a server (an operator's command) nothing relays later: relay before returning
        self._wait_for_relay = wait_for_relay
        # receipts from every socket, request and worker of this process share transactions; a
        # receipt may wait a few ms for others (a status is not on anyone's critical path)
        self._receipts: GroupCommit[Receipt, int] = GroupCommit(self._apply, max_batch=500, linger_s=receipt_linger_s)

    async def record(
        self,
        *,
        username: str,
        channel: str,
        message_ids: Sequence[str],
        status: DeliveryStatus,
        detail: str | None = None,
    ) -> int:
        """Moves (username, channel) deliveries of these messages to ``status``; returns how many
        moved. Returns once the change and its StatusEvents are stored (the relay appends them to the
        log right after)."""
        if not message_ids:
            return 0
        ids = list(dict.fromkeys(message_ids))[:MAX_IDS_PER_RECEIPT]
        receipt = Receipt(username, channel, ids, status, detail, traceparent=current_traceparent.get())
        return await self._receipts.submit(receipt)

    async def _apply(self, receipts: Sequence[Receipt]) -> list[int]:
        now = utcnow()
        moved = await self._messages.advance_many(receipts, at=now)
        if moved:
            # the StatusEvents, in the outbox with the change, carry the trace of the message's delivery
            await self.announce(moved)
            for message, changes in moved:
                for change in changes:
                    metrics.DELIVERY_STATUS.labels(change.channel, change.status.value).inc()
                    if change.status is DeliveryStatus.DELIVERED:
                        latency = (change.at - message.created_at).total_seconds()
                        metrics.ACCEPT_TO_DELIVERED.labels(change.channel).observe(max(latency, 0.0))
        reached = {(c.message_id, c.username, c.channel, c.status) for _, changes in moved for c in changes}
        return [
            sum((m, r.username, r.channel, r.status) in reached for m in r.message_ids) for r in receipts
        ]

    async def announce(self, moved: Sequence[tuple[Message, Sequence[StatusChange]]]) -> None:
        """For changes already stored with their StatusEvents: wakes the relay, and sends status
        frames to the senders."""
        if self._relay is not None:
            if self._wait_for_relay:
                await self._relay.drain()
            else:
                self._relay.wake()
        frames = []
        for message, changes in moved:
            for change in changes:
                frame = status_frame(change)
                frames.append((message.sender, frame))
                if change.status in _RECEIPTS:  # the reader's other devices (v2 sockets) see it too
                    frames.append((change.username, v2_copy(frame)))
        if not frames:
            return
        try:
            await self._push.send(frames)
        except Unavailable:
            log.warning("status frames not pushed: push is unavailable", changes=len(frames))
