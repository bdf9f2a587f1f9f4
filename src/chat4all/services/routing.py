"""Routing accepted messages (R3, R4): the use case the router worker calls per batch.

For a batch of accepted messages, in order: expand each message's channels per recipient ("all"
= internal + every channel the recipient mapped, looked up once per batch), store the batch
through the delivery service (one transaction per at most ``max_deliveries_per_transaction``
deliveries: dedup by message_id, sequence numbers per conversation, SENT deliveries and their
history), then — only once that is durable — append the SENT StatusEvents to the log, wake the
connector dispatcher if external deliveries were stored, push each message frame
(encoded once) to its in-app recipients, and show the senders their SENT. A message already
stored (a replay) has its SENT events appended and is pushed again: a crash may have come
between the commit and either; clients drop repeats by message_id, webhook callbacks by event id.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from chat4all import failpoints
from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.events import MessageEvent
from chat4all.domain.frames import Frame, message_frame, own_message_frame
from chat4all.domain.models import ALL_CHANNELS, INTERNAL, Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import trace_id_of
from chat4all.ports import MetadataStore, NewMessage, Push
from chat4all.services.deliveries import DeliveryService

log = get_logger(__name__)


@dataclass(slots=True)
class Routed:
    """What one batch did: the messages stored now and those stored before (replays), and
    when its steps ran (ns since the epoch; the worker turns them into spans)."""

    new: list[Message] = field(default_factory=list)
    known: list[Message] = field(default_factory=list)
    persist_ns: tuple[int, int] = (0, 0)
    push_ns: tuple[int, int] = (0, 0)


class RoutingService:
    def __init__(
        self,
        *,
        deliveries: DeliveryService,
        metadata: MetadataStore,
        push: Push,
        on_external: Callable[[], None] | None = None,
        max_deliveries_per_transaction: int = 2000,
        clock: Clock = system_clock,
    ) -> None:
        self._deliveries = deliveries
        self._metadata = metadata
        self._push = push
        # wakes the connector dispatcher when external deliveries were stored (same process)
        self._on_external = on_external
        self._max_deliveries = max_deliveries_per_transaction
        self._clock = clock

    async def route(
        self, events: Sequence[MessageEvent], *, traces: Mapping[str, str | None] | None = None
    ) -> Routed:
        """Routes a batch; ``traces`` gives each message's trace (W3C traceparent) for its
        deliveries, by message_id (default: the accepting request's, carried by the event)."""
        metrics.ROUTER_BATCH.observe(len(events))
        mapped: dict[str, list[str]] = {}  # channel mappings looked up once per batch
        if traces is None:
            traces = {e.message_id: e.traceparent for e in events}
        batch = [await self._new_message(e, mapped, traces.get(e.message_id)) for e in events]
        now = self._clock()
        routed = Routed()
        started = time.time_ns()
        for chunk in _chunks(batch, self._max_deliveries):
            # a few messages to huge groups are thousands of rows: in transactions of bounded
            # size, so the database (SQLite's one writer above all) is never held for long
            part = await self._deliveries.create(chunk, at=now)
            routed.new.extend(part.new)
            routed.known.extend(part.known)
        routed.persist_ns = (started, time.time_ns())
        metrics.MESSAGES.labels("persisted").inc(len(routed.new))
        for m in routed.new:
            log.debug(
                "message persisted",
                message_id=m.message_id,
                conversation_id=m.conversation_id,
                sequence_number=m.sequence_number,
                trace_id=trace_id_of(traces.get(m.message_id)),
            )
        if routed.known:
            known_ids = [m.message_id for m in routed.known]
            log.info("already stored, pushed again", count=len(known_ids), message_ids=known_ids[:20])

        targets = {m.message_id: m.targets for m in batch}
        sent = self._sent(routed.new, targets, now)
        failpoints.hit("routing.before_sent")  # crash tests: stored, SENT not on the log, nothing pushed
        # SENT on the log before anyone (a recipient, a provider) can receive and acknowledge it
        await self._deliveries.log_created(sent, replayed=self._sent(routed.known, targets, now), traces=traces)
        if self._on_external is not None and any(
            c != INTERNAL for m in routed.new for _, c in targets[m.message_id]
        ):
            self._on_external()
        started = time.time_ns()
        await self._push_to_sockets([*routed.known, *routed.new], targets)
        routed.push_ns = (started, time.time_ns())
        await self._deliveries.show(sent)
        return routed

    @staticmethod
    def _sent(
        messages: Sequence[Message], targets: Mapping[str, Sequence[tuple[str, str]]], at: datetime
    ) -> list[tuple[Message, list[StatusChange]]]:
        return [
            (
                m,
                [
                    StatusChange(message_id=m.message_id, username=u, channel=c, status=DeliveryStatus.SENT, at=at)
                    for u, c in targets[m.message_id]
                ],
            )
            for m in messages
        ]

    async def _new_message(self, e: MessageEvent, mapped: dict[str, list[str]], traceparent: str | None) -> NewMessage:
        return NewMessage(
            message_id=e.message_id,
            conversation_id=e.conversation_id,
            sender=e.sender,
            recipients=e.recipients,
            channels=e.channels,
            payload=e.payload,
            metadata=e.metadata,
            created_at=e.accepted_at,
            targets=await self._targets(e, mapped),
            traceparent=traceparent,
        )

    async def _targets(self, e: MessageEvent, mapped: dict[str, list[str]]) -> list[tuple[str, str]]:
        """One (recipient, channel) per delivery; "all" = internal + every channel they mapped (R4.4)."""
        targets: list[tuple[str, str]] = []
        for recipient in e.recipients:
            channels = list(e.channels)
            if ALL_CHANNELS in channels:
                if recipient not in mapped:
                    mapped[recipient] = sorted(await self._metadata.get_channels(recipient))
                channels = [INTERNAL, *mapped[recipient]]
            for channel in dict.fromkeys(channels):
                targets.append((recipient, channel))
        return targets

    async def _push_to_sockets(self, messages: Sequence[Message], targets: dict[str, Sequence[tuple[str, str]]]) -> None:
        frames: list[tuple[str, Frame]] = []
        for m in messages:
            frame = message_frame(m)  # encoded once, the same bytes for every socket
            recipients = [u for u, c in targets.get(m.message_id, ()) if c == INTERNAL]
            frames.extend((u, frame) for u in recipients)
            # the sender's other devices (v2 sockets only): what it sent, marked own
            frames.append((m.sender, own_message_frame(m)))
        if frames:
            await self._push.send(frames)
            metrics.MESSAGES.labels("pushed").inc(len(frames) - len(messages))  # not the own copies


def _chunks(batch: list[NewMessage], max_deliveries: int) -> list[list[NewMessage]]:
    """The batch in order, cut so that a chunk holds at most ``max_deliveries`` deliveries (a
    single message with more is a chunk of its own)."""
    chunks: list[list[NewMessage]] = [[]]
    size = 0
    for m in batch:
        if chunks[-1] and size + len(m.targets) > max_deliveries:
            chunks.append([])
            size = 0
        chunks[-1].append(m)
        size += len(m.targets)
    return chunks
