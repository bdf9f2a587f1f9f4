"""The request examples of /openapi.json work when run as given, in the order Swagger UI shows
them (issue 19): register alice and bob, sign in, start the chat, send into it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from chat4all.api.openapi import PASTE_CONVERSATION
from tests.conftest import RunningServer


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def examples(doc: dict[str, Any], path: str) -> dict[str, Any]:
    media = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in media["examples"].items()}


async def test_the_documented_examples_work_as_given(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    for body in examples(doc, "/v1/auth/register").values():
        assert (await http.post("/v1/auth/register", json=body)).status_code == 201
    token = await http.post("/v1/auth/token", json=examples(doc, "/v1/auth/token")["password"])
    assert token.status_code == 200, token.text
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    refresh = examples(doc, "/v1/auth/token")["refresh"] | {"refresh_token": token.json()["refresh_token"]}
    assert (await http.post("/v1/auth/token", json=refresh)).status_code == 200
    conversations = examples(doc, "/v1/conversations")
    created = {}
    for name, body in conversations.items():
        answer = await http.post("/v1/conversations", json=body, headers=auth)
        assert answer.status_code == 201, answer.text
        created[name] = answer.json()["conversation_id"]
    for body in examples(doc, "/v1/messages").values():
        assert "from" not in body  # the caller: a "from" of someone else is 403
        assert body["conversation_id"] == PASTE_CONVERSATION
        sent = await http.post("/v1/messages", json=body | {"conversation_id": created["private"]}, headers=auth)
        assert sent.status_code == 202, sent.text
