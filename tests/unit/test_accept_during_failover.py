"""R11.4 on the accept path: while the message store cannot answer (a database failover), a
send with a client-chosen message_id still goes to the log and answers accepted — the
duplicate check is skipped, and the router's dedup by message_id keeps a retry single."""

from __future__ import annotations

from typing import Any

import pytest

from chat4all.domain.errors import Unavailable
from chat4all.domain.events import MessageEvent
from chat4all.domain.ids import new_id, utcnow
from chat4all.domain.models import Conversation
from chat4all.services.messages import MessageService


class Conversations:
    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation

    async def get(self, conversation_id: str, *, viewer: str) -> Conversation:
        return self.conversation


class StoreAway:
    async def get_message(self, message_id: str) -> Any:
        raise Unavailable("the database is not reachable")


class Log:
    def __init__(self) -> None:
        self.events: list[MessageEvent] = []

    async def append(self, topic: str, key: str, value: bytes) -> None:
        self.events.append(MessageEvent.decode(value))


@pytest.fixture
def conversation() -> Conversation:
    return Conversation(
        conversation_id=new_id(), type="private", name=None, members=("alice", "bob"), created_by="alice",
        created_at=utcnow(),
    )


async def test_a_send_is_accepted_while_the_store_is_away(conversation: Conversation) -> None:
    log = Log()
    service = MessageService(
        conversations=Conversations(conversation),  # type: ignore[arg-type]
        messages=StoreAway(),  # type: ignore[arg-type]
        log=log,  # type: ignore[arg-type]
        max_text_chars=100,
    )
    message_id = new_id()
    accepted = await service.accept(
        caller="alice", conversation_id=conversation.conversation_id, message_id=message_id,
        payload={"type": "text", "text": "during the failover"},
    )
    assert (accepted.status, accepted.duplicate, accepted.message_id) == ("accepted", False, message_id)
    assert [e.message_id for e in log.events] == [message_id]


class ClaimedBefore:
    """The id was claimed by an attempt that died before its append (no message stored)."""

    async def claim(self, message_id: str, *, sender: str, conversation_id: str) -> tuple[str, str] | None:
        return (sender, conversation_id)

    async def release(self, message_id: str) -> None:
        raise AssertionError("a claim this call did not make is not released")


class NothingStored:
    async def get_message(self, message_id: str) -> Any:
        return None


async def test_a_retry_of_a_claimed_but_unstored_id_is_appended_again(conversation: Conversation) -> None:
    log = Log()
    service = MessageService(
        conversations=Conversations(conversation),  # type: ignore[arg-type]
        messages=NothingStored(),  # type: ignore[arg-type]
        log=log,  # type: ignore[arg-type]
        max_text_chars=100,
        accepted_ids=ClaimedBefore(),  # type: ignore[arg-type]
    )
    message_id = new_id()
    accepted = await service.accept(
        caller="alice", conversation_id=conversation.conversation_id, message_id=message_id,
        payload={"type": "text", "text": "the first attempt died before its append"},
    )
    assert accepted.duplicate and accepted.message_id == message_id
    # on the log again: the router keeps one copy, and none is lost
    assert [e.message_id for e in log.events] == [message_id]
