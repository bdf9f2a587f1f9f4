"""ConversationStore contract (R3.1–R3.4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chat4all.domain.errors import Conflict
from chat4all.domain.models import Conversation, ConversationType
from chat4all.ports import ConversationStore

# SQL on each database, and the in-memory fake (tests/fakes)
pytestmark = pytest.mark.fakes

T0 = datetime(2026, 3, 1, 12, 0, 0, 250_001, tzinfo=UTC)


def conversation(
    *members: str,
    at: datetime = T0,
    type: ConversationType = ConversationType.GROUP,
    conversation_id: str | None = None,
    metadata: dict | None = None,
    name: str | None = None,
) -> Conversation:
    return Conversation(
        conversation_id=conversation_id or str(uuid.uuid4()),
        type=type,
        name=name,
        members=tuple(members),
        created_by=members[0],
        created_at=at,
        metadata=metadata or {},
    )


async def test_a_created_conversation_reads_back_with_sorted_members(conversation_store: ConversationStore) -> None:
    metadata = {"topic": "launch", "tags": ["a", "b"], "nested": {"n": 1, "ok": True, "none": None}}
    created = conversation("carol", "alice", "bob", name="Launch", metadata=metadata)

    returned = await conversation_store.create_conversation(created, private_key=None)
    found = await conversation_store.get_conversation(created.conversation_id)

    assert returned.conversation_id == created.conversation_id
    assert found is not None
    assert found.members == ("alice", "bob", "carol")
    assert found.model_dump(exclude={"members"}) == created.model_dump(exclude={"members"})
    assert found.metadata == metadata


async def test_created_at_comes_back_timezone_aware_and_the_same_instant(
    conversation_store: ConversationStore,
) -> None:
    """A datetime given in another offset is the same instant when read back, in UTC."""
    at = datetime(2026, 3, 1, 9, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=-3)))
    created = conversation("alice", "bob", at=at)

    await conversation_store.create_conversation(created, private_key=None)
    found = await conversation_store.get_conversation(created.conversation_id)

    assert found is not None
    assert found.created_at == at
    assert found.created_at.utcoffset() == timedelta(0)


async def test_an_unknown_conversation_is_none(conversation_store: ConversationStore) -> None:
    assert await conversation_store.get_conversation(str(uuid.uuid4())) is None


async def test_a_second_private_conversation_for_the_same_pair_returns_the_first(
    conversation_store: ConversationStore,
) -> None:
    first = conversation("alice", "bob", type=ConversationType.PRIVATE)
    again = conversation("alice", "bob", type=ConversationType.PRIVATE, at=T0 + timedelta(minutes=5))

    stored_first = await conversation_store.create_conversation(first, private_key="alice|bob")
    stored_again = await conversation_store.create_conversation(again, private_key="alice|bob")

    assert stored_first.conversation_id == first.conversation_id
    assert stored_again.conversation_id == first.conversation_id
    assert stored_again.created_at == first.created_at
    assert await conversation_store.get_conversation(again.conversation_id) is None
    assert [c.conversation_id for c in await conversation_store.list_conversations("bob", limit=10, after=None)] == [
        first.conversation_id
    ]


async def test_private_keys_of_different_pairs_do_not_collide(conversation_store: ConversationStore) -> None:
    ab = conversation("alice", "bob", type=ConversationType.PRIVATE)
    ac = conversation("alice", "carol", type=ConversationType.PRIVATE)

    await conversation_store.create_conversation(ab, private_key="alice|bob")
    stored = await conversation_store.create_conversation(ac, private_key="alice|carol")

    assert stored.conversation_id == ac.conversation_id
    assert await conversation_store.get_conversation(ac.conversation_id) is not None


async def test_groups_are_never_deduplicated(conversation_store: ConversationStore) -> None:
    one = conversation("alice", "bob")
    two = conversation("alice", "bob")

    await conversation_store.create_conversation(one, private_key=None)
    await conversation_store.create_conversation(two, private_key=None)

    listed = await conversation_store.list_conversations("alice", limit=10, after=None)
    assert {c.conversation_id for c in listed} == {one.conversation_id, two.conversation_id}


async def test_reusing_a_group_conversation_id_is_a_conflict(conversation_store: ConversationStore) -> None:
    first = conversation("alice", "bob")
    await conversation_store.create_conversation(first, private_key=None)

    with pytest.raises(Conflict):
        await conversation_store.create_conversation(
            conversation("carol", "dave", conversation_id=first.conversation_id), private_key=None
        )

    found = await conversation_store.get_conversation(first.conversation_id)
    assert found is not None and found.members == ("alice", "bob")


async def test_list_is_newest_first_and_only_the_users_conversations(conversation_store: ConversationStore) -> None:
    old = conversation("alice", "bob", at=T0)
    middle = conversation("alice", "carol", at=T0 + timedelta(seconds=1))
    new = conversation("dave", "alice", at=T0 + timedelta(microseconds=1_000_001))  # newest, by 1 µs
    not_alices = conversation("bob", "carol", at=T0 + timedelta(hours=1))
    for c in (middle, not_alices, old, new):
        await conversation_store.create_conversation(c, private_key=None)

    listed = await conversation_store.list_conversations("alice", limit=10, after=None)

    assert [c.conversation_id for c in listed] == [new.conversation_id, middle.conversation_id, old.conversation_id]
    assert listed[0].members == ("alice", "dave")
    assert await conversation_store.list_conversations("nobody", limit=10, after=None) == []


async def test_limit_caps_the_page(conversation_store: ConversationStore) -> None:
    for i in range(5):
        await conversation_store.create_conversation(
            conversation("alice", "bob", at=T0 + timedelta(seconds=i)), private_key=None
        )

    assert len(await conversation_store.list_conversations("alice", limit=3, after=None)) == 3


async def test_paging_with_after_covers_ties_in_created_at_without_duplicates_or_gaps(
    conversation_store: ConversationStore,
) -> None:
    """Seven conversations share one created_at (different ids); pages of 2 still see each once."""
    created: list[Conversation] = []
    for i in range(7):
        created.append(conversation("alice", "bob", at=T0))
    created.append(conversation("alice", "bob", at=T0 + timedelta(seconds=1)))
    created.append(conversation("alice", "bob", at=T0 - timedelta(seconds=1)))
    created.append(conversation("bob", "carol", at=T0))  # someone else's, same instant
    for c in created:
        await conversation_store.create_conversation(c, private_key=None)

    everything = await conversation_store.list_conversations("alice", limit=100, after=None)
    paged: list[Conversation] = []
    after = None
    while True:
        page = await conversation_store.list_conversations("alice", limit=2, after=after)
        if not page:
            break
        assert len(page) <= 2
        paged.extend(page)
        after = (page[-1].created_at, page[-1].conversation_id)

    ids = [c.conversation_id for c in paged]
    assert ids == [c.conversation_id for c in everything]
    assert len(ids) == len(set(ids)) == 9
    assert set(ids) == {c.conversation_id for c in created[:9]}
    # newest first; among equal instants, the ids descend
    keys = [(c.created_at, c.conversation_id) for c in paged]
    assert keys == sorted(keys, reverse=True)


async def test_several_read_at_once_by_id_unknown_and_repeated_ids_aside(conversation_store: ConversationStore) -> None:
    a = await conversation_store.create_conversation(conversation("alice", "bob"), private_key=None)
    b = await conversation_store.create_conversation(conversation("carol", "alice", name="B"), private_key=None)
    unknown = str(uuid.uuid4())

    found = await conversation_store.get_conversations([b.conversation_id, unknown, a.conversation_id, b.conversation_id])

    assert set(found) == {a.conversation_id, b.conversation_id}
    assert found[a.conversation_id] == await conversation_store.get_conversation(a.conversation_id)
    assert found[b.conversation_id].members == ("alice", "carol") and found[b.conversation_id].name == "B"
    assert await conversation_store.get_conversations([]) == {}
