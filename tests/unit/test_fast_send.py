"""The send fast path answers a well-formed POST /v1/messages itself (the route behind it is
never reached), and hands anything it is not sure about to the route, body intact."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import orjson

from chat4all.api.fast_send import SendFastPath
from chat4all.domain.errors import Unauthenticated
from chat4all.services.messages import Accepted

CONVERSATION = str(uuid.uuid4())


class Services:
    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.auth = SimpleNamespace(authenticate=self._authenticate)
        self.messages = SimpleNamespace(accept=self._accept)

    async def _authenticate(self, token: str) -> str:
        if token != "good":
            raise Unauthenticated("invalid token")
        return "alice"

    async def _accept(self, **call: Any) -> Accepted:
        self.accepted.append(call)
        return Accepted(message_id=call["message_id"] or "generated", conversation_id=call["conversation_id"], status="accepted")


class Route:
    """Stands for the FastAPI app behind the fast path: records what reached it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        self.bodies.append(message["body"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def post(app: SendFastPath, services: Services, body: bytes, token: str | None) -> tuple[int, bytes]:
    headers = [(b"content-type", b"application/json")]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    scope = {
        "type": "http", "method": "POST", "path": "/v1/messages", "headers": headers, "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
    }
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


BODY = orjson.dumps({"conversation_id": CONVERSATION, "payload": {"type": "text", "text": "hi"}})


async def test_a_well_formed_send_is_answered_by_the_fast_path_not_the_route() -> None:
    services, route = Services(), Route()
    status, body = await post(SendFastPath(route), services, BODY, token="good")
    assert status == 202 and route.bodies == []  # the route behind it never saw the request
    assert orjson.loads(body) == {"message_id": "generated", "conversation_id": CONVERSATION, "status": "accepted"}
    assert services.accepted[0]["caller"] == "alice" and services.accepted[0]["conversation_id"] == CONVERSATION


async def test_what_the_fast_path_is_not_sure_about_goes_to_the_route_body_intact() -> None:
    for body, token in ((BODY, None), (BODY, "bad"), (b'{"conversation_id": ', "good"), (b'{"extra": 1}', "good")):
        services, route = Services(), Route()
        status, _ = await post(SendFastPath(route), services, body, token=token)
        assert status == 299 and route.bodies == [body] and services.accepted == []
