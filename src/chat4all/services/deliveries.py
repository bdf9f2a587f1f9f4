"""The one place where a delivery's status moves (R6).

Every write of a delivery goes through ``DeliveryService`` and its one port,
``ports.DeliveryStore``: creation as SENT (the router, ``services/routing.py``), receipts
(DELIVERED, READ from sockets, HTTP and providers), FAILED and the retry bookkeeping of external
deliveries (``services/connector_dispatch.py``), and the operator's requeue from the dead-letter
queue (``services/dead_letters.py``). Forward only: the store's guarded update ignores late and
repeated receipts. Every change is recorded in the history and, in the same transaction, in the
status outbox (the store writes both); the outbox relay appends the StatusEvents to the log.
Creation is the exception: the router appends the SENT events itself once the batch is stored
(``log_created``, before it pushes the messages), because its input is already an outbox: the
batch's log offsets are committed only after that append, so a crash before it replays the
batch, and a replayed message's SENT events are appended again. The sender's sockets are shown
a status frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from chat4all.batching import GroupCommit
from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Unavailable
from chat4all.domain.events import StatusEvent
from chat4all.domain.frames import status_frame, v2_copy
from chat4all.domain.models import Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import current_traceparent
from chat4all.ports import (
    ConnectorLink,
    DeliveryKey,
    DeliveryStore,
    EventLog,
    Moved,
    NewMessage,
    PersistResult,
    Push,
    Receipt,
)

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
        store: DeliveryStore,
        push: Push,
        relay: Relay | None = None,
        log: EventLog | None = None,
        receipt_linger_s: float = 0.02,
        wait_for_relay: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._store = store
        self._push = push
        self._relay = relay
        self._log = log  # where the router's SENT events go (log_created)
        # outside a server (an operator's command) nothing relays later: relay before returning
        self._wait_for_relay = wait_for_relay
        # receipts from every socket, request and worker of this process share transactions; a
        # receipt may wait up to 20 ms for others (a status is not on anyone's critical path): each
        # flush costs a transaction, a relay pass to the log and a push, whatever its size
        self._receipts: GroupCommit[Receipt, int] = GroupCommit(self._apply, max_batch=500, linger_s=receipt_linger_s)

    async def create(self, batch: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        """Stores routed messages with one SENT delivery per target (one transaction); the
        caller appends their SENT events (``log_created``), pushes the messages, then shows the
        senders their SENT (``show``)."""
        return await self._store.persist_batch(batch, at=at)

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
        moved = await self._store.advance_many(receipts, at=self._clock())
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

    async def handed_over(
        self,
        key: DeliveryKey,
        *,
        attempts: int,
        links: Sequence[ConnectorLink] = (),
        delivered: bool = False,
        detail: str | None = None,
    ) -> None:
        """A provider took an external delivery: DELIVERED first if it confirmed delivery (a
        crash before the row leaves the queue then leaves a DELIVERED row, which nothing claims
        or waits for; the other way round could leave it SENT for ever), then out of the queue
        with the provider's ids kept."""
        if delivered:
            await self.record(
                username=key.username,
                channel=key.channel,
                message_ids=[key.message_id],
                status=DeliveryStatus.DELIVERED,
                detail=detail,
            )
        await self._store.sent(key, attempts=attempts, links=links)

    async def retry_later(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        """An external attempt failed transiently: due again at ``at``, the reason kept."""
        await self._store.retry(key, attempts=attempts, at=at, error=error)

    async def give_up(self, key: DeliveryKey, *, attempts: int, reason: str) -> None:
        """An external delivery failed for good: FAILED with the reason, out of the queue."""
        await self.record(
            username=key.username, channel=key.channel, message_ids=[key.message_id], status=DeliveryStatus.FAILED,
            detail=reason,
        )
        await self._store.finish(key, attempts=attempts)

    async def requeue(self, keys: Sequence[DeliveryKey], *, detail: str) -> Moved:
        """An operator's replay: deliveries still FAILED go back to SENT, due now (the one
        backward move), with their history and StatusEvents; returns what moved."""
        if not keys:
            return []
        moved = await self._store.requeue(keys, now=self._clock(), detail=detail)
        await self.announce(moved)
        return moved

    async def log_created(
        self,
        created: Sequence[tuple[Message, Sequence[StatusChange]]],
        *,
        replayed: Sequence[tuple[Message, Sequence[StatusChange]]] = (),
        traces: Mapping[str, str | None] | None = None,
    ) -> None:
        """Appends the StatusEvents of the SENT changes of deliveries ``create`` stored (of
        ``replayed`` ones too: messages a crash may have stopped between their commit and this
        append) in one call. Raises if the log does not take them: the caller's batch must then
        be handled again. Called before the messages are pushed, so a recipient's DELIVERED
        (keyed by the same message id, appended after it) follows SENT on the log."""
        if self._log is None:
            raise RuntimeError("log_created needs the event log")
        traces = traces or {}
        records = [
            (
                c.message_id,
                StatusEvent.encode_change(
                    traceparent=traces.get(c.message_id),
                    message_id=c.message_id,
                    conversation_id=m.conversation_id,
                    sender=m.sender,
                    username=c.username,
                    channel=c.channel,
                    status=c.status,
                    at=c.at,
                    detail=c.detail,
                ),
            )
            for part in (replayed, created)
            for m, changes in part
            for c in changes
        ]
        if records:
            await self._log.append_many(StatusEvent.topic, records)

    async def announce(self, moved: Sequence[tuple[Message, Sequence[StatusChange]]]) -> None:
        """For changes already stored with their StatusEvents: wakes the relay, and sends status
        frames to the senders."""
        if self._relay is not None:
            if self._wait_for_relay:
                await self._relay.drain()
            else:
                self._relay.wake()
        await self.show(moved)

    async def show(self, moved: Sequence[tuple[Message, Sequence[StatusChange]]]) -> None:
        """Status frames to the senders (and a receipt to the reader's other v2 devices); a
        push that is unavailable loses only these frames (the statuses are stored)."""
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
