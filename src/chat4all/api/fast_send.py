"""The hot path, ``POST /v1/messages``, answered without the framework's per-request machinery.

FastAPI's routing, dependency solving and response validation cost more CPU per request than
accepting the message itself. This ASGI layer answers the well-formed case directly, with the
same schema, the same service call and the same responses as the FastAPI route
(``routes/messages.py``), which stays the documented contract and answers everything else: a
request this layer is not sure about (no token, an invalid one, malformed JSON, a schema
error) goes on to the route, body intact, and gets its error there.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chat4all.api.bearer import bearer_token
from chat4all.api.errors import domain_error_response
from chat4all.api.middleware import is_json, media_type_of
from chat4all.api.routes.messages import accept, accepted_response, with_idempotency_key
from chat4all.api.schemas import SendMessage
from chat4all.domain.errors import Chat4AllError, InvalidInput, Unauthenticated

PATH = "/v1/messages"


class _Route:
    """What the access log and metrics read from ``scope["route"]``."""

    path = PATH


_ROUTE = _Route()


class SendFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        services = scope["app"].state.services
        try:
            request = await self._parse(scope, body, services) if not more else None
        except Chat4AllError as exc:  # the session's state could not be read (503)
            await domain_error_response(exc)(scope, receive, send)
            return
        if request is None:
            await self.app(scope, _replay(body, more, receive), send)
            return
        message, user = request
        scope["route"] = _ROUTE
        try:
            response = accepted_response(await accept(message, user, services))
        except Chat4AllError as exc:
            response = domain_error_response(exc)
        await response(scope, receive, send)

    @staticmethod
    async def _parse(scope: Scope, body: bytes, services: Any) -> tuple[SendMessage, str] | None:
        headers = dict(scope["headers"])
        if not is_json(media_type_of(headers.get(b"content-type", b""))):
            return None  # e.g. application/jsonx: the JsonBody middleware answers 415 before this
        token = bearer_token(headers.get(b"authorization"))
        if token is None:
            return None
        key = headers.get(b"idempotency-key")
        if key is not None and len(key) > 64:
            return None
        try:
            user = await services.auth.authenticate(token)  # revocation included
            message = with_idempotency_key(
                SendMessage.model_validate_json(body), None if key is None else key.decode("latin-1")
            )
            return message, user
        except (Unauthenticated, ValidationError, InvalidInput):
            return None


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body, or what was read before a non-body message (kept for the replay)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), [message]
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), []


def _replay(body: bytes, after: list[Message], receive: Receive) -> Receive:
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}, *after]

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
