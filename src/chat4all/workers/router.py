"""The router worker: the log mechanics around ``services/routing.py``.

Per batch: decode the records (one this code cannot read goes to the dead-letter topic), open
one CONSUMER span per message when tracing is on, and hand the events to ``RoutingService``,
which stores, pushes and announces them. Offsets are committed by the base worker after
``handle`` returns, so a batch that fails is polled again.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.trace import Span, SpanKind, StatusCode
from pydantic import ValidationError

from chat4all.domain.events import MessageEvent
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import child_spans, parent_context, traceparent_of, tracer
from chat4all.ports import EventLog, LogConsumer, LogRecord
from chat4all.services.routing import Routed, RoutingService
from chat4all.workers.base import Worker

log = get_logger(__name__)


class RouterWorker(Worker):
    name = "router"

    def __init__(self, consumer: LogConsumer, *, routing: RoutingService, log: EventLog, batch_size: int) -> None:
        super().__init__(consumer, batch_size=batch_size)
        self._routing = routing
        self._log = log

    async def handle(self, records: Sequence[LogRecord]) -> None:
        events = await self._decode(records)
        if not events:
            return
        spans = _message_spans(events)
        if not spans:  # tracing off: nothing to record around the batch
            await self._routing.route(events)
            return
        try:
            # the deliveries keep the trace of this span (later hops are its children)
            routed = await self._routing.route(events, traces={m: traceparent_of(s) for m, s in spans.items()})
            _record(spans, routed)
        except BaseException as exc:
            for span in spans.values():
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR)
            raise
        finally:
            for span in spans.values():
                span.end()

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


def _record(spans: dict[str, Span], routed: Routed) -> None:
    child_spans("persist", spans, kind=SpanKind.INTERNAL, start_time=routed.persist_ns[0], end_time=routed.persist_ns[1])
    child_spans("push", spans, kind=SpanKind.PRODUCER, start_time=routed.push_ns[0], end_time=routed.push_ns[1])
    for replayed, stored in ((False, routed.new), (True, routed.known)):
        for m in stored:
            spans[m.message_id].set_attributes(
                {"chat4all.sequence_number": m.sequence_number, "chat4all.replayed": replayed}
            )


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
