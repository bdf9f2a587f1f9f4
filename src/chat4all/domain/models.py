"""Domain records and the validation rules of their fields (SPEC §1, §2)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chat4all.domain.status import DeliveryStatus

USERNAME_PATTERN = r"^[a-z0-9._-]{3,32}$"
_USERNAME_RE = re.compile(USERNAME_PATTERN)

Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128)]

ALL_CHANNELS = "all"  # a recipient's in-app channel and every channel they mapped


class Channel(StrEnum):
    """Where a message can be delivered. ``internal`` is the platform's own WebSocket."""

    INTERNAL = "internal"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    INSTAGRAM = "instagram"
    MESSENGER = "messenger"


INTERNAL: str = Channel.INTERNAL.value  # the one name for the in-app channel in every layer

EXTERNAL_CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel if c is not Channel.INTERNAL)


def is_valid_username(value: str) -> bool:
    return bool(_USERNAME_RE.match(value))


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class User(_Record):
    username: str
    password_hash: str
    created_at: datetime


class ConversationType(StrEnum):
    PRIVATE = "private"
    GROUP = "group"


class Conversation(_Record):
    conversation_id: str
    type: ConversationType
    name: str | None
    members: tuple[str, ...]
    created_by: str
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)
    # API v2: the topic, the roles above member (owner, admins) and who left or was removed
    topic: str | None = None
    roles: dict[str, str] = Field(default_factory=dict)
    former: tuple[str, ...] = ()

    def has_member(self, username: str) -> bool:
        return username in self.members

    def role_of(self, username: str) -> str | None:
        if username not in self.members:
            return None
        return self.roles.get(username, "member")


class TextPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: Annotated[str, StringConstraints(min_length=1)]


class FilePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["file"]
    file_id: str
    caption: str | None = None


Payload = Annotated[TextPayload | FilePayload, Field(discriminator="type")]


class Message(_Record):
    message_id: str
    conversation_id: str
    sequence_number: int
    sender: str
    recipients: tuple[str, ...]
    channels: tuple[str, ...]
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    # API v2: "user" or "system" (a change of the conversation in its timeline), edits, tombstones
    kind: str = "user"
    edited_at: datetime | None = None
    deleted: bool = False


class Delivery(_Record):
    """One recipient × channel of a message, and where it stands."""

    message_id: str
    username: str
    channel: str
    status: DeliveryStatus
    updated_at: datetime
    error: str | None = None


class StatusChange(_Record):
    message_id: str
    username: str
    channel: str
    status: DeliveryStatus
    at: datetime
    detail: str | None = None


class Presence(_Record):
    username: str
    status: Literal["online", "offline"]
    last_seen: datetime | None
