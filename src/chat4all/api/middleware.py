"""Pure ASGI middleware: trace context, access log, HTTP metrics, and the request size limit."""

from __future__ import annotations

import time

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
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        incoming = headers.get(b"traceparent", b"").decode("latin-1") or None
        tracing = tracer()
        span: Span | None = None
        if tracing is not None and scope["type"] == "http":  # a socket lives too long for a span
            span = tracing.start_span(
                f"{scope['method']} {scope['path']}", context=parent_context(incoming), kind=SpanKind.SERVER
            )
            traceparent = traceparent_of(span)
        else:
            traceparent = continue_trace(incoming)
        token = current_traceparent.set(traceparent)
        trace_id = trace_id_of(traceparent) or ""
        started = time.perf_counter()
        status_holder: dict[str, int] = {"status": 500}
        started_response = False

        async def send_with_trace(message: Message) -> None:
            nonlocal started_response
            if message["type"] == "http.response.start":
                started_response = True
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-trace-id", trace_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace)
        except Exception as exc:
            # answered here, inside the trace context, so that the 500 carries the trace id in its
            # body, its header and its log line; and not re-raised, so the server keeps the
            # connection (an exception reaching uvicorn after a response closes it)
            log.exception(
                "unhandled error",
                error=type(exc).__name__,
                method=scope.get("method"),
                path=scope["path"],
                trace_id=trace_id,
            )
            if scope["type"] != "http" or started_response:
                raise
            response = error_response(500, "internal", "something went wrong on our side; it has been logged")
            await response(scope, receive, send_with_trace)
        finally:
            current_traceparent.reset(token)
            if scope["type"] == "http":
                template = getattr(scope.get("route"), "path", None) or "unmatched"
                self._observe(scope, template, status_holder["status"], time.perf_counter() - started, trace_id)
                if span is not None:
                    _end(span, scope["method"], template, status_holder["status"])

    def _observe(self, scope: Scope, template: str, status: int, elapsed: float, trace_id: str) -> None:
        method = scope["method"]
        metrics.HTTP_REQUESTS.labels(method, template, str(status)).inc()
        metrics.HTTP_LATENCY.labels(method, template).observe(elapsed)
        if self.access_log:
            log.info(
                "request",
                method=method,
                path=scope["path"],
                route=template,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                trace_id=trace_id,
            )


def _end(span: Span, method: str, template: str, status: int) -> None:
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
