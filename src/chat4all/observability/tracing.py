"""W3C trace context for one request or one event: parsed, generated, and carried in a contextvar.

The ``traceparent`` goes into every event appended while handling a request, so the router's log
lines carry the trace_id of the HTTP request that accepted the message. With an OTLP endpoint
configured, the same context also makes OpenTelemetry spans (below).
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)
_PROPAGATOR = TraceContextTextMapPropagator()


def new_traceparent(trace_id: str | None = None) -> str:
    if trace_id is None:
        ids = secrets.token_hex(24)  # one read of the system's randomness for both ids
        return f"00-{ids[:32]}-{ids[32:]}-01"
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def continue_trace(header: str | None) -> str:
    """A child traceparent of ``header`` if it is valid, else a fresh trace."""
    if header:
        match = _TRACEPARENT.match(header.strip().lower())
        if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
            return new_traceparent(match.group(1))
    return new_traceparent()


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else None


def current_trace_id() -> str | None:
    return trace_id_of(current_traceparent.get())


# --- OpenTelemetry spans (R13.2) -----------------------------------------------------------------
# Off unless configured: with no endpoint no span is made, and the hot path does no extra work.
# On, the HTTP request that accepts a message is a SERVER span; its traceparent rides in the
# event through the log, and the router's CONSUMER span for that message is its child.

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def configure_tracing(
    *, endpoint: str | None, service: str, role: str, node: str, sample_ratio: float = 1.0,
    exporter: SpanExporter | None = None,
) -> None:
    """Spans go to ``exporter``, or to the OTLP/HTTP ``endpoint``; neither turns spans off.
    Sampling follows the caller's decision, else keeps ``sample_ratio`` of new traces."""
    global _tracer, _provider
    shutdown_tracing()
    if exporter is None and not endpoint:
        return
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter,
        )

        exporter = OTLPSpanExporter(endpoint=endpoint)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "service.instance.id": node, "chat4all.role": role}),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider, _tracer = provider, provider.get_tracer("chat4all")


def shutdown_tracing() -> None:
    """Sends what is buffered and stops exporting."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def flush_tracing() -> None:
    """Exports the spans ended so far (the batch processor otherwise sends every few seconds)."""
    if _provider is not None:
        _provider.force_flush()


def tracer() -> Tracer | None:
    """The tracer, or None when tracing is off (callers then make no span)."""
    return _tracer


def parent_context(traceparent: str | None) -> Context | None:
    """The OpenTelemetry context a W3C traceparent names (None if absent or invalid)."""
    if not traceparent or not _TRACEPARENT.match(traceparent):
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def traceparent_of(span: Span) -> str:
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{int(c.trace_flags):02x}"


def start_span(
    name: str,
    *,
    parent: str | None,
    kind: SpanKind,
    attributes: dict[str, Any] | None = None,
    start_time: int | None = None,
) -> Span | None:
    """A span, child of the W3C ``parent`` (a new trace without one); None when tracing is off.
    The caller ends it (``end_span``)."""
    if _tracer is None:
        return None
    return _tracer.start_span(
        name, context=parent_context(parent), kind=kind, attributes=attributes, start_time=start_time
    )


def end_span(span: Span | None, error: BaseException | None = None, *, end_time: int | None = None) -> None:
    if span is None:
        return
    if error is not None:
        span.record_exception(error)
        span.set_status(StatusCode.ERROR)
    span.end(end_time=end_time)


def child_spans(
    name: str, parents: dict[str, Span], *, kind: SpanKind, start_time: int, end_time: int,
    attributes: dict[str, Any] | None = None,
) -> None:
    """One finished span ``name`` under each of ``parents``, covering [start_time, end_time]
    (ns): a step that a batch made for all of them at once, e.g. the router's persist."""
    if _tracer is None:
        return
    for parent in parents.values():
        _tracer.start_span(
            name, context=set_span_in_context(parent), kind=kind, attributes=attributes, start_time=start_time
        ).end(end_time=end_time)
