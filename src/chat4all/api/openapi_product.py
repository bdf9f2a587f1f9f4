"""The OpenAPI document as a product (issue 18): what generated clients need to work unaided.

``openapi-python-client`` and ``openapi-typescript`` + ``openapi-fetch`` (under ``tsc --strict``)
run the whole flow with what they generate from this document, and ``redocly lint`` (recommended
rules) is clean; ``tests/api/test_v2_live_openapi_clients.py`` keeps it so. What this adds to
FastAPI's document, after ``api/openapi.py`` (the server's enforced limits):

- readable operationIds (``sendMessage``, not ``send_v1_messages_post``): ``operation_id``;
- a licence, a ``servers`` entry, ``security: []`` on the public operations;
- the token endpoint documented with one media type, JSON (the password or the refresh grant,
  told apart by ``grant_type``); the OAuth2 form post is still accepted (Swagger's Authorize);
- ``MessageOut.payload`` as a ``oneOf`` keyed on ``type`` (text, file with the fields the server
  adds, system), the send's 202 and 200-duplicate answers with their own schemas;
- 429 where the abuse limits answer it, ``/metrics`` as ``text/plain``;
- the error codes as an enum;
- the callbacks a webhook receives as OpenAPI 3.1 ``webhooks``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}

# every code an error answer can carry (tests/unit/test_openapi_product.py checks the source for others)
ERROR_CODES: tuple[str, ...] = (
    "bad_request", "checksum_mismatch", "conflict", "error", "file_not_ready", "file_too_large", "forbidden",
    "internal", "invalid_signature", "malformed_json", "method_not_allowed", "not_acceptable", "not_a_group",
    "not_found", "part_size_mismatch", "part_too_large", "payload_too_large", "rate_limited", "unauthenticated",
    "unavailable", "unknown_user", "unsupported_channel", "unsupported_media_type", "upload_failed",
    "upload_incomplete", "upload_interrupted", "url_expired", "url_not_allowed", "username_taken",
    "validation_error", "webhook_limit_reached", "wrong_password",
)

_OPERATION_IDS: dict[tuple[str, str], str] = {
    ("GET", "/health/live"): "getLiveness",
    ("GET", "/health/ready"): "getReadiness",
    ("GET", "/metrics"): "getMetrics",
    ("POST", "/v1/auth/register"): "register",
    ("POST", "/v1/auth/token"): "createToken",
    ("POST", "/v1/auth/logout"): "logout",
    ("POST", "/v1/auth/password"): "changePassword",
    ("GET", "/v1/users/me"): "getMe",
    ("PUT", "/v1/users/me/channels/{channel}"): "setChannel",
    ("DELETE", "/v1/users/me/channels/{channel}"): "deleteChannel",
    ("POST", "/v1/conversations"): "createConversation",
    ("GET", "/v1/conversations"): "listConversations",
    ("GET", "/v1/conversations/{conversation_id}"): "getConversation",
    ("GET", "/v1/conversations/{conversation_id}/messages"): "listConversationMessages",
    ("POST", "/v1/messages"): "sendMessage",
    ("POST", "/v1/messages/ack"): "acknowledgeMessages",
    ("GET", "/v1/messages/{message_id}"): "getMessage",
    ("GET", "/v1/messages/{message_id}/status"): "getMessageStatus",
    ("GET", "/v1/presence/{username}"): "getPresence",
    ("POST", "/v1/files/initiate"): "initiateUpload",
    ("GET", "/v1/files/{file_id}/upload"): "getUploadState",
    ("POST", "/v1/files/complete"): "completeUpload",
    ("GET", "/v1/files/{file_id}"): "getFile",
    ("GET", "/v1/webhooks"): "listWebhooks",
    ("POST", "/v1/webhooks"): "createWebhook",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "deleteWebhook",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "listWebhookDeliveries",
    ("POST", "/v1/connectors/{channel}/webhook"): "receiveConnectorWebhook",
    ("POST", "/v2/conversations/{conversation_id}/typing"): "setTypingV2",
}

# operations the abuse limits can answer 429 (services/abuse.py), besides those that say so already
_RATE_LIMITED = {("post", "/v1/messages"), ("post", "/v2/messages"), ("post", "/v1/conversations"), ("post", "/v2/conversations")}


def operation_id(route: APIRoute) -> str:
    """FastAPI's ``generate_unique_id_function``: the table's name, else the route function's
    name in camelCase, with ``V2`` after it for a v2 route (``listInboxV2``)."""
    path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # "{file_id:id}" (api/paths.py) as documented
    for method in sorted(route.methods or ()):
        named = _OPERATION_IDS.get((method, path))
        if named is not None:
            return named
    head, *rest = route.name.split("_")
    name = head + "".join(part.capitalize() for part in rest)
    return name + "V2" if path.startswith("/v2/") else name


def polish(schema: dict[str, Any], *, servers: list[dict[str, str]]) -> None:
    schema["info"]["license"] = {"name": "Apache-2.0", "identifier": "Apache-2.0"}
    schema["servers"] = servers
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    paths = schema.get("paths", {})
    for path, operations in paths.items():
        for method, operation in operations.items():
            if "security" not in operation:
                operation["security"] = []  # public: no token
            responses = operation.setdefault("responses", {})
            if (method, path) in _RATE_LIMITED and "429" not in responses:
                responses["429"] = {
                    "description": "Rate limited: see Retry-After and the RateLimit-* headers",
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
            if "429" in responses:
                responses["429"].setdefault("headers", {})["Retry-After"] = {
                    "description": "seconds to wait before trying again",
                    "schema": {"type": "integer", "minimum": 0},
                }
    _metrics(paths)
    _token(paths, components)
    _payloads(components)
    _send_answers(paths, components)
    _error_codes(components)
    schema["webhooks"] = _webhooks(components)


def _metrics(paths: dict[str, Any]) -> None:
    operation = paths.get("/metrics", {}).get("get")
    if operation is not None:
        operation["responses"]["200"] = {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }


def _token(paths: dict[str, Any], components: dict[str, Any]) -> None:
    grant = components.get("PasswordGrant")
    if grant is not None:
        for prop in grant.get("properties", {}).values():
            prop.pop("default", None)  # a default is not a value the client must send
        grant["required"] = ["grant_type", "username", "password"]
    operation = paths.get("/v1/auth/token", {}).get("post")
    if operation is None:
        return
    # the examples api/openapi.py gave (they run in order with the register examples) are kept
    given = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples")
    operation["requestBody"] = {
        "required": True,
        "description": "The password grant or the refresh grant. The OAuth2 form post "
        "(`application/x-www-form-urlencoded`, what Swagger's Authorize sends) is accepted too.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [{"$ref": "#/components/schemas/PasswordGrant"}, {"$ref": "#/components/schemas/RefreshGrant"}],
                    "discriminator": {
                        "propertyName": "grant_type",
                        "mapping": {
                            "password": "#/components/schemas/PasswordGrant",
                            "refresh_token": "#/components/schemas/RefreshGrant",
                        },
                    },
                },
                "examples": given
                or {
                    "password": {"value": {"grant_type": "password", "username": "alice", "password": "correct horse battery"}},
                    "refresh": {"value": {"grant_type": "refresh_token", "refresh_token": "…"}},
                },
            }
        },
    }


_SYSTEM_EVENTS = ["member_added", "member_removed", "member_left", "role_changed", "renamed", "topic_changed"]


def _payloads(components: dict[str, Any]) -> None:
    components["TextPayloadOut"] = {
        "title": "TextPayloadOut",
        "type": "object",
        "properties": {"type": {"type": "string", "const": "text"}, "text": {"type": "string"}},
        "required": ["type", "text"],
    }
    components["FilePayloadOut"] = {
        "title": "FilePayloadOut",
        "type": "object",
        "description": "A file message: what the sender sent and the file's metadata the server adds (R5.5)",
        "properties": {
            "type": {"type": "string", "const": "file"},
            "file_id": {"type": "string", "format": "uuid"},
            "caption": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "filename": {"type": "string"},
            "size": {"type": "integer", "minimum": 0},
            "content_type": {"type": "string"},
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
        "required": ["type", "file_id", "filename", "size", "content_type", "sha256"],
    }
    components["SystemPayload"] = {
        "title": "SystemPayload",
        "type": "object",
        "description": "A change of the conversation in the timeline (API v2); the event's own fields beside",
        "properties": {
            "type": {"type": "string", "const": "system"},
            "event": {"type": "string", "enum": _SYSTEM_EVENTS},
            "actor": {"type": "string"},
        },
        "required": ["type", "event", "actor"],
        "additionalProperties": True,
    }
    union = {
        "oneOf": [
            {"$ref": "#/components/schemas/TextPayloadOut"},
            {"$ref": "#/components/schemas/FilePayloadOut"},
            {"$ref": "#/components/schemas/SystemPayload"},
        ],
        "discriminator": {
            "propertyName": "type",
            "mapping": {
                "text": "#/components/schemas/TextPayloadOut",
                "file": "#/components/schemas/FilePayloadOut",
                "system": "#/components/schemas/SystemPayload",
            },
        },
    }
    message = components.get("MessageOut")
    if message is not None:
        message["properties"]["payload"] = union


def _send_answers(paths: dict[str, Any], components: dict[str, Any]) -> None:
    components["MessageAccepted"] = {
        "title": "MessageAccepted",
        "type": "object",
        "description": "The message is durably on the log; delivery happens after",
        "properties": {
            "message_id": {"type": "string", "format": "uuid"},
            "conversation_id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "const": "accepted"},
        },
        "required": ["message_id", "conversation_id", "status"],
        "examples": [
            {
                "message_id": "0b6d3c52-8f1e-4c3a-9d7e-2f5a6b7c8d9e",
                "conversation_id": "5f0c6a1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
                "status": "accepted",
            }
        ],
    }
    components["MessageDuplicate"] = {
        "title": "MessageDuplicate",
        "type": "object",
        "description": "This message_id was sent before: the original's current status, nothing sent again",
        "properties": {
            "message_id": {"type": "string", "format": "uuid"},
            "conversation_id": {"type": "string", "format": "uuid"},
            "status": {"type": "string", "enum": ["accepted", "SENT", "DELIVERED", "READ", "FAILED"]},
            "duplicate": {"type": "boolean", "const": True},
        },
        "required": ["message_id", "conversation_id", "status", "duplicate"],
        "examples": [
            {
                "message_id": "0b6d3c52-8f1e-4c3a-9d7e-2f5a6b7c8d9e",
                "conversation_id": "5f0c6a1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b",
                "status": "DELIVERED",
                "duplicate": True,
            }
        ],
    }
    for path in ("/v1/messages", "/v2/messages"):
        operation = paths.get(path, {}).get("post")
        if operation is None:
            continue
        responses = operation["responses"]
        for status, name in (("202", "MessageAccepted"), ("200", "MessageDuplicate")):
            if status in responses:
                responses[status]["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


def _error_codes(components: dict[str, Any]) -> None:
    body = components.get("ErrorBody")
    if body is not None:
        body["properties"]["code"] = {
            "type": "string",
            "enum": list(ERROR_CODES),
            "description": "What went wrong, for a program to act on; `message` says it for a person",
            "examples": ["validation_error"],
        }


def _webhooks(components: dict[str, Any]) -> dict[str, Any]:
    """The callbacks POSTed to a registered webhook URL (domain/webhooks.py), signed with
    ``Chat4All-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    status_data = {
        "type": "object",
        "properties": {
            "message_id": {"type": "string", "format": "uuid"},
            "conversation_id": {"type": "string", "format": "uuid"},
            "username": {"type": "string"},
            "channel": {"type": "string"},
            "status": {"type": "string", "enum": ["SENT", "DELIVERED", "READ", "FAILED"]},
            "at": {"type": "string", "format": "date-time"},
            "detail": {"type": "string"},
        },
        "required": ["message_id", "conversation_id", "username", "channel", "status", "at"],
    }
    file_data = {
        "type": "object",
        "properties": {
            "file_id": {"type": "string", "format": "uuid"},
            "filename": {"type": "string"},
            "size": {"type": "integer"},
            "content_type": {"type": "string"},
            "sha256": {"type": "string"},
            "status": {"type": "string", "const": "completed"},
            "at": {"type": "string", "format": "date-time"},
        },
        "required": ["file_id", "filename", "size", "content_type", "sha256", "status", "at"],
    }
    received_data = {
        "type": "object",
        "properties": {
            "recipient": {"type": "string"},
            "message": {
                "allOf": [{"$ref": "#/components/schemas/MessageOut"}],
                "description": "the message as v2 shows it: kind, edited_at and deleted beside v1's fields",
            },
        },
        "required": ["recipient", "message"],
    }
    hooks: dict[str, Any] = {}
    for event_type, name, data, summary in (
        ("message.status", "MessageStatusCallback", status_data, "A delivery of a message you sent moved"),
        ("file.completed", "FileCompletedCallback", file_data, "A file you uploaded is complete and verified"),
        ("message.received", "MessageReceivedCallback", received_data, "A message addressed to you (opt-in)"),
    ):
        components[name] = {
            "title": name,
            "type": "object",
            "properties": {
                "event_id": {"type": "string", "format": "uuid", "description": "the same for every attempt"},
                "type": {"type": "string", "const": event_type},
                "created_at": {"type": "string", "format": "date-time"},
                "data": data,
            },
            "required": ["event_id", "type", "created_at", "data"],
        }
        hooks[event_type] = {
            "post": {
                "operationId": "on" + "".join(p.capitalize() for p in event_type.replace(".", "_").split("_")),
                "summary": summary,
                "description": "Signed with `Chat4All-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`; "
                "`Chat4All-Event-Id` and `Chat4All-Event-Type` name it. Answer 2xx; anything else is retried.",
                "security": [],
                "parameters": [
                    {"name": "Chat4All-Signature", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "Chat4All-Event-Id", "in": "header", "required": True, "schema": {"type": "string"}},
                    {"name": "Chat4All-Event-Type", "in": "header", "required": True, "schema": {"type": "string"}},
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                },
                "responses": {"2XX": {"description": "Received"}},
            }
        }
    return hooks
