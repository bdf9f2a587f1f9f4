"""POST /v1/messages with an ``Idempotency-Key`` header: the key is the message_id, so a repeated
request (a client's retry, or the gateway's on another API node) is a duplicate, never a second
message (R4.5, R12.1)."""

from __future__ import annotations

import uuid

import httpx

from chat4all.client import Chat4AllClient
from tests.api.test_contract_errors import assert_error
from tests.conftest import RunningServer, persisted


def _text(conversation_id: str, text: str) -> dict[str, object]:
    return {"conversation_id": conversation_id, "payload": {"type": "text", "text": text}}


async def test_the_key_becomes_the_message_id_and_a_repeat_is_a_duplicate(
    pair: tuple[Chat4AllClient, Chat4AllClient, str], server: RunningServer
) -> None:
    alice, _, conversation_id = pair
    key = str(uuid.uuid4())
    headers = {"Authorization": f"Bearer {alice.access_token}", "Idempotency-Key": key}
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        first = await http.post("/v1/messages", json=_text(conversation_id, "once"), headers=headers)
        assert first.status_code == 202 and first.json()["message_id"] == key
        await persisted(alice, key)
        again = await http.post("/v1/messages", json=_text(conversation_id, "once"), headers=headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["message_id"] == key
    history = await alice.conversation_messages(conversation_id)
    assert [m["message_id"] for m in history["items"]] == [key]


async def test_a_key_equal_to_the_body_message_id_is_accepted_in_any_letter_case(
    pair: tuple[Chat4AllClient, Chat4AllClient, str], server: RunningServer
) -> None:
    alice, _, conversation_id = pair
    message_id = str(uuid.uuid4())
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/v1/messages",
            json={**_text(conversation_id, "hi"), "message_id": message_id},
            headers={"Authorization": f"Bearer {alice.access_token}", "Idempotency-Key": message_id.upper()},
        )
    assert response.status_code == 202 and response.json()["message_id"] == message_id


async def test_a_key_that_differs_from_the_body_message_id_is_refused(
    pair: tuple[Chat4AllClient, Chat4AllClient, str], server: RunningServer
) -> None:
    alice, _, conversation_id = pair
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.post(
            "/v1/messages",
            json={**_text(conversation_id, "hi"), "message_id": str(uuid.uuid4())},
            headers={"Authorization": f"Bearer {alice.access_token}", "Idempotency-Key": str(uuid.uuid4())},
        )
        not_uuid = await http.post(
            "/v1/messages",
            json=_text(conversation_id, "hi"),
            headers={"Authorization": f"Bearer {alice.access_token}", "Idempotency-Key": "not-a-uuid"},
        )
    assert_error(response, 422, "validation_error")
    assert_error(not_uuid, 422, "validation_error")
    assert (await alice.conversation_messages(conversation_id))["items"] == []


async def test_the_client_sends_the_message_id_as_the_key(
    pair: tuple[Chat4AllClient, Chat4AllClient, str],
) -> None:
    alice, _, conversation_id = pair
    seen: list[str | None] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.headers.get("idempotency-key"))

    alice._http.event_hooks["request"].append(record)
    message_id = str(uuid.uuid4())
    await alice.send_text(conversation_id, "with an id", message_id=message_id)
    await alice.send_text(conversation_id, "without")
    assert seen == [message_id, None]
