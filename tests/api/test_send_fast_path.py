"""POST /v1/messages is answered by a lean ASGI layer when the request is well formed, and by the
FastAPI route otherwise: either way the caller sees one contract (SPEC §2)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest

from chat4all.client import Chat4AllClient
from chat4all.observability import metrics
from tests.api.test_contract_errors import assert_error
from tests.conftest import RunningServer, persisted

MakeUser = Callable[..., Awaitable[Chat4AllClient]]


@pytest.fixture
async def chat(make_user: MakeUser) -> tuple[Chat4AllClient, str]:
    alice = await make_user("fp-alice")
    await make_user("fp-bob")
    conversation = await alice.create_conversation("private", ["fp-bob"])
    return alice, conversation["conversation_id"]


def _sent(status: str) -> float:
    return metrics.HTTP_REQUESTS.labels("POST", "/v1/messages", status)._value.get()


async def test_an_accepted_message_is_counted_under_its_route_and_traced(
    chat: tuple[Chat4AllClient, str], server: RunningServer
) -> None:
    alice, conversation_id = chat
    before = _sent("202")
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/v1/messages",
            json={"conversation_id": conversation_id, "payload": {"type": "text", "text": "hi"}},
            headers={"Authorization": f"Bearer {alice.access_token}"},
        )

    assert response.status_code == 202
    assert response.json()["status"] == "accepted" and response.json()["conversation_id"] == conversation_id
    assert len(response.headers["x-trace-id"]) == 32
    assert _sent("202") == before + 1


async def test_a_retry_with_the_same_message_id_is_answered_200_with_its_status(
    chat: tuple[Chat4AllClient, str], server: RunningServer
) -> None:
    alice, conversation_id = chat
    body = {"message_id": str(uuid.uuid4()), "conversation_id": conversation_id, "payload": {"type": "text", "text": "once"}}
    await alice.send(body)
    await persisted(alice, body["message_id"])

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        retry = await http.post("/v1/messages", json=body, headers={"Authorization": f"Bearer {alice.access_token}"})

    assert retry.status_code == 200
    assert retry.json() == {"message_id": body["message_id"], "conversation_id": conversation_id, "status": "SENT", "duplicate": True}


@pytest.mark.parametrize(
    ("headers", "content", "status", "code"),
    [
        ({}, b'{"conversation_id": "x", "payload": {"type": "text", "text": "hi"}}', 401, "unauthenticated"),
        ({"Authorization": "Bearer not.a.token"}, b'{"conversation_id": "x", "payload": {"type": "text", "text": "hi"}}', 401, "unauthenticated"),
        ({"Authorization": "TOKEN"}, b"{not json", 400, "malformed_json"),
        ({"Authorization": "TOKEN"}, b'{"conversation_id": "x", "payload": {"type": "text"}, "extra": 1}', 422, "validation_error"),
        ({"Authorization": "TOKEN"}, b'{"conversation_id": "%s", "payload": {"type": "text", "text": "hi"}, "to": ["nobody"]}', 422, "unknown_user"),
        ({"Authorization": "TOKEN"}, b'{"conversation_id": "%s", "payload": {"type": "text", "text": "hi"}, "message_id": "nope"}', 422, "validation_error"),
        ({"Authorization": "TOKEN"}, b'{"conversation_id": "%s", "payload": {"type": "text", "text": "hi"}, "from": "fp-bob"}', 403, "forbidden"),
        ({"Authorization": "TOKEN"}, b'{"conversation_id": "00000000-0000-4000-8000-000000000000", "payload": {"type": "text", "text": "hi"}}', 404, "not_found"),
    ],
)
async def test_bad_requests_get_the_contracts_errors_on_either_path(
    chat: tuple[Chat4AllClient, str], server: RunningServer, headers: dict[str, str], content: bytes, status: int, code: str
) -> None:
    alice, conversation_id = chat
    headers = {k: v.replace("TOKEN", f"Bearer {alice.access_token}") for k, v in headers.items()}
    if b"%s" in content:
        content = content.replace(b"%s", conversation_id.encode())
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post("/v1/messages", content=content, headers={**headers, "content-type": "application/json"})

    assert_error(response, status, code)


async def test_a_body_that_is_not_declared_json_is_left_to_the_route(
    chat: tuple[Chat4AllClient, str], server: RunningServer
) -> None:
    alice, conversation_id = chat
    body = b'{"conversation_id": "%s", "payload": {"type": "text", "text": "hi"}}' % conversation_id.encode()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/v1/messages", content=body, headers={"Authorization": f"Bearer {alice.access_token}", "content-type": "text/plain"}
        )

    assert_error(response, 415, "unsupported_media_type")  # issue 14: not JSON is 415 on every route


async def test_the_v2_send_answers_as_v1_on_either_path(chat: tuple[Chat4AllClient, str], server: RunningServer) -> None:
    alice, conversation_id = chat
    key = str(uuid.uuid4())
    auth = {"Authorization": f"Bearer {alice.access_token}"}
    body = {"conversation_id": conversation_id, "payload": {"type": "text", "text": "v2"}}
    before = metrics.HTTP_REQUESTS.labels("POST", "/v2/messages", "202")._value.get()
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        first = await http.post("/v2/messages", json=body, headers={**auth, "Idempotency-Key": key})
        assert first.status_code == 202, first.text
        assert first.json() == {"message_id": key, "conversation_id": conversation_id, "status": "accepted"}
        assert len(first.headers["x-trace-id"]) == 32
        await persisted(alice, key)
        again = await http.post("/v2/messages", json=body, headers={**auth, "Idempotency-Key": key})
        unauthenticated = await http.post("/v2/messages", json=body)
        invalid = await http.post("/v2/messages", json={**body, "extra": 1}, headers=auth)
        other_key = await http.post(
            "/v2/messages", json={**body, "message_id": str(uuid.uuid4())}, headers={**auth, "Idempotency-Key": key}
        )
    assert again.status_code == 200
    assert again.json() == {"message_id": key, "conversation_id": conversation_id, "status": "SENT", "duplicate": True}
    assert metrics.HTTP_REQUESTS.labels("POST", "/v2/messages", "202")._value.get() == before + 1
    assert_error(unauthenticated, 401, "unauthenticated")
    assert_error(invalid, 422, "validation_error")
    assert_error(other_key, 422, "validation_error")
