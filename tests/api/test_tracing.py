"""OpenTelemetry (R13.2): one message is one trace, from the HTTP request that accepts it
through the event log to the router that stores and pushes it. The tracing backend is the
outside world here: spans go to an in-memory exporter instead of an OTLP collector."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from chat4all.client import Chat4AllClient
from chat4all.observability import tracing
from tests.conftest import persisted, wait_until


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing(endpoint=None, service="chat4all", role="all", node="test-node", exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def _finished(exporter: InMemorySpanExporter, name: str) -> list:
    tracing.flush_tracing()
    return [s for s in exporter.get_finished_spans() if s.name == name]


async def test_a_message_is_one_trace_from_the_request_to_the_router(
    spans: InMemorySpanExporter, pair: tuple[Chat4AllClient, Chat4AllClient, str], server
) -> None:
    alice, _, conversation_id = pair
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        answer = await http.post(
            "/v1/messages",
            json={"conversation_id": conversation_id, "payload": {"type": "text", "text": "traced"}},
            headers={"Authorization": f"Bearer {alice.access_token}", "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"},
        )
    assert answer.status_code == 202
    message_id = answer.json()["message_id"]
    await persisted(alice, message_id)

    async def routed() -> bool:
        return any(s.attributes.get("messaging.message.id") == message_id for s in _finished(spans, "route message"))

    await wait_until(routed, what="the router's span")
    [request] = _finished(spans, "POST /v1/messages")
    [route] = [s for s in _finished(spans, "route message") if s.attributes["messaging.message.id"] == message_id]
    assert request.kind is SpanKind.SERVER and route.kind is SpanKind.CONSUMER
    assert format(request.context.trace_id, "032x") == caller_trace  # continued from the caller
    assert request.parent is not None and format(request.parent.span_id, "016x") == "00f067aa0ba902b7"
    [publish] = [s for s in _finished(spans, "publish message.events") if s.attributes["messaging.message.id"] == message_id]
    assert publish.kind is SpanKind.PRODUCER and publish.parent.span_id == request.context.span_id
    assert route.context.trace_id == request.context.trace_id
    assert route.parent is not None and route.parent.span_id == publish.context.span_id
    steps = {s.name: s for s in _finished(spans, "persist") + _finished(spans, "push") if s.parent.span_id == route.context.span_id}
    assert sorted(steps) == ["persist", "push"]
    assert route.start_time <= steps["persist"].start_time <= steps["persist"].end_time <= steps["push"].start_time
    assert request.attributes["http.response.status_code"] == 202
    assert route.attributes["chat4all.sequence_number"] == 1 and route.attributes["chat4all.replayed"] is False
    assert answer.headers["x-trace-id"] == caller_trace
