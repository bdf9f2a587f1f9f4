"""The OpenAPI document, completed with what the server enforces beyond its models (issue 14).

FastAPI derives the document from the routes and models; this adds what only the running server
knows or what the models cannot say: the 415 of every body, the channel
names (built-in, installed plugins and configured connectors, when the document is generated),
the shape of ids in paths, the configured size limits, and links between operations (so a
generated client, or a stateful fuzzer, can follow a created resource to the operations on it).
"""

from __future__ import annotations

from typing import Any

from chat4all.api.schemas import USERNAME_DOC, UUID_DOC
from chat4all.domain.models import ALL_CHANNELS, INTERNAL

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

# (operation that creates, its status) -> links: name -> (target path, method, parameters, body)
_LINKS: dict[tuple[str, str], dict[str, tuple[str, str, dict[str, str], dict[str, Any] | None]]] = {
    ("/v1/conversations", "post"): {
        "GetConversation": ("/v1/conversations/{conversation_id}", "get", {"conversation_id": "$response.body#/conversation_id"}, None),
        "ListMessages": ("/v1/conversations/{conversation_id}/messages", "get", {"conversation_id": "$response.body#/conversation_id"}, None),
        "SendMessage": (
            "/v1/messages",
            "post",
            {},
            {"conversation_id": "$response.body#/conversation_id", "payload": {"type": "text", "text": "hello"}},
        ),
    },
    ("/v1/messages", "post"): {
        "GetMessage": ("/v1/messages/{message_id}", "get", {"message_id": "$response.body#/message_id"}, None),
        "GetMessageStatus": ("/v1/messages/{message_id}/status", "get", {"message_id": "$response.body#/message_id"}, None),
        "Acknowledge": ("/v1/messages/ack", "post", {}, {"message_ids": ["$response.body#/message_id"], "status": "read"}),
    },
    ("/v1/files/initiate", "post"): {
        "GetUploadState": ("/v1/files/{file_id}/upload", "get", {"file_id": "$response.body#/file_id"}, None),
        "GetFile": ("/v1/files/{file_id}", "get", {"file_id": "$response.body#/file_id"}, None),
        "CompleteUpload": (
            "/v1/files/complete",
            "post",
            {},
            {"file_id": "$response.body#/file_id", "sha256": "0" * 64},
        ),
    },
    ("/v1/webhooks", "post"): {
        "ListDeliveries": ("/v1/webhooks/{webhook_id}/deliveries", "get", {"webhook_id": "$response.body#/webhook_id"}, None),
        "DeleteWebhook": ("/v1/webhooks/{webhook_id}", "delete", {"webhook_id": "$response.body#/webhook_id"}, None),
    },
    ("/v2/conversations", "post"): {
        "GetConversationV2": ("/v2/conversations/{conversation_id}", "get", {"conversation_id": "$response.body#/conversation_id"}, None),
        "ListMessagesV2": ("/v2/conversations/{conversation_id}/messages", "get", {"conversation_id": "$response.body#/conversation_id"}, None),
        "MarkRead": ("/v2/conversations/{conversation_id}/read", "post", {"conversation_id": "$response.body#/conversation_id"}, {"up_to_sequence": 0}),
    },
    ("/v2/messages", "post"): {
        "GetMessageV2": ("/v2/messages/{message_id}", "get", {"message_id": "$response.body#/message_id"}, None),
        "GetMessageVersions": ("/v2/messages/{message_id}/versions", "get", {"message_id": "$response.body#/message_id"}, None),
        "GetMessageStatusV2": ("/v2/messages/{message_id}/status", "get", {"message_id": "$response.body#/message_id"}, None),
    },
    ("/v1/auth/register", "post"): {
        "GetPresence": ("/v1/presence/{username}", "get", {"username": "$response.body#/username"}, None),
    },
}


def complete_openapi(schema: dict[str, Any], services: Any, settings: Any) -> None:
    """Adds to FastAPI's document (made by ``api/app.py``) what only the running server knows."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    external = sorted(services.users.supported_channels)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:  # api.middleware.JsonBody
                responses.setdefault(
                    "415", {"description": "The body is not JSON", "content": {"application/json": {"schema": ERROR_REF}}}
                )
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "path":
                    continue
                name = parameter["name"]
                if name.endswith("_id"):  # api/paths.py: ids route as UUIDs only
                    parameter["schema"] = {"type": "string", **UUID_DOC}
                elif name == "channel":
                    parameter["schema"] = {"type": "string", "enum": external}
                elif name == "username":
                    parameter["schema"] = {"type": "string", **USERNAME_DOC}
    _enforced_limits(components, settings, [INTERNAL, ALL_CHANNELS, *external])
    _links(schema)
    _oauth2_errors(schema, components)
    _examples(schema)


# Request examples that work when run in this order from Swagger UI (/api-docs): register both
# people, sign in as alice (Authorize), start the chat with bob, send into it (the conversation_id
# is the one the previous answer gave: the only value to paste).
PASTE_CONVERSATION = "00000000-0000-4000-8000-000000000000"
_EXAMPLES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("/v1/auth/register", "post"): {
        "alice": {"summary": "alice", "value": {"username": "alice", "password": "correct horse battery"}},
        "bob": {"summary": "bob (to talk to)", "value": {"username": "bob", "password": "correct horse battery"}},
    },
    ("/v1/auth/token", "post"): {
        "password": {
            "summary": "sign in as alice",
            "value": {"grant_type": "password", "username": "alice", "password": "correct horse battery"},
        },
        "refresh": {
            "summary": "a new pair for the refresh token (works once)",
            "value": {"grant_type": "refresh_token", "refresh_token": "<the refresh_token of the last answer>"},
        },
    },
    ("/v1/conversations", "post"): {
        "private": {"summary": "a private chat with bob", "value": {"type": "private", "members": ["bob"]}},
        "group": {"summary": "a group with bob", "value": {"type": "group", "name": "Team", "members": ["bob"]}},
    },
    ("/v1/messages", "post"): {
        "text": {
            "summary": "text, in the app",
            "description": "Replace conversation_id with the one POST /v1/conversations answered. "
            "`from` is the caller (leave it out); `to` defaults to every other member.",
            "value": {"conversation_id": PASTE_CONVERSATION, "payload": {"type": "text", "text": "Hello, Bob!"}},
        },
        "everywhere": {
            "summary": "text, in the app and on every channel the recipients linked",
            "value": {
                "conversation_id": PASTE_CONVERSATION,
                "channels": ["all"],
                "payload": {"type": "text", "text": "The meeting moved to 3 pm"},
            },
        },
    },
}


def _examples(schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    for (path, method), examples in _EXAMPLES.items():
        operation = paths.get(path, {}).get(method)
        if operation is None or "requestBody" not in operation:
            continue
        media = operation["requestBody"].get("content", {}).get("application/json")
        if media is not None:
            media["examples"] = examples


OAUTH2_ERROR = {
    "type": "object",
    "title": "OAuth2Error",
    "description": "The token endpoint's errors, as OAuth2 answers them (RFC 6749 §5.2), with the platform's "
    "own `code`, `details` and `trace_id` beside them",
    "required": ["error", "error_description", "code"],
    "properties": {
        "error": {
            "type": "string",
            "enum": ["invalid_grant", "invalid_request", "unsupported_grant_type", "temporarily_unavailable", "server_error"],
        },
        "error_description": {"type": "string"},
        "code": {"type": "string", "examples": ["unauthenticated"]},
        "details": {},
        "trace_id": {"type": ["string", "null"]},
    },
    "examples": [{"error": "invalid_grant", "error_description": "wrong username or password", "code": "unauthenticated"}],
}


def _oauth2_errors(schema: dict[str, Any], components: dict[str, Any]) -> None:
    """api/errors.py: the token endpoint answers its errors in OAuth2's shape."""
    operation = schema.get("paths", {}).get("/v1/auth/token", {}).get("post")
    if operation is None:
        return
    components["OAuth2Error"] = OAUTH2_ERROR
    for status, response in operation.get("responses", {}).items():
        if status[0] in "45":
            response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/OAuth2Error"}}}


def _enforced_limits(components: dict[str, Any], settings: Any, channels: list[str]) -> None:
    send = components.get("SendMessage", {}).get("properties", {})
    for option in send.get("channels", {}).get("anyOf", []):
        if option.get("type") == "array":
            option["items"] = {"type": "string", "enum": channels}
            option["minItems"] = 1
    text = components.get("TextPayload", {}).get("properties", {}).get("text")
    if text is not None:
        text["maxLength"] = settings.max_text_chars  # longer: 413 payload_too_large
    size = components.get("InitiateUpload", {}).get("properties", {}).get("size")
    if size is not None:
        size["maximum"] = settings.max_file_bytes  # larger: 413 file_too_large
    file_id = components.get("FilePayload", {}).get("properties", {}).get("file_id")
    if file_id is not None:
        file_id.update(UUID_DOC)


def _links(schema: dict[str, Any]) -> None:
    paths = schema.get("paths", {})
    for (path, method), links in _LINKS.items():
        operation = paths.get(path, {}).get(method)
        if operation is None:
            continue
        created = next((s for s in ("201", "202", "200") if s in operation["responses"]), None)
        if created is None:
            continue
        out = operation["responses"][created].setdefault("links", {})
        for name, (target, target_method, parameters, body) in links.items():
            target_operation = paths.get(target, {}).get(target_method)
            if target_operation is None:
                continue
            link: dict[str, Any] = {"operationId": target_operation["operationId"]}
            if parameters:
                link["parameters"] = parameters
            if body is not None:
                link["requestBody"] = body
            out[name] = link
