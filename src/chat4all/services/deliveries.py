"""The one place where a delivery's status moves (R6).

Forward only: the store's guarded update ignores late and repeated receipts. Every change is
recorded in the history, emitted as a StatusEvent, and shown to the sender's sockets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chat4all.domain.errors import Unavailable
from chat4all.domain.events import StatusEvent
from chat4all.domain.frames import Frame, status_frame
from chat4all.domain.ids import utcnow
from chat4all.domain.models import Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import current_traceparent
from chat4all.batching import GroupCommit
from chat4all.ports import EventLog, MessageStore, Push, Receipt

MAX_IDS_PER_RECEIPT = 1000
log = get_logger(__name__)


class DeliveryService:
    def __init__(self, *, messages: MessageStore, log: EventLog, push: Push, receipt_linger_s: float = 0.005) -> None:
        self._messages = messages
        self._log = log
        self._push = push
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
        moved. Returns once the change is stored and its StatusEvents are on the log, which carry
        the caller's trace context (the request, the connector send)."""
        if not message_ids:
            return 0
        ids = list(dict.fromkeys(message_ids))[:MAX_IDS_PER_RECEIPT]
        receipt = Receipt(username, channel, ids, status, detail, traceparent=current_traceparent.get())
        return await self._receipts.submit(receipt)

    async def _apply(self, receipts: Sequence[Receipt]) -> list[int]:
        now = utcnow()
        moved = await self._messages.advance_many(receipts, at=now)
        if moved:
            traces = {(m, r.username, r.channel): r.traceparent for r in receipts if r.traceparent for m in r.message_ids}
            await self.announce(moved, traceparents=traces)
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

    async def announce(
        self,
        moved: Sequence[tuple[Message, Sequence[StatusChange]]],
        *,
        traceparents: Mapping[tuple[str, str, str], str | None] | None = None,
    ) -> None:
        """Emits StatusEvents and sends status frames to the senders, for changes already stored;
        each event carries the trace context given for its (message_id, username, channel)."""
        traceparents = traceparents or {}
        events: list[tuple[str, bytes]] = []
        frames: list[tuple[str, Frame]] = []
        for message, changes in moved:
            for change in changes:
                event = StatusEvent(
                    message_id=message.message_id,
                    conversation_id=message.conversation_id,
                    sender=message.sender,
                    username=change.username,
                    channel=change.channel,
                    status=change.status,
                    at=change.at,
                    detail=change.detail,
                    traceparent=traceparents.get((message.message_id, change.username, change.channel)),
                )
                events.append((event.key(), event.encode()))
                frames.append((message.sender, status_frame(change)))
        # the events are the durable record (webhooks read them); the frames are a courtesy
        await self._log.append_many(StatusEvent.topic, events)
        try:
            await self._push.send(frames)
        except Unavailable:
            log.warning("status frames not pushed: push is unavailable", changes=len(frames))
