"""Conversations, messages and deliveries in memory, and message ids taken at accept time.

``FakeMessageStore`` keeps the delivery rows with their connector retry state, so that
``FakeDeliveryQueue`` (tests/fakes/connectors.py) and ``FakeFileStore`` (shares of file
messages) work on the same data, as their SQL adapters share one database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chat4all.domain.errors import Conflict
from chat4all.domain.models import INTERNAL, Conversation, Delivery, Message, StatusChange
from chat4all.domain.status import DeliveryStatus, steps_to
from chat4all.ports import NewMessage, PersistResult, Receipt

DeliveryId = tuple[str, str, str]  # (message_id, username, channel)


class FakeConversationStore:
    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}
        self.last_seq: dict[str, int] = {}
        self._private: dict[str, str] = {}
        self.batch_reads = 0  # get_conversations calls (tests count the store's reads)

    async def create_conversation(self, conversation: Conversation, *, private_key: str | None) -> Conversation:
        if private_key is not None and private_key in self._private:
            return self.conversations[self._private[private_key]]
        if conversation.conversation_id in self.conversations:
            raise Conflict("a conversation with this id exists")
        stored = conversation.model_copy(
            update={"members": tuple(sorted(conversation.members)), "created_at": conversation.created_at.astimezone(UTC)}
        )
        self.conversations[stored.conversation_id] = stored
        self.last_seq[stored.conversation_id] = 0
        if private_key is not None:
            self._private[private_key] = stored.conversation_id
        return stored

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        return self.conversations.get(conversation_id)

    async def get_conversations(self, conversation_ids: Sequence[str]) -> dict[str, Conversation]:
        self.batch_reads += 1
        return {i: self.conversations[i] for i in conversation_ids if i in self.conversations}

    async def list_conversations(
        self, username: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Conversation]:
        mine = sorted(
            (c for c in self.conversations.values() if username in c.members),
            key=lambda c: (c.created_at, c.conversation_id),
            reverse=True,
        )
        if after is not None:
            mine = [c for c in mine if (c.created_at, c.conversation_id) < after]
        return mine[:limit]


@dataclass
class DeliveryRow:
    message_id: str
    username: str
    channel: str
    conversation_id: str
    sequence_number: int
    status: DeliveryStatus
    updated_at: datetime
    error: str | None = None
    next_attempt_at: datetime | None = None  # set while an external delivery is pending
    claimed_by: str | None = None
    attempts: int = 0
    traceparent: str | None = None

    @property
    def key(self) -> DeliveryId:
        return (self.message_id, self.username, self.channel)


class FakeMessageStore:
    def __init__(self, conversations: FakeConversationStore | None = None) -> None:
        self.conversations = conversations or FakeConversationStore()
        self.messages: dict[str, Message] = {}
        self.rows: dict[DeliveryId, DeliveryRow] = {}
        self._history: list[StatusChange] = []
        self.shares: set[tuple[str, str]] = set()  # (file_id, conversation_id)
        # the StatusEvents a SQL store would put in its outbox: (conversation_id, sender, change)
        self.status_events: list[tuple[str, str, StatusChange]] = []

    async def persist_batch(self, batch: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        unique: dict[str, NewMessage] = {}
        for m in batch:
            unique.setdefault(m.message_id, m)
        known = [self.messages[i] for i in unique if i in self.messages]
        new: list[Message] = []
        for m in unique.values():
            if m.message_id in self.messages or m.conversation_id not in self.conversations.last_seq:
                continue
            self.conversations.last_seq[m.conversation_id] += 1
            stored = Message(
                message_id=m.message_id,
                conversation_id=m.conversation_id,
                sequence_number=self.conversations.last_seq[m.conversation_id],
                sender=m.sender,
                recipients=tuple(m.recipients),
                channels=tuple(m.channels),
                payload=m.payload,
                metadata=m.metadata,
                created_at=m.created_at,
            )
            self.messages[m.message_id] = stored
            new.append(stored)
            if m.payload.get("type") == "file" and isinstance(m.payload.get("file_id"), str):
                self.shares.add((m.payload["file_id"], m.conversation_id))
            for username, channel in m.targets:
                row = DeliveryRow(
                    m.message_id,
                    username,
                    channel,
                    m.conversation_id,
                    stored.sequence_number,
                    DeliveryStatus.SENT,
                    at,
                    next_attempt_at=None if channel == INTERNAL else at,
                    traceparent=m.traceparent,
                )
                self.rows[row.key] = row
                self._record(stored, [StatusChange(**_change(row, DeliveryStatus.SENT, at))])
        return PersistResult(new=new, known=known)

    def _record(self, message: Message, changes: list[StatusChange]) -> None:
        self._history.extend(changes)
        self.status_events.extend((message.conversation_id, message.sender, c) for c in changes)

    async def get_message(self, message_id: str) -> Message | None:
        return self.messages.get(message_id)

    async def list_messages(self, conversation_id: str, *, viewer: str, since: int, limit: int) -> list[Message]:
        addressed = {r.message_id for r in self.rows.values() if r.username == viewer}
        found = sorted(
            (
                m
                for m in self.messages.values()
                if m.conversation_id == conversation_id
                and m.sequence_number > since
                and (m.sender == viewer or m.message_id in addressed)
            ),
            key=lambda m: m.sequence_number,
        )
        return found[:limit]

    async def deliveries(self, message_id: str) -> list[Delivery]:
        rows = sorted((r for r in self.rows.values() if r.message_id == message_id), key=lambda r: (r.username, r.channel))
        return [
            Delivery(
                message_id=r.message_id,
                username=r.username,
                channel=r.channel,
                status=r.status,
                updated_at=r.updated_at,
                error=r.error,
            )
            for r in rows
        ]

    async def history(self, message_id: str) -> list[StatusChange]:
        return [c for c in self._history if c.message_id == message_id]

    async def pending_for(
        self, username: str, *, channel: str, after: tuple[str, int] | None, limit: int
    ) -> list[Message]:
        rows = sorted(
            (
                r
                for r in self.rows.values()
                if r.username == username and r.channel == channel and r.status is DeliveryStatus.SENT
            ),
            key=lambda r: (r.conversation_id, r.sequence_number),
        )
        if after is not None:
            rows = [r for r in rows if (r.conversation_id, r.sequence_number) > after]
        return [self.messages[r.message_id] for r in rows[:limit]]

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
        return await self.advance_many([Receipt(username, channel, message_ids, status, detail)], at=at)

    async def advance_many(
        self, receipts: Sequence[Receipt], *, at: datetime
    ) -> list[tuple[Message, list[StatusChange]]]:
        changes: dict[str, list[StatusChange]] = {}
        for r in receipts:
            for message_id in dict.fromkeys(r.message_ids):
                row = self.rows.get((message_id, r.username, r.channel))
                steps = steps_to(row.status, r.status) if row is not None else []
                if row is None or not steps:
                    continue
                row.status, row.updated_at, row.error = r.status, at, r.detail
                changes.setdefault(message_id, []).extend(
                    StatusChange(**_change(row, s, at, r.detail)) for s in steps
                )
        result = [(self.messages[m], cs) for m, cs in changes.items()]
        for message, cs in result:
            self._record(message, cs)
        return result


def _change(row: DeliveryRow, status: DeliveryStatus, at: datetime, detail: str | None = None) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "username": row.username,
        "channel": row.channel,
        "status": status,
        "at": at,
        "detail": detail,
    }


class FakeAcceptedIds:
    def __init__(self) -> None:
        self.taken: dict[str, tuple[str, str]] = {}

    async def claim(self, message_id: str, *, sender: str, conversation_id: str) -> tuple[str, str] | None:
        holder = self.taken.get(message_id)
        if holder is None:
            self.taken[message_id] = (sender, conversation_id)
        return holder

    async def release(self, message_id: str) -> None:
        self.taken.pop(message_id, None)
