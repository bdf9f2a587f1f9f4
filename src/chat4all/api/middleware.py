"""Pure ASGI middleware: trace context, access log, HTTP metrics, and the request size limit."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat4all.api.errors import error_response, error_response_for
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import (
    continue_trace,
    current_traceparent,
    parent_context,
    trace_id_of,
    traceparent_of,
    tracer,
)

log = get_logger("chat4all.http")


class RequestContext:
    """Gives every request a traceparent (continued from the caller's, or new), times it,
    counts it by route template and status, and logs one line for it."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers") or ():
            if name == b"traceparent":
                incoming = value
        # a socket lives too long for a span
        span, traceparent = start_trace(scope, incoming, with_span=kind == "http")
        token = current_traceparent.set(traceparent)
        trace_id = trace_id_of(traceparent) or ""
        trace_header = (b"x-trace-id", trace_id.encode())
        started = time.perf_counter()
        status = 500
        started_response = False

        async def send_with_trace(message: Message) -> None:
            nonlocal started_response, status
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), trace_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        except Exception as exc:
            # answered here, inside the trace context, so that the 500 carries the trace id in its
            # body, its header and its log line; and not re-raised, so the server keeps the
            # connection (an exception reaching uvicorn after a response closes it)
            log_unhandled(exc, scope, trace_id)
            if kind != "http" or started_response:
                raise
            await internal_error()(scope, receive, send_with_trace)
        finally:
            current_traceparent.reset(token)
            if kind == "http":
                template = getattr(scope.get("route"), "path", None) or "unmatched"
                observe(scope, template, status, time.perf_counter() - started, trace_id, access_log=self.access_log)
                if span is not None:
                    end_server_span(span, scope["method"], template, status)


def start_trace(scope: Scope, incoming: bytes | None, *, with_span: bool = True) -> tuple[Span | None, str]:
    """The request's traceparent, continued from the caller's ``incoming`` (or new), and its
    SERVER span when tracing is on."""
    header = incoming.decode("latin-1") if incoming else None
    tracing = tracer()
    if tracing is not None and with_span:
        span = tracing.start_span(f"{scope['method']} {scope['path']}", context=parent_context(header), kind=SpanKind.SERVER)
        return span, traceparent_of(span)
    return None, continue_trace(header)


def log_unhandled(exc: Exception, scope: Scope, trace_id: str) -> None:
    log.exception("unhandled error", error=type(exc).__name__, method=scope.get("method"), path=scope["path"], trace_id=trace_id)


def internal_error() -> ASGIApp:
    return error_response(500, "internal", "something went wrong on our side; it has been logged")


# (method, route template, status) → its request counter and latency histogram: looked up once,
# not through ``labels()`` on every request (templates and statuses are few)
_SERIES: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(scope: Scope, template: str, status: int, elapsed: float, trace_id: str, *, access_log: bool) -> None:
    """The request's metrics and its access log line."""
    method = scope["method"]
    series = _SERIES.get((method, template, status))
    if series is None:
        series = metrics.HTTP_REQUESTS.labels(method, template, str(status)), metrics.HTTP_LATENCY.labels(method, template)
        _SERIES[(method, template, status)] = series
    series[0].inc()
    series[1].observe(elapsed)
    if access_log:
        log.info(
            "request",
            method=method,
            path=scope["path"],
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            trace_id=trace_id,
        )


def end_server_span(span: Span, method: str, template: str, status: int) -> None:
    span.update_name(f"{method} {template}")
    span.set_attributes({"http.request.method": method, "http.route": template, "http.response.status_code": status})
    if status >= 500:
        span.set_status(StatusCode.ERROR)
    span.end()


class JsonBody:
    """415 ``unsupported_media_type`` for a request body that does not say it is JSON.

    A body with no Content-Type is read as JSON (as it always was); ``form_paths`` also take an
    ``application/x-www-form-urlencoded`` form (the OAuth2 token endpoint); paths under
    ``exempt_prefixes`` (file parts) take any bytes."""

    def __init__(
        self, app: ASGIApp, *, form_paths: frozenset[str] = frozenset(), exempt_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.form_paths = form_paths
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("POST", "PUT", "PATCH")
            or (self.exempt_prefixes and scope["path"].startswith(self.exempt_prefixes))
        ):
            await self.app(scope, receive, send)
            return
        content_type = b""
        for name, value in scope.get("headers") or ():
            if name == b"content-type":
                content_type = value
        media_type = media_type_of(content_type)
        if not media_type or is_json(media_type) or (
            media_type == "application/x-www-form-urlencoded" and scope["path"] in self.form_paths
        ):
            await self.app(scope, receive, send)
            return
        accepted = ["application/json"]
        if scope["path"] in self.form_paths:
            accepted.append("application/x-www-form-urlencoded")
        response = error_response_for(
            scope["path"],
            415,
            "unsupported_media_type",
            f"send the body as {' or '.join(accepted)}, not {media_type}",
            {"accepted": accepted},
            headers={"Accept-Post" if scope["method"] == "POST" else "Accept-Patch": ", ".join(accepted)}
            if scope["method"] != "PUT"
            else None,
        )
        await response(scope, receive, send)


def media_type_of(content_type: bytes) -> str:
    """``type/subtype`` of a Content-Type header, lowercased, without its parameters."""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


def is_json(media_type: str) -> bool:
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


class BodyLimit:
    """Refuses request bodies over ``max_bytes`` (declared or streamed) with 413.

    Paths under ``exempt_prefixes`` (file parts, which their route streams to disk with a
    limit of its own) pass through untouched."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt_prefixes = exempt_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt_prefixes and scope["path"].startswith(self.exempt_prefixes)):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or ():
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _too_large(scope, send, self.max_bytes)
                return
        seen = 0
        exceeded = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True  # the app sees a disconnect; we answer 413 ourselves
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await _too_large(scope, send, self.max_bytes)


async def _too_large(scope: Scope, send: Send, max_bytes: int) -> None:

    response = error_response(413, "payload_too_large", f"the request body is larger than {max_bytes} bytes")
    await response(scope, _noop_receive, send)


async def _noop_receive() -> Message:
    return {"type": "http.disconnect"}
