"""Request and response bodies of the public contract (SPEC §2), as they appear in OpenAPI."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from chat4all.domain.models import USERNAME_PATTERN, Password, Payload, Username

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"
# documented, not checked by the schema: an id of the wrong shape names nothing, and the service
# answers as for an unknown one (404, or the field's own error code)
UUID_DOC: dict[str, JsonValue] = {"format": "uuid", "pattern": UUID_PATTERN}
USERNAME_DOC: dict[str, JsonValue] = {"pattern": USERNAME_PATTERN}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: Any = None
    trace_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# auth ------------------------------------------------------------------------------------------


class RegisterRequest(Strict):
    username: Username = Field(examples=["alice"])
    password: Password = Field(examples=["correct horse battery"])


class UserCreated(BaseModel):
    username: str
    created_at: datetime


class PasswordGrant(Strict):
    grant_type: Literal["password"] = "password"
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=128)
    scope: str | None = None  # sent by OAuth2 clients such as Swagger UI; ignored
    client_id: str | None = None
    client_secret: str | None = None


class RefreshGrant(Strict):
    grant_type: Literal["refresh_token"]
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(Strict):
    refresh_token: str | None = Field(
        None, min_length=1, max_length=4096, description="also (or instead of the access token) ends this token's session"
    )


class ChangePassword(Strict):
    current_password: str = Field(min_length=1, max_length=128)
    new_password: Password = Field(examples=["a much better passphrase"])


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# users -----------------------------------------------------------------------------------------


class Me(BaseModel):
    username: str
    created_at: datetime
    channels: dict[str, str] = Field(examples=[{"telegram": "123456789"}])


class ChannelMapping(Strict):
    external_id: str = Field(min_length=1, max_length=255, examples=["123456789"])


class ChannelMapped(BaseModel):
    """``linked``: the identity is the caller's now. ``pending``: it is linked when a message
    carrying ``code`` arrives from it (sent to the service's account on that channel) before
    ``expires_at``."""

    channel: str
    external_id: str
    status: Literal["linked", "pending"] = "linked"
    code: str | None = Field(None, description="the code to send from the identity (pending only)")
    expires_at: datetime | None = None
    instructions: str | None = None


# conversations ---------------------------------------------------------------------------------


class CreateConversation(Strict):
    type: Literal["private", "group"]
    members: list[Username] = Field(min_length=1, max_length=1000)
    name: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] | None = None


class ConversationOut(BaseModel):
    conversation_id: str
    type: Literal["private", "group"]
    name: str | None
    members: list[str]
    created_by: str
    created_at: datetime
    metadata: dict[str, Any]


class ConversationList(BaseModel):
    items: list[ConversationOut]
    next_cursor: str | None


# messages --------------------------------------------------------------------------------------


class SendMessage(Strict):
    message_id: str | None = Field(None, description="UUID; generated when absent", max_length=64, pattern=UUID_PATTERN)
    conversation_id: str = Field(max_length=64, json_schema_extra=UUID_DOC)
    from_: str | None = Field(None, alias="from", max_length=64, json_schema_extra=USERNAME_DOC)
    to: list[Annotated[str, Field(json_schema_extra=USERNAME_DOC)]] | None = Field(None, max_length=1000)
    channels: list[str] | None = Field(None, max_length=10, examples=[["internal"]])
    payload: Payload
    metadata: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MessageAccepted(BaseModel):
    message_id: str
    conversation_id: str
    status: str = Field(examples=["accepted"])
    duplicate: bool | None = None


class MessageOut(BaseModel):
    message_id: str
    conversation_id: str
    sequence_number: int
    from_: str = Field(alias="from")
    to: list[str]
    channels: list[str]
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime

    model_config = ConfigDict(populate_by_name=True)


class MessageList(BaseModel):
    items: list[MessageOut]
    next_since: int | None


class RecipientStatus(BaseModel):
    username: str
    channel: str
    status: Literal["SENT", "DELIVERED", "READ", "FAILED"]
    updated_at: datetime
    error: str | None = None


class HistoryEntry(BaseModel):
    status: Literal["SENT", "DELIVERED", "READ", "FAILED"]
    at: datetime
    username: str
    channel: str
    detail: str | None = None


class MessageStatusOut(BaseModel):
    message_id: str
    status: Literal["SENT", "DELIVERED", "READ", "FAILED"]
    recipients: list[RecipientStatus]
    history: list[HistoryEntry]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_id": "0b6c2f1e-3f0a-4a8e-9c55-7d7e0c1f2a3b",
                    "status": "DELIVERED",
                    "recipients": [
                        {"username": "bob", "channel": "internal", "status": "DELIVERED", "updated_at": "2026-11-30T08:00:01Z"}
                    ],
                    "history": [
                        {"status": "SENT", "at": "2026-11-30T08:00:00Z", "username": "bob", "channel": "internal"},
                        {"status": "DELIVERED", "at": "2026-11-30T08:00:01Z", "username": "bob", "channel": "internal"},
                    ],
                }
            ]
        }
    )


class Receipt(Strict):
    message_ids: list[Annotated[str, Field(pattern=UUID_PATTERN, json_schema_extra={"format": "uuid"})]] = Field(
        min_length=1, max_length=1000
    )
    status: Literal["delivered", "read"]


# presence & health -----------------------------------------------------------------------------


class PresenceOut(BaseModel):
    username: str
    status: Literal["online", "offline"]
    last_seen: datetime | None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# files -----------------------------------------------------------------------------------------


class InitiateUpload(Strict):
    filename: str = Field(min_length=1, max_length=255, examples=["holiday.mp4"])
    size: int = Field(
        ge=1, description="bytes; at most the configured maximum (2 GiB by default; 413 beyond)", examples=[1_800_000_000]
    )
    content_type: str | None = Field(None, max_length=255, examples=["video/mp4"])
    sha256: str | None = Field(None, description="hex digest, if known now; checked again on complete", pattern=SHA256_PATTERN)


class PartUrlOut(BaseModel):
    part_number: int
    url: str = Field(description="PUT exactly this part's bytes here, with no token")


class UploadTicketOut(BaseModel):
    file_id: str
    part_size: int = Field(description="every part has this size except the last, which has the rest")
    parts: list[PartUrlOut]
    expires_at: datetime = Field(description="when the part URLs stop working; ask the upload state for fresh ones")


class UploadedPart(BaseModel):
    part_number: int
    size: int


class UploadStateOut(BaseModel):
    file_id: str
    status: Literal["uploading", "completed", "failed"]
    part_size: int
    uploaded_parts: list[UploadedPart]
    missing_parts: list[PartUrlOut]
    expires_at: datetime | None = None


class CompleteUpload(Strict):
    file_id: str = Field(max_length=64, json_schema_extra=UUID_DOC)
    sha256: str = Field(pattern=SHA256_PATTERN, description="hex SHA-256 of the whole file")


class FileOut(BaseModel):
    file_id: str
    filename: str
    size: int
    content_type: str
    sha256: str | None
    status: Literal["uploading", "completed", "failed"]
    created_at: datetime
    completed_at: datetime | None = None
    download_url: str | None = Field(None, description="GET with no token, Range allowed; null until completed")
    download_expires_at: datetime | None = None


# webhooks --------------------------------------------------------------------------------------


class CreateWebhook(Strict):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/chat4all/events"])
    events: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        None,
        min_length=1,
        max_length=10,
        examples=[["message.status", "file.completed"]],
        description=(
            'event types to receive; omitted or ["*"]: every type, including types added later, except '
            '`message.received` (every message addressed to you, with its content), which is received only '
            'when named (e.g. ["*", "message.received"])'
        ),
    )


class WebhookOut(BaseModel):
    webhook_id: str
    url: str
    events: list[str]
    created_at: datetime
    status: Literal["active", "disabled"]
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


class WebhookCreated(WebhookOut):
    secret: str = Field(description="signs every callback (Chat4All-Signature); shown only in this answer")


class WebhookList(BaseModel):
    items: list[WebhookOut]


class WebhookAttemptOut(BaseModel):
    attempt: int = Field(description="1 for the first try")
    at: datetime
    status_code: int | None = Field(description="what the endpoint answered; null if it did not")
    latency_ms: int
    error: str | None = Field(description="why there was no answer (timeout, refused, ...)")


class WebhookDeliveryOut(BaseModel):
    event_id: str
    type: str
    state: Literal["pending", "delivered", "failed", "cancelled"]
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="when the next attempt is due, while pending")
    finished_at: datetime | None
    last_error: str | None
    payload: dict[str, Any] = Field(description="the body that is POSTed")
    attempts: list[WebhookAttemptOut]


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDeliveryOut]
    next_cursor: str | None


# connectors ------------------------------------------------------------------------------------


class ConnectorWebhookAnswer(BaseModel):
    ok: bool = True
    accepted: int = Field(description="events acted on (receipts recorded, messages posted)")
    ignored: int = Field(description="events about identities or messages this platform does not know")
