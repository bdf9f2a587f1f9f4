"""API v2 in the OpenAPI document the server publishes: every route of the contract, each with
an operationId, its errors, and examples of what it answers and takes."""

from __future__ import annotations

import httpx

from tests.conftest import RunningServer

V2_OPERATIONS = {
    ("/v2/conversations", "get"), ("/v2/conversations", "post"),
    ("/v2/conversations/{conversation_id}", "get"), ("/v2/conversations/{conversation_id}", "patch"),
    ("/v2/conversations/{conversation_id}/members", "post"),
    ("/v2/conversations/{conversation_id}/members/{username}", "delete"),
    ("/v2/conversations/{conversation_id}/leave", "post"),
    ("/v2/conversations/{conversation_id}/members/{username}/role", "put"),
    ("/v2/conversations/{conversation_id}/messages", "get"),
    ("/v2/conversations/{conversation_id}/read", "post"),
    ("/v2/messages", "post"), ("/v2/messages/{message_id}", "get"), ("/v2/messages/{message_id}", "patch"),
    ("/v2/messages/{message_id}", "delete"), ("/v2/messages/{message_id}/versions", "get"),
    ("/v2/messages/{message_id}/status", "get"),
}


def _component(document: dict, schema: dict) -> dict:
    ref = schema.get("$ref")
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def _has_example(document: dict, schema: dict) -> bool:
    component = _component(document, schema)
    if component.get("examples") or component.get("example"):
        return True
    return any("examples" in p or "example" in p for p in component.get("properties", {}).values())


async def test_every_v2_route_is_documented_with_examples(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        document = (await http.get("/openapi.json")).json()
    found = {(path, method) for path, ops in document["paths"].items() if path.startswith("/v2/") for method in ops}
    assert V2_OPERATIONS <= found, V2_OPERATIONS - found
    for path, method in V2_OPERATIONS:
        operation = document["paths"][path][method]
        assert operation["operationId"].endswith("V2") or path == "/v2/messages/{message_id}/status", operation
        responses = operation["responses"]
        assert "401" in responses, (path, method)
        for status, answer in responses.items():
            if status.startswith("2") and "content" in answer:
                assert _has_example(document, answer["content"]["application/json"]["schema"]), (path, method, status)
        if "requestBody" in operation:
            assert _has_example(document, operation["requestBody"]["content"]["application/json"]["schema"]), (path, method)
    summary = document["components"]["schemas"]["ConversationSummary"]
    assert summary["examples"][0]["members"][0] == {"username": "alice", "role": "owner"}
