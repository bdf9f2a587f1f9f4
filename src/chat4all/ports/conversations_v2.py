"""API v2's stores: conversations that change (members, roles, read cursors, the inbox) and the
timeline (pages both ways, edits with versions, deletes as tombstones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chat4all.domain.models import Conversation, Message


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A conversation as one user sees it in their inbox."""

    conversation: Conversation
    username: str  # whose view it is
    membership: str  # "member", or "left" (they left or were removed)
    read_up_to: int
    last_seq: int
    last_activity_at: datetime


@dataclass(frozen=True, slots=True)
class MessageVersion:
    version: int  # 1 = the message as sent
    payload: dict[str, Any]
    metadata: dict[str, Any]
    at: datetime


class MembershipStore(Protocol):
    """Who is in a conversation and in which role, its name and topic, each member's read cursor."""

    async def update_details(self, conversation_id: str, changes: dict[str, str | None], *, at: datetime) -> None:
        """Sets ``name`` and/or ``topic``."""

    async def add_members(self, conversation_id: str, usernames: Sequence[str], *, at: datetime) -> list[str]:
        """Makes them members (role ``member``; a former member comes back); returns who was not one."""

    async def remove_member(self, conversation_id: str, username: str, *, at: datetime) -> tuple[bool, str | None]:
        """Marks the member as gone (the row stays): (whether they were a member, who became
        owner — an owner who goes passes ownership to the earliest admin, else the earliest member)."""

    async def set_roles(self, conversation_id: str, roles: dict[str, str], *, at: datetime) -> None: ...

    async def entry(self, conversation_id: str, username: str) -> InboxEntry | None:
        """The conversation as ``username`` sees it, read from the primary; None if never a member."""

    async def inbox(
        self,
        username: str,
        *,
        limit: int,
        after: tuple[datetime, str] | None,
        changed_since: datetime | None,
    ) -> list[InboxEntry]:
        """By last activity, newest first; ``after`` is the (last_activity_at, conversation_id) of
        the last one seen. Without ``changed_since``: the conversations they are a member of; with
        it: those that changed since (and those they left since, as ``left``)."""

    async def entries(self, conversation_id: str, usernames: Sequence[str]) -> list[InboxEntry]:
        """``entry`` for several users of one conversation at once."""

    async def unread_for_members(self, conversation_id: str, usernames: Sequence[str]) -> dict[str, int]:
        """``unread_counts`` of one conversation for several users, each from their own cursor."""

    async def move_read_cursor(self, conversation_id: str, username: str, up_to: int, *, at: datetime) -> int:
        """Forward only, never past the last sequence number; returns the cursor."""

    async def unread_counts(self, username: str, cursors: dict[str, int]) -> dict[str, int]:
        """Per conversation: user messages after the cursor, addressed to them, not deleted."""


class TimelineStore(Protocol):
    """Messages as API v2 pages them, edits (with their versions) and deletes (tombstones)."""

    async def page(
        self, conversation_id: str, *, viewer: str, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        """Messages the viewer sent or receives, ascending: the latest ``limit``, the ``limit``
        before ``before``, or the ``limit`` after ``after``."""

    async def has_visible(self, conversation_id: str, *, viewer: str, below: int | None, above: int | None) -> bool:
        """Whether the viewer can see a message with sequence_number < below (or > above)."""

    async def last_messages(self, viewer: str, conversation_ids: Sequence[str]) -> dict[str, Message]: ...

    async def unread_ids(self, conversation_id: str, username: str, *, up_to: int, limit: int) -> list[str]:
        """Messages up to ``up_to`` whose internal delivery to ``username`` is not READ yet."""

    async def edit(
        self, message_id: str, *, payload: dict[str, Any] | None, metadata: dict[str, Any] | None, at: datetime
    ) -> Message:
        """Stores a new version (the first edit keeps the original as version 1); Conflict if deleted."""

    async def delete(self, message_id: str, *, at: datetime) -> Message | None:
        """Makes it a tombstone (content and versions gone); None if it was one already."""

    async def versions(self, message_id: str) -> list[MessageVersion]:
        """Oldest first; empty for a message never edited."""
