"""Issue 14, bad input: bounded integers, a 500 that keeps its trace id and its connection, one
code for a malformed body, 415 for a body that is not JSON, and 405 answers that name every
allowed method."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from structlog.testing import capture_logs

from chat4all.client import Chat4AllClient
from chat4all.config import Settings
from tests.api.test_contract_errors import assert_error, assert_oauth2_error
from tests.conftest import RunningServer

OVER_64_BITS = "9223372036854775808"  # 2**63


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # a webhook to loopback is registered below: no profile allows loopback unless it is listed
    return settings.model_copy(update={"webhooks_allowed_networks": "127.0.0.0/8,::1/128"})


@pytest.fixture
async def http(server: RunningServer):
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        yield client


def _auth(client: Chat4AllClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.access_token}"}


def _named(error: dict, field: str) -> None:
    assert any(d["loc"][-1] == field for d in error["details"]), error


async def test_integer_parameters_beyond_64_bits_are_422_naming_the_field(pair, http: httpx.AsyncClient) -> None:
    alice, _, conversation_id = pair
    path = f"/v1/conversations/{conversation_id}/messages"
    for since in (OVER_64_BITS, "9" * 30):
        error = assert_error(await http.get(path, params={"since": since}, headers=_auth(alice)), 422, "validation_error")
        _named(error, "since")
    assert (await http.get(path, params={"since": str(2**63 - 1)}, headers=_auth(alice))).status_code == 200

    hook = await alice.request("POST", "/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, expect=(201,))
    deliveries = f"/v1/webhooks/{hook['webhook_id']}/deliveries"
    for cursor in ("1" * 20, "9" * 19, "²", "-1"):
        error = assert_error(await http.get(deliveries, params={"cursor": cursor}, headers=_auth(alice)), 422, "validation_error")
        _named(error, "cursor")
    assert (await http.get(deliveries, params={"cursor": str(2**63 - 1)}, headers=_auth(alice))).status_code == 200


async def _raw_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, token: str) -> tuple[int, dict[str, str], bytes]:
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return status, headers, body


async def test_a_500_carries_its_trace_id_everywhere_and_keeps_the_connection(
    pair, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, _, _ = pair
    conversations = server.runtime.services.conversations

    async def broken(*args, **kwargs):
        raise RuntimeError("the injected failure")

    monkeypatch.setattr(conversations, "list", broken)
    host, port = server.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        with capture_logs() as logs:
            status, headers, body = await _raw_get(reader, writer, "/v1/conversations", alice.access_token)
        assert status == 500
        error = httpx.Response(500, content=body).json()["error"]
        assert error["code"] == "internal" and "injected" not in error["message"]
        assert len(error["trace_id"]) == 32 and headers["x-trace-id"] == error["trace_id"]
        logged = [entry for entry in logs if entry["event"] == "unhandled error"]
        assert [entry["trace_id"] for entry in logged] == [error["trace_id"]]
        assert logged[0]["error"] == "RuntimeError"

        monkeypatch.undo()
        status, _, _ = await _raw_get(reader, writer, "/v1/conversations", alice.access_token)  # same connection
        assert status == 200
    finally:
        writer.close()


async def _json_routes(http: httpx.AsyncClient) -> list[tuple[str, str]]:
    doc = (await http.get("/openapi.json")).json()
    routes = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                routes.append((method.upper(), path))
    return routes


def _concrete(path: str, conversation_id: str) -> str:
    path = path.replace("{channel}", "telegram").replace("{conversation_id}", conversation_id)
    # API v2's paths name a member and a message too
    return path.replace("{username}", "bob").replace("{message_id}", "00000000-0000-4000-8000-000000000000")


async def test_a_malformed_body_is_the_same_code_on_every_route(pair, http: httpx.AsyncClient) -> None:
    alice, _, conversation_id = pair
    routes = await _json_routes(http)
    assert ("POST", "/v1/messages") in routes and len(routes) >= 8
    for method, path in routes:
        if path.startswith("/v1/connectors/"):
            continue  # the provider's own body, authenticated the provider's way first
        response = await http.request(
            method, _concrete(path, conversation_id), content=b'{"oops": ', headers={**_auth(alice), "content-type": "application/json"}
        )
        if path == "/v1/auth/token":  # OAuth2's shape there, the same code beside it
            assert_oauth2_error(response, 400, "invalid_request", "malformed_json")
        else:
            assert_error(response, 400, "malformed_json")


@pytest.mark.parametrize("content_type", ["text/plain", "application/jsonx", "application/xml", "multipart/form-data; boundary=x"])
async def test_a_body_that_is_not_json_is_415_on_every_route(
    pair, http: httpx.AsyncClient, content_type: str
) -> None:
    alice, bob, conversation_id = pair
    body = b'{"conversation_id": "%s", "payload": {"type": "text", "text": "hi"}}' % conversation_id.encode()
    for method, path in await _json_routes(http):
        response = await http.request(
            method, _concrete(path, conversation_id), content=body, headers={**_auth(alice), "content-type": content_type}
        )
        if path == "/v1/auth/token":  # OAuth2's shape there, the same code beside it
            assert_oauth2_error(response, 415, "invalid_request", "unsupported_media_type")
            error = response.json()
        else:
            error = assert_error(response, 415, "unsupported_media_type")
        assert "application/json" in error["details"]["accepted"]
    # the send fast path did not take application/jsonx for JSON: nothing was sent
    assert (await alice.conversation_messages(conversation_id))["items"] == []
    # JSON under its other names still works, and the token endpoint still takes the OAuth2 form
    sent = await http.post(
        "/v1/messages", content=body, headers={**_auth(alice), "content-type": "application/json; charset=utf-8"}
    )
    assert sent.status_code == 202, sent.text
    form = await http.post("/v1/auth/token", data={"username": "bob", "password": "correct-horse-battery"})
    assert form.status_code == 200, form.text


async def test_ids_of_another_shape_are_404_and_the_document_says_ids_are_uuids(pair, http: httpx.AsyncClient) -> None:
    alice, _, _ = pair
    for path in ("/v1/messages/not-a-uuid", "/v1/files/x/upload", "/v1/conversations/1/messages"):
        assert_error(await http.get(path, headers=_auth(alice)), 404, "not_found")
    error = assert_error(
        await http.post("/v1/messages/ack", json={"message_ids": ["not-a-uuid"], "status": "read"}, headers=_auth(alice)),
        422,
        "validation_error",
    )
    _named(error, 0)
    doc = (await http.get("/openapi.json")).json()
    parameter = doc["paths"]["/v1/files/{file_id}"]["get"]["parameters"][0]
    assert parameter["schema"]["format"] == "uuid" and parameter["schema"]["pattern"].startswith("^[0-9a-fA-F]{8}-")


async def test_the_document_states_the_enforced_rules(http: httpx.AsyncClient, server: RunningServer) -> None:
    doc = (await http.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    channels = next(o for o in schemas["SendMessage"]["properties"]["channels"]["anyOf"] if o.get("type") == "array")
    assert {"internal", "all", "telegram", "whatsapp", "instagram", "messenger"} <= set(channels["items"]["enum"])
    channel_param = doc["paths"]["/v1/users/me/channels/{channel}"]["put"]["parameters"][0]["schema"]
    assert "internal" not in channel_param["enum"] and "telegram" in channel_param["enum"]
    assert schemas["CompleteUpload"]["properties"]["sha256"]["pattern"] == "^[0-9a-fA-F]{64}$"
    assert schemas["InitiateUpload"]["properties"]["size"]["maximum"] == server.runtime.settings.max_file_bytes
    assert schemas["TextPayload"]["properties"]["text"]["maxLength"] == server.runtime.settings.max_text_chars
    since = next(p for p in doc["paths"]["/v1/conversations/{conversation_id}/messages"]["get"]["parameters"] if p["name"] == "since")
    assert since["schema"]["maximum"] == 2**63 - 1
    for path in ("/v1/auth/logout", "/v1/auth/password"):
        assert path in doc["paths"]
    links = doc["paths"]["/v1/conversations"]["post"]["responses"]["201"]["links"]
    assert links["SendMessage"]["requestBody"]["conversation_id"] == "$response.body#/conversation_id"
    assert "415" in doc["paths"]["/v1/messages"]["post"]["responses"]


async def test_405_lists_every_allowed_method(http: httpx.AsyncClient) -> None:
    for method, path, allowed in (
        ("DELETE", "/v1/webhooks", {"GET", "POST"}),
        ("PUT", "/v1/conversations", {"GET", "POST"}),
        ("GET", "/v1/messages", {"POST"}),
        ("POST", "/v1/users/me/channels/telegram", {"PUT", "DELETE"}),
        # GET /v1/files/{file_id} has the shape of this path, but "complete" is no file id
        ("OPTIONS", "/v1/files/complete", {"POST"}),
        ("GET", "/v1/files/complete", {"POST"}),
        ("GET", "/v1/messages/ack", {"POST"}),
        ("DELETE", f"/v1/files/{'0' * 8}-0000-4000-8000-{'0' * 12}", {"GET"}),
    ):
        response = await http.request(method, path)
        error = assert_error(response, 405, "method_not_allowed")
        assert set(response.headers["allow"].split(", ")) == allowed, (method, path, response.headers["allow"])
        assert set(error["details"]["allowed"]) == allowed
