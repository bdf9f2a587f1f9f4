"""Conversations, messages and their deliveries as stored, and message ids taken at accept time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chat4all.domain.models import Conversation, Delivery, Message, StatusChange


class ConversationStore(Protocol):
    async def create_conversation(self, conversation: Conversation, *, private_key: str | None) -> Conversation:
        """Creates it, or returns the existing private conversation with the same key."""

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def get_conversations(self, conversation_ids: Sequence[str]) -> dict[str, Conversation]:
        """Those of ``conversation_ids`` that exist, by id, in one read."""

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
    # the router's span for it (W3C), kept with the deliveries so later hops join the trace
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class PersistResult:
    new: list[Message]  # stored by this call, in sequence order per conversation
    known: list[Message]  # already stored before (a replay or a duplicate)


class MessageStore(Protocol):
    """Messages and their deliveries, read side. Writes of a delivery go through
    ``DeliveryStore`` (only ``services.deliveries.DeliveryService`` holds one)."""

    async def get_message(self, message_id: str) -> Message | None: ...

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, Message]:
        """Those of these messages that are stored, by id (one round trip)."""

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


class AcceptedIds(Protocol):
    """Client-chosen message_ids taken at accept time, remembered for a TTL: a retry that arrives
    before the router stored the first is still recognised as a duplicate."""

    async def claim(self, message_id: str, *, sender: str, conversation_id: str) -> tuple[str, str] | None:
        """Takes the id; None if it was free, else (sender, conversation_id) of whoever took it."""

    async def release(self, message_id: str) -> None:
        """Gives the id back (its accept failed before reaching the log)."""
