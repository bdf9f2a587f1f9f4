"""The router: persists accepted messages in batches and pushes them to online recipients.

Per batch: decode the events, expand each message's channels per recipient, persist in one
transaction (dedup by message_id, sequence numbers per conversation, SENT deliveries and
history), then — only once that is durable — push to sockets and announce the SENT statuses.
External channels' deliveries are stored pending; the connector dispatcher
(``workers/connector_dispatch.py``) sends them in its own loop, so no provider slows this one.
Offsets are committed by the base worker after ``handle`` returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opentelemetry.trace import Span, SpanKind, StatusCode
from pydantic import ValidationError

from chat4all.domain.events import MessageEvent
from chat4all.domain.frames import Frame, message_frame, own_message_frame
from chat4all.domain.ids import utcnow
from chat4all.domain.models import ALL_CHANNELS, Channel, Message, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import child_spans, parent_context, trace_id_of, traceparent_of, tracer
from chat4all.ports import (
    EventLog,
    LogConsumer,
    LogRecord,
    MessageStore,
    MetadataStore,
    NewMessage,
    PersistResult,
    Push,
)
from chat4all.services.deliveries import DeliveryService
from chat4all.workers.base import Worker

log = get_logger(__name__)
INTERNAL = Channel.INTERNAL.value


class RouterWorker(Worker):
    name = "router"

    def __init__(
        self,
        consumer: LogConsumer,
        *,
        messages: MessageStore,
        metadata: MetadataStore,
        push: Push,
        deliveries: DeliveryService,
        log: EventLog,
        batch_size: int,
        on_external: Callable[[], None] | None = None,
        max_deliveries_per_transaction: int = 2000,
    ) -> None:
        super().__init__(consumer, batch_size=batch_size)
        self._max_deliveries = max_deliveries_per_transaction
        # wakes the connector dispatcher when external deliveries were stored (same process)
        self._on_external = on_external
        self._log = log
        self._messages = messages
        self._metadata = metadata
        self._push = push
        self._deliveries = deliveries

    async def handle(self, records: Sequence[LogRecord]) -> None:
        events = await self._decode(records)
        if not events:
            return
        spans = _message_spans(events)
        try:
            await self._route(events, spans)
        except BaseException as exc:
            for span in spans.values():
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
            raise
        finally:
            for span in spans.values():
                span.end()

    async def _route(self, events: list[MessageEvent], spans: dict[str, Span]) -> None:
        metrics.ROUTER_BATCH.observe(len(events))
        mapped: dict[str, list[str]] = {}  # channel mappings looked up once per batch
        # the deliveries keep the trace (this span, or the request's with tracing off)
        traces = {e.message_id: traceparent_of(spans[e.message_id]) if spans else e.traceparent for e in events}
        batch = [await self._new_message(e, mapped, traces[e.message_id]) for e in events]
        now = utcnow()
        started = time.time_ns()
        result = PersistResult(new=[], known=[])
        for chunk in _chunks(batch, self._max_deliveries):
            # a few messages to huge groups are thousands of rows: in transactions of bounded
            # size, so the database (SQLite's one writer above all) is never held for long
            part = await self._messages.persist_batch(chunk, at=now)
            result.new.extend(part.new)
            result.known.extend(part.known)
        child_spans("persist", spans, kind=SpanKind.INTERNAL, start_time=started, end_time=time.time_ns())
        metrics.MESSAGES.labels("persisted").inc(len(result.new))
        if spans:
            for replayed, stored in ((False, result.new), (True, result.known)):
                for m in stored:
                    spans[m.message_id].set_attributes(
                        {"chat4all.sequence_number": m.sequence_number, "chat4all.replayed": replayed}
                    )
        for m in result.new:
            log.debug(
                "message persisted",
                message_id=m.message_id,
                conversation_id=m.conversation_id,
                sequence_number=m.sequence_number,
                trace_id=trace_id_of(traces.get(m.message_id)),
            )
        if result.known:
            known_ids = [m.message_id for m in result.known]
            log.info("already stored, pushed again", count=len(known_ids), message_ids=known_ids[:20])

        targets = {m.message_id: m.targets for m in batch}
        if self._on_external is not None and any(
            c != INTERNAL for m in result.new for _, c in targets[m.message_id]
        ):
            self._on_external()
        # a replayed message is pushed again: a crash may have come between commit and push
        started = time.time_ns()
        await self._push_to_sockets([*result.known, *result.new], targets)
        child_spans("push", spans, kind=SpanKind.PRODUCER, start_time=started, end_time=time.time_ns())
        await self._deliveries.announce(
            [
                (
                    m,
                    [
                        StatusChange(message_id=m.message_id, username=u, channel=c, status=DeliveryStatus.SENT, at=now)
                        for u, c in targets[m.message_id]
                    ],
                )
                for m in result.new
            ],
        )

    async def _decode(self, records: Sequence[LogRecord]) -> list[MessageEvent]:
        events = []
        dead: list[tuple[str, bytes]] = []
        for record in records:
            try:
                events.append(MessageEvent.decode(record.value))
            except (ValidationError, ValueError):
                # a record this code cannot read goes to the dead-letter topic for an operator
                log.error("undecodable message event sent to the DLQ", partition=record.partition, offset=record.offset)
                dead.append((record.key, record.value))
        if dead:
            await self._log.append_many(f"{MessageEvent.topic}.dlq", dead)
        return events

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
            frame = message_frame(m)
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


def _message_spans(events: Sequence[MessageEvent]) -> dict[str, Span]:
    """With tracing on, one CONSUMER span per message, child of the request that accepted it."""
    tracing = tracer()
    if tracing is None:
        return {}
    return {
        e.message_id: tracing.start_span(
            "route message",
            context=parent_context(e.traceparent),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.message.id": e.message_id, "chat4all.conversation_id": e.conversation_id},
        )
        for e in events
    }
