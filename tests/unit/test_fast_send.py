"""The send lane answers a well-formed POST /v1/messages itself (the route behind it is
never reached), and hands anything it is not sure about to the route, body intact."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import orjson

from chat4all.api.fast_send import SendLane
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


async def post(app: SendLane, services: Services, body: bytes, token: str | None) -> tuple[int, bytes]:
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
    status, body = await post(SendLane(route, max_body_bytes=1000, access_log=False), services, BODY, token="good")
    assert status == 202 and route.bodies == []  # the route behind it never saw the request
    assert orjson.loads(body) == {"message_id": "generated", "conversation_id": CONVERSATION, "status": "accepted"}
    assert services.accepted[0]["caller"] == "alice" and services.accepted[0]["conversation_id"] == CONVERSATION


async def test_what_the_fast_path_is_not_sure_about_goes_to_the_route_body_intact() -> None:
    for body, token in ((BODY, None), (BODY, "bad"), (b'{"conversation_id": ', "good"), (b'{"extra": 1}', "good")):
        services, route = Services(), Route()
        status, _ = await post(SendLane(route, max_body_bytes=1000, access_log=False), services, body, token=token)
        assert status == 299 and route.bodies == [body] and services.accepted == []


async def run(app: SendLane, services: Any, path: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[list[dict[str, Any]], Any]:
    scope = {
        "type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b"",
        "app": SimpleNamespace(state=SimpleNamespace(services=services)),
    }
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent, scope


JSON_AUTH = [(b"content-type", b"application/json"), (b"authorization", b"Bearer good")]


async def test_the_v2_send_takes_the_lane_and_is_counted_under_its_own_route() -> None:
    from chat4all.observability import metrics

    counted = metrics.HTTP_REQUESTS.labels("POST", "/v2/messages", "202")
    before = counted._value.get()
    services, route = Services(), Route()
    sent, scope = await run(SendLane(route, max_body_bytes=1000, access_log=False), services, "/v2/messages", JSON_AUTH, [BODY])
    start = sent[0]
    assert start["status"] == 202 and route.bodies == []
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json" and len(headers[b"x-trace-id"]) == 32
    assert int(headers[b"content-length"]) == len(sent[1]["body"])
    assert counted._value.get() == before + 1 and scope["route"].path == "/v2/messages"


async def test_a_body_over_the_limit_goes_to_the_app_whole_for_its_413() -> None:
    services = Services()
    received: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while not received or received[-1].get("more_body"):
            received.append(await receive())
        await send({"type": "http.response.start", "status": 413, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    chunks = [b"x" * 600, b"y" * 600, b"z" * 10]
    sent, _ = await run(SendLane(app, max_body_bytes=1000, access_log=False), services, "/v1/messages", JSON_AUTH, chunks)
    assert sent[0]["status"] == 413 and services.accepted == []
    assert b"".join(m["body"] for m in received) == b"".join(chunks)  # nothing lost on the way
    declared = [*JSON_AUTH, (b"content-length", b"1001")]
    untouched: list[bytes] = []

    async def app2(scope: Any, receive: Any, send: Any) -> None:
        untouched.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 413, "headers": []})

    await run(SendLane(app2, max_body_bytes=1000, access_log=False), services, "/v1/messages", declared, [b"a" * 1001])
    assert untouched == [b"a" * 1001]  # a declared length over the limit is not even read by the lane


async def test_a_session_store_that_does_not_answer_is_a_503_in_the_contracts_shape_with_its_trace() -> None:
    from chat4all.domain.errors import Unavailable

    services, route = Services(), Route()

    async def down(token: str) -> str:
        raise Unavailable("the session store does not answer")

    services.auth = SimpleNamespace(authenticate=down)
    sent, _ = await run(SendLane(route, max_body_bytes=1000, access_log=False), services, "/v1/messages", JSON_AUTH, [BODY])
    assert sent[0]["status"] == 503 and route.bodies == []
    trace_id = dict(sent[0]["headers"])[b"x-trace-id"].decode()
    error = orjson.loads(sent[1]["body"])["error"]
    assert error["code"] == "unavailable" and error["trace_id"] == trace_id


async def test_a_cross_origin_send_goes_to_the_app_when_it_answers_cors() -> None:
    services, route = Services(), Route()
    headers = [*JSON_AUTH, (b"origin", b"https://app.example")]
    sent, _ = await run(SendLane(route, max_body_bytes=1000, access_log=False, cors=True), services, "/v1/messages", headers, [BODY])
    assert sent[0]["status"] == 299 and route.bodies == [BODY]
    sent, _ = await run(SendLane(route, max_body_bytes=1000, access_log=False), services, "/v1/messages", headers, [BODY])
    assert sent[0]["status"] == 202


async def test_the_lane_logs_its_request_as_every_request_is_logged_and_only_when_asked() -> None:
    from structlog.testing import capture_logs

    for access_log in (True, False):
        with capture_logs() as logs:
            sent, _ = await run(
                SendLane(Route(), max_body_bytes=1000, access_log=access_log), Services(), "/v1/messages", JSON_AUTH, [BODY]
            )
        lines = [entry for entry in logs if entry["event"] == "request"]
        if not access_log:
            assert lines == []
            continue
        [line] = lines
        assert line["route"] == "/v1/messages" and line["status"] == 202 and line["method"] == "POST"
        assert line["trace_id"] == dict(sent[0]["headers"])[b"x-trace-id"].decode()


async def test_a_service_that_breaks_is_a_logged_500_in_the_contracts_shape() -> None:
    from structlog.testing import capture_logs

    services = Services()

    async def broken(**call: Any) -> Accepted:
        raise RuntimeError("injected")

    services.messages = SimpleNamespace(accept=broken)
    with capture_logs() as logs:
        sent, _ = await run(SendLane(Route(), max_body_bytes=1000, access_log=False), services, "/v1/messages", JSON_AUTH, [BODY])
    assert sent[0]["status"] == 500
    error = orjson.loads(sent[1]["body"])["error"]
    assert error["code"] == "internal" and "injected" not in error["message"]
    assert error["trace_id"] == dict(sent[0]["headers"])[b"x-trace-id"].decode()
    assert [entry["trace_id"] for entry in logs if entry["event"] == "unhandled error"] == [error["trace_id"]]
