"""MembershipStore contract (API v2): roles, former members, name and topic, read cursors,
unread counts and the inbox, on every database backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.membership import SqlMembershipStore
from chat4all.domain.models import Conversation, ConversationType
from chat4all.ports import MembershipStore, MessageStore
from tests.contract.test_message_store import CONV_A, CONV_B, T0, T1, T2, T3, msg


@pytest.fixture
def membership(database: Database) -> MembershipStore:
    return SqlMembershipStore(database, SqlConversationStore(database))


async def _group(store: SqlConversationStore, conversation_id: str, owner: str, *others: str) -> None:
    await store.create_conversation(
        Conversation(
            conversation_id=conversation_id, type=ConversationType.GROUP, name="g", members=tuple(sorted({owner, *others})),
            created_by=owner, created_at=T0, metadata={}, roles={owner: "owner"},
        ),
        private_key=None,
    )


async def test_members_come_and_go_with_their_roles_and_ownership_passes_on(
    conversation_store: SqlConversationStore, membership: MembershipStore
) -> None:
    await _group(conversation_store, CONV_A, "alice", "bob", "carol")
    assert await membership.add_members(CONV_A, ["dave", "bob"], at=T1) == ["dave"]
    await membership.set_roles(CONV_A, {"carol": "admin"}, at=T1)
    found = await conversation_store.get_conversation(CONV_A)
    assert found is not None and found.members == ("alice", "bob", "carol", "dave")
    assert found.roles == {"alice": "owner", "carol": "admin"}

    assert await membership.remove_member(CONV_A, "bob", at=T2) == (True, None)
    assert await membership.remove_member(CONV_A, "bob", at=T2) == (False, None)
    assert await membership.remove_member(CONV_A, "alice", at=T2) == (True, "carol")  # the earliest admin
    found = await conversation_store.get_conversation(CONV_A)
    assert found is not None and found.members == ("carol", "dave") and found.former == ("alice", "bob")
    assert found.roles == {"carol": "owner"}
    assert await membership.remove_member(CONV_A, "carol", at=T3) == (True, "dave")  # else the earliest member

    assert await membership.add_members(CONV_A, ["bob"], at=T3) == ["bob"]  # a former member comes back
    found = await conversation_store.get_conversation(CONV_A)
    assert found is not None and "bob" in found.members and "bob" not in found.former

    await membership.update_details(CONV_A, {"name": "Team", "topic": "launch"}, at=T3)
    found = await conversation_store.get_conversation(CONV_A)
    assert found is not None and (found.name, found.topic) == ("Team", "launch")


async def test_read_cursors_move_forward_only_and_unread_counts_follow(
    conversation_store: SqlConversationStore, membership: MembershipStore, message_store: MessageStore
) -> None:
    await _group(conversation_store, CONV_A, "alice", "bob")
    batch = [msg(CONV_A, "alice", [("bob", "internal")], text=f"m{i}") for i in range(4)]
    batch.append(msg(CONV_A, "bob", [("alice", "internal")], text="own"))
    await message_store.persist_batch(batch, at=T1)

    assert await membership.unread_counts("bob", {CONV_A: 0}) == {CONV_A: 4}
    assert await membership.move_read_cursor(CONV_A, "bob", 2, at=T2) == 2
    assert await membership.move_read_cursor(CONV_A, "bob", 1, at=T2) == 2
    assert await membership.move_read_cursor(CONV_A, "bob", 99, at=T2) == 5  # never past the last message
    assert await membership.unread_counts("bob", {CONV_A: 2}) == {CONV_A: 2}
    assert await membership.unread_for_members(CONV_A, ["alice", "bob"]) == {"alice": 1, "bob": 0}  # bob's own message is unread for alice
    entry = await membership.entry(CONV_A, "bob")
    assert entry is not None and (entry.read_up_to, entry.last_seq, entry.membership) == (5, 5, "member")


async def test_the_inbox_is_by_last_activity_and_since_returns_what_changed(
    conversation_store: SqlConversationStore, membership: MembershipStore, message_store: MessageStore
) -> None:
    await _group(conversation_store, CONV_A, "alice", "bob")
    await _group(conversation_store, CONV_B, "alice", "bob")
    await message_store.persist_batch([msg(CONV_A, "bob", [("alice", "internal")])], at=T1)
    await message_store.persist_batch([msg(CONV_B, "bob", [("alice", "internal")])], at=T2)

    entries = await membership.inbox("alice", limit=10, after=None, changed_since=None)
    assert [e.conversation.conversation_id for e in entries] == [CONV_B, CONV_A]
    assert entries[0].last_activity_at == T2
    rest = await membership.inbox("alice", limit=10, after=(entries[0].last_activity_at, CONV_B), changed_since=None)
    assert [e.conversation.conversation_id for e in rest] == [CONV_A]

    changed = await membership.inbox("alice", limit=10, after=None, changed_since=T1 + timedelta(milliseconds=1))
    assert [e.conversation.conversation_id for e in changed] == [CONV_B]
    await membership.remove_member(CONV_A, "alice", at=T3)
    left = await membership.inbox("alice", limit=10, after=None, changed_since=T2 + timedelta(milliseconds=1))
    assert [(e.conversation.conversation_id, e.membership) for e in left] == [(CONV_A, "left")]
    assert [e.conversation.conversation_id for e in await membership.inbox("alice", limit=10, after=None, changed_since=None)] == [CONV_B]
