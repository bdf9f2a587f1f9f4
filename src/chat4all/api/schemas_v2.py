"""Request and response bodies of API v2's conversations and messages (docs/api-v2.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chat4all.api.schemas import UUID_DOC, Strict
from chat4all.domain.ids import MAX_INT64
from chat4all.domain.models import TextPayload, Username

_MESSAGE_EXAMPLE: dict[str, Any] = {
    "message_id": "0b6c2f1e-3f0a-4a8e-9c55-7d7e0c1f2a3b",
    "conversation_id": "5f1e2d3c-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
    "sequence_number": 42,
    "kind": "user",
    "from": "alice",
    "to": ["bob"],
    "channels": ["internal"],
    "payload": {"type": "text", "text": "hi"},
    "metadata": {},
    "created_at": "2026-11-30T08:00:00+00:00",
    "edited_at": None,
    "deleted": False,
}
_SYSTEM_EXAMPLE: dict[str, Any] = {
    **_MESSAGE_EXAMPLE,
    "sequence_number": 43,
    "kind": "system",
    "payload": {"type": "system", "event": "member_added", "actor": "alice", "usernames": ["carol"]},
}
_SUMMARY_EXAMPLE: dict[str, Any] = {
    "conversation_id": "5f1e2d3c-4b5a-4c6d-8e7f-9a0b1c2d3e4f",
    "type": "group",
    "name": "Team",
    "topic": "launch on Friday",
    "members": [{"username": "alice", "role": "owner"}, {"username": "bob", "role": "member"}],
    "created_by": "alice",
    "created_at": "2026-11-30T07:00:00+00:00",
    "metadata": {},
    "last_message": _MESSAGE_EXAMPLE,
    "last_sequence": 42,
    "last_activity_at": "2026-11-30T08:00:00+00:00",
    "read_up_to": 40,
    "unread_count": 2,
    "membership": "member",
}


class V2Message(BaseModel):
    message_id: str
    conversation_id: str
    sequence_number: int
    kind: Literal["user", "system"]
    from_: str = Field(alias="from")
    to: list[str]
    channels: list[str]
    payload: dict[str, Any] | None = Field(
        description="text or file as sent (or as last edited); a system message's change; null once deleted"
    )
    metadata: dict[str, Any]
    created_at: datetime
    edited_at: datetime | None = None  # a default: the OpenAPI document drops null example values
    deleted: bool

    model_config = ConfigDict(populate_by_name=True, json_schema_extra={"examples": [_MESSAGE_EXAMPLE, _SYSTEM_EXAMPLE]})


class Member(BaseModel):
    username: str
    role: Literal["owner", "admin", "member"]


class ConversationSummary(BaseModel):
    conversation_id: str
    type: Literal["private", "group"]
    name: str | None
    topic: str | None
    members: list[Member]
    created_by: str
    created_at: datetime
    metadata: dict[str, Any]
    last_message: V2Message | None
    last_sequence: int
    last_activity_at: datetime
    read_up_to: int
    unread_count: int
    membership: Literal["member", "left"] = Field(
        description='"left" only in a `since` sync, once, for a conversation the caller left or was removed from'
    )

    model_config = ConfigDict(json_schema_extra={"examples": [_SUMMARY_EXAMPLE]})


class Inbox(BaseModel):
    items: list[ConversationSummary]
    next_cursor: str | None = Field(None, description="the `cursor` of the next (older) page; null on the last page")
    sync_token: str = Field(description="give it as `since` to get only what changed after this answer")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"items": [_SUMMARY_EXAMPLE], "next_cursor": None, "sync_token": "eyJ0IjoiMjAyNi0xMS0zMFQwODowMDowMCswMDowMCJ9"}
            ]
        }
    )


class CreateConversationV2(Strict):
    type: Literal["private", "group"]
    members: list[Username] = Field(min_length=1, max_length=1000, examples=[["bob", "carol"]])
    name: str | None = Field(None, max_length=200, examples=["Team"])
    topic: str | None = Field(None, max_length=500, examples=["launch on Friday"])
    metadata: dict[str, Any] | None = None


class UpdateConversation(Strict):
    name: str | None = Field(None, max_length=200, examples=["Launch team"])
    topic: str | None = Field(None, max_length=500, examples=["launch moved to Monday"])


class AddMembers(Strict):
    usernames: list[Username] = Field(min_length=1, max_length=1000, examples=[["carol"]])


class SetRole(Strict):
    role: Literal["owner", "admin", "member"] = Field(examples=["admin"])


class Timeline(BaseModel):
    items: list[V2Message] = Field(description="ascending by sequence_number")
    prev_cursor: int | None = Field(None, description="`before` for the older page; null at the start")
    next_cursor: int | None = Field(None, description="`after` for the newer page; null when this page reaches the latest")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_MESSAGE_EXAMPLE, _SYSTEM_EXAMPLE], "prev_cursor": 42, "next_cursor": None}]}
    )


class ReadUpTo(Strict):
    up_to_sequence: int = Field(ge=0, le=MAX_INT64, examples=[42])


class ReadCursorOut(BaseModel):
    conversation_id: str
    read_up_to: int
    unread_count: int

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"conversation_id": _SUMMARY_EXAMPLE["conversation_id"], "read_up_to": 42, "unread_count": 0}]}
    )


class EditMessage(Strict):
    payload: TextPayload | None = Field(None, examples=[{"type": "text", "text": "hi, edited"}])
    metadata: dict[str, Any] | None = Field(None, examples=[{"pinned": True}])


class MessageVersionOut(BaseModel):
    version: int = Field(description="1 is the message as sent")
    payload: dict[str, Any]
    metadata: dict[str, Any]
    at: datetime


class MessageVersions(BaseModel):
    items: list[MessageVersionOut] = Field(description="oldest first; empty once the message is deleted")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"version": 1, "payload": {"type": "text", "text": "hi"}, "metadata": {}, "at": "2026-11-30T08:00:00+00:00"},
                        {"version": 2, "payload": {"type": "text", "text": "hi, edited"}, "metadata": {}, "at": "2026-11-30T08:01:00+00:00"},
                    ]
                }
            ]
        }
    )


ConversationIdDoc = Annotated[str, Field(json_schema_extra=UUID_DOC)]
