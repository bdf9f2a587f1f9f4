"""The outside things Chat4All talks to, as Protocols. Services depend on these only.

Adapters live in ``chat4all.adapters`` and are chosen by URL in ``chat4all.runtime``. Each
port has one contract test suite (``tests/contract``) run against every adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chat4all.domain.frames import Frame
from chat4all.domain.models import Conversation, Delivery, Message, Presence, StatusChange, User
from chat4all.domain.status import DeliveryStatus


class MetadataStore(Protocol):
    """Users, their channel identities and their refresh-token families (etcd in production)."""

    async def create_user(self, user: User) -> None:
        """Raises UsernameTaken if the name exists."""

    async def get_user(self, username: str) -> User | None: ...

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]: ...

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        """Raises Conflict if another user already holds (channel, external_id)."""

    async def delete_channel(self, username: str, channel: str) -> bool: ...

    async def get_channels(self, username: str) -> dict[str, str]: ...

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None: ...

    async def add_refresh_token(
        self, *, token_id: str, family_id: str, username: str, expires_at: datetime
    ) -> None: ...

    async def spend_refresh_token(self, token_id: str) -> "RefreshSpend":
        """Marks the token used, exactly once; says what it found."""

    async def revoke_refresh_family(self, family_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RefreshSpend:
    """Outcome of spending a refresh token: ``ok`` once, then ``reused``; ``unknown``/``revoked``."""

    outcome: str  # "ok" | "reused" | "unknown" | "revoked"
    username: str | None = None
    family_id: str | None = None


class ConversationStore(Protocol):
    async def create_conversation(self, conversation: Conversation, *, private_key: str | None) -> Conversation:
        """Creates it, or returns the existing private conversation with the same key."""

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def list_conversations(
        self, username: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Conversation]:
        """Newest first; ``after`` is the (created_at, conversation_id) of the last one seen."""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What the router persists for one accepted message."""

    message_id: str
    conversation_id: str
    sender: str
    recipients: Sequence[str]
    channels: Sequence[str]
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    # one delivery per (recipient, channel), channels already resolved ("all" expanded)
    targets: Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PersistResult:
    new: list[Message]  # stored by this call, in sequence order per conversation
    known: list[Message]  # already stored before (a replay or a duplicate)


class MessageStore(Protocol):
    async def persist_batch(self, messages: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        """In one transaction: skip known message_ids, assign dense sequence numbers per
        conversation, insert messages, one SENT delivery per target and its history."""

    async def get_message(self, message_id: str) -> Message | None: ...

    async def list_messages(
        self, conversation_id: str, *, viewer: str, since: int, limit: int
    ) -> list[Message]:
        """Messages the viewer sent or receives, sequence_number > since, ascending."""

    async def deliveries(self, message_id: str) -> list[Delivery]: ...

    async def history(self, message_id: str) -> list[StatusChange]: ...

    async def pending_for(
        self, username: str, *, channel: str, after: tuple[str, int] | None, limit: int
    ) -> list[Message]:
        """Messages whose delivery to (username, channel) is still SENT, ordered by
        (conversation_id, sequence_number); ``after`` continues from the last one returned."""

    async def advance(
        self,
        *,
        username: str,
        channel: str,
        message_ids: Sequence[str],
        status: DeliveryStatus,
        at: datetime,
        detail: str | None = None,
    ) -> list[tuple[Message, list[StatusChange]]]:
        """Moves the deliveries forward (never back) in one transaction and records history.
        Returns, per message that moved, the status changes recorded."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


class EventLog(Protocol):
    """A partitioned, durable, replayable log (Kafka in production, a table in embedded)."""

    async def append(self, topic: str, key: str, value: bytes) -> None:
        """Returns once the record is durable; raises Unavailable otherwise."""

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None: ...

    def consumer(self, topic: str, group: str) -> "LogConsumer": ...


class LogConsumer(Protocol):
    async def start(self) -> None: ...

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        """The next records after the committed offsets (or after the last poll)."""

    async def commit(self, records: Sequence[LogRecord]) -> None:
        """Marks everything up to these records as processed, per partition."""

    async def seek(self, partition: int, offset: int) -> None:
        """Replays from ``offset`` (inclusive) on the next poll."""

    async def stop(self) -> None: ...


class PresenceStore(Protocol):
    async def connected(self, username: str, connection_id: str, *, node: str, at: datetime) -> bool:
        """Records a socket; True if the user was offline before."""

    async def heartbeat(self, username: str, connection_id: str, *, at: datetime) -> None: ...

    async def disconnected(self, username: str, connection_id: str, *, at: datetime) -> bool:
        """Forgets a socket; True if it was the user's last one."""

    async def get(self, username: str, *, now: datetime) -> Presence: ...

    async def nodes_for(self, usernames: Sequence[str], *, now: datetime) -> dict[str, set[str]]:
        """For each online user, the nodes holding their sockets."""


class Push(Protocol):
    """Hands ready-encoded frames to whichever node holds the recipients' sockets."""

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        """Each item is (username, frame); users with no socket anywhere are skipped."""
