"""The hot path, ``POST /v1/messages`` (and its twin ``POST /v2/messages``), answered ahead of
the framework.

FastAPI's middleware stack (its error, telemetry and body-limit layers, then ours), its routing,
dependency solving and response validation cost more CPU per request than accepting the message
itself. ``SendLane`` is called by the application (``api/app.py``) before any of it for these two
paths, and answers the well-formed case directly: one scan of the headers, the body read once
under the size limit, parsed once by the route's schema, the same service call and the same
responses as the FastAPI route (``routes/messages.py``), inside the same trace context, metrics
and access log as every request (``api/middleware.py``: ``start_trace``, ``observe``). The route
stays the documented contract and answers everything else: a request the lane is not sure about
(no token, an invalid one, no JSON content type, malformed JSON, a schema error, a body over the
limit, a CORS request) goes on to the whole application, body intact, and gets its answer there.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat4all.api.bearer import bearer_token
from chat4all.api.errors import domain_error_response
from chat4all.api.middleware import (
    end_server_span,
    internal_error,
    is_json,
    log_unhandled,
    media_type_of,
    observe,
    start_trace,
)
from chat4all.api.routes.messages import accept, accepted_answer, message_id_of
from chat4all.api.schemas import SendMessage
from chat4all.domain.errors import Chat4AllError, InvalidInput, Unauthenticated
from chat4all.observability.tracing import current_traceparent, trace_id_of

PATHS = frozenset({"/v1/messages", "/v2/messages"})


class _Route:
    """What the access log and metrics read from ``scope["route"]``: the path is the template."""

    def __init__(self, path: str) -> None:
        self.path = path


_ROUTES = {path: _Route(path) for path in PATHS}
_JSON = (b"content-type", b"application/json")


class SendLane:
    """``app``: the whole application, for what the lane leaves to the route. ``cors``: whether
    the application answers browsers' cross-origin requests (those go to it, for its headers)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, access_log: bool, cors: bool = False) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = authorization = key = incoming = length = None
        cross_origin = False
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
            elif name == b"idempotency-key":
                key = value
            elif name == b"traceparent":
                incoming = value
            elif name == b"content-length":
                length = value
            elif name == b"origin":
                cross_origin = True
        token = bearer_token(authorization)
        if (
            token is None
            or content_type is None
            or not is_json(media_type_of(content_type))  # e.g. application/jsonx: 415 from the app
            or (key is not None and len(key) > 64)
            or (length is not None and (not length.isdigit() or int(length) > self.max_body_bytes))
            or (cross_origin and self.cors)
        ):
            await self.app(scope, receive, send)
            return
        body, rest = await _read_body(receive, self.max_body_bytes)
        if rest is not None:  # over the limit, or the client went away: the app answers as always
            await self.app(scope, rest, send)
            return
        services = scope["app"].state.services
        failure: Chat4AllError | None = None
        request: tuple[SendMessage, str, str | None] | None = None
        try:
            user = await services.auth.authenticate(token)  # revocation included
            idempotency_key = None if key is None else key.decode("latin-1")
            message = SendMessage.model_validate_json(body)
            request = message, user, message_id_of(message, idempotency_key)
        except (Unauthenticated, InvalidInput):  # the route says it, in its words
            await self.app(scope, _replay(body, receive), send)
            return
        except Chat4AllError as exc:  # the session's state could not be read (503)
            failure = exc
        except Exception:  # noqa: BLE001 - a schema error, or anything else: the route answers it
            await self.app(scope, _replay(body, receive), send)
            return
        await self._answer(scope, send, incoming, services, request, failure)

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        incoming: bytes | None,
        services: Any,
        request: tuple[SendMessage, str, str | None] | None,
        failure: Chat4AllError | None,
    ) -> None:
        """As ``RequestContext`` does for every other request: the trace context, the x-trace-id
        header, a 500 in the contract's shape for an error, the metrics and the access log."""
        span, traceparent = start_trace(scope, incoming)
        token = current_traceparent.set(traceparent)
        trace_id = trace_id_of(traceparent) or ""
        trace_header = (b"x-trace-id", trace_id.encode())
        started = time.perf_counter()
        template = scope["path"]
        scope["route"] = _ROUTES[template]
        status = 500
        started_response = False
        try:
            if request is not None:
                message, user, message_id = request
                try:
                    accepted = await accept(message, user, services, message_id)
                except Chat4AllError as exc:
                    failure = exc
                else:
                    content, status = accepted_answer(accepted)
                    body = orjson.dumps(content)
                    headers = [(b"content-length", str(len(body)).encode()), _JSON, trace_header]
                    started_response = True
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
            assert failure is not None
            response = domain_error_response(failure)
            status = response.status_code
            started_response = True
            await response(scope, _no_receive, _with_header(send, trace_header))
        except Exception as exc:
            log_unhandled(exc, scope, trace_id)
            if started_response:
                raise
            status = 500
            await internal_error()(scope, _no_receive, _with_header(send, trace_header))
        finally:
            current_traceparent.reset(token)
            observe(scope, template, status, time.perf_counter() - started, trace_id, access_log=self.access_log)
            if span is not None:
                end_server_span(span, scope["method"], template, status)


def _with_header(send: Send, header: tuple[bytes, bytes]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)

    return sending


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, Receive | None]:
    """The whole body, and None; or, when a non-body message comes first or the body passes
    ``limit`` bytes, what was read and a receive that replays the request from its start."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", _replay(b"".join(chunks), receive, after=message)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        seen += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None
        if seen > limit:
            return b"", _replay(b"".join(chunks), receive, more_body=True)


def _replay(body: bytes, receive: Receive, *, more_body: bool = False, after: Message | None = None) -> Receive:
    """``receive`` as the app would have seen it: ``body`` first (then ``after``, then the rest)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more_body}]
    if after is not None:
        pending.append(after)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
