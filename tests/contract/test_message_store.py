"""MessageStore contract: persisting (R12.1, R12.2, R12.5), reading, pending deliveries (R7) and
the forward-only status machine (R6.1–R6.3)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from chat4all.domain.models import Conversation, ConversationType, Delivery, StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ConversationStore, MessageStore, NewMessage, Receipt

# SQL on each database, and the in-memory fake (tests/fakes)
pytestmark = pytest.mark.fakes

SENT, DELIVERED, READ, FAILED = (
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
)
T0 = datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)
T2 = T0 + timedelta(seconds=2)
T3 = T0 + timedelta(seconds=3)
# fixed ids so that the order by conversation_id is known
CONV_A = "aaaaaaaa-0000-4000-8000-000000000001"
CONV_B = "bbbbbbbb-0000-4000-8000-000000000002"


async def open_conversation(store: ConversationStore, conversation_id: str, *members: str) -> str:
    await store.create_conversation(
        Conversation(
            conversation_id=conversation_id,
            type=ConversationType.GROUP,
            name=None,
            members=tuple(sorted(members)),
            created_by=members[0],
            created_at=T0,
            metadata={},
        ),
        private_key=None,
    )
    return conversation_id


def msg(
    conversation_id: str,
    sender: str,
    targets: Sequence[tuple[str, str]],
    *,
    text: str = "hello",
    message_id: str | None = None,
) -> NewMessage:
    return NewMessage(
        message_id=message_id or str(uuid.uuid4()),
        conversation_id=conversation_id,
        sender=sender,
        recipients=list(dict.fromkeys(u for u, _ in targets)),
        channels=list(dict.fromkeys(c for _, c in targets)),
        payload={"type": "text", "text": text},
        metadata={"client": "contract-test", "n": 1},
        created_at=T0,
        targets=list(targets),
    )


def to(*usernames: str, channel: str = "internal") -> list[tuple[str, str]]:
    return [(u, channel) for u in usernames]


@pytest.fixture
async def chat(conversation_store: ConversationStore) -> str:
    """A conversation of alice, bob, carol and dave."""
    return await open_conversation(conversation_store, CONV_A, "alice", "bob", "carol", "dave")


# persisting ------------------------------------------------------------------------------------


async def test_sequence_numbers_are_dense_per_conversation_and_follow_batch_order(
    message_store: MessageStore, conversation_store: ConversationStore
) -> None:
    await open_conversation(conversation_store, CONV_A, "alice", "bob")
    await open_conversation(conversation_store, CONV_B, "alice", "bob")
    a1, b1, a2, a3, b2 = (
        msg(conversation_id, "alice", to("bob"), text=text)
        for conversation_id, text in [(CONV_A, "a1"), (CONV_B, "b1"), (CONV_A, "a2"), (CONV_A, "a3"), (CONV_B, "b2")]
    )

    result = await message_store.persist_batch([a1, b1, a2, a3, b2], at=T1)
    later = await message_store.persist_batch(
        [msg(CONV_B, "bob", to("alice"), text="b3"), msg(CONV_A, "bob", to("alice"), text="a4")], at=T2
    )

    assert result.known == []
    assert {m.payload["text"]: m.sequence_number for m in result.new} == {"a1": 1, "a2": 2, "a3": 3, "b1": 1, "b2": 2}
    assert {m.payload["text"]: m.sequence_number for m in later.new} == {"a4": 4, "b3": 3}
    for m in (a1, a2, a3, b1, b2):
        stored = await message_store.get_message(m.message_id)
        assert stored is not None and stored.payload["text"] == m.payload["text"]
    # "in sequence order per conversation"
    for conversation_id in (CONV_A, CONV_B):
        seqs = [m.sequence_number for m in result.new if m.conversation_id == conversation_id]
        assert seqs == sorted(seqs)


async def test_a_replayed_batch_stores_nothing_and_consumes_no_sequence_numbers(
    message_store: MessageStore, chat: str
) -> None:
    m1, m2 = msg(chat, "alice", to("bob")), msg(chat, "alice", to("bob", "carol"))
    first = await message_store.persist_batch([m1, m2], at=T1)

    replay = await message_store.persist_batch([m1, m2], at=T2)
    after = await message_store.persist_batch([m3 := msg(chat, "bob", to("alice"))], at=T3)

    assert replay.new == []
    assert sorted(replay.known, key=lambda m: m.sequence_number) == first.new
    assert [m.message_id for m in after.new] == [m3.message_id] and after.new[0].sequence_number == 3
    # the replay added no deliveries and no history
    assert [d.updated_at for d in await message_store.deliveries(m2.message_id)] == [T1, T1]
    assert [h.status for h in await message_store.history(m2.message_id)] == [SENT, SENT]


async def test_a_partly_replayed_batch_stores_only_the_new_messages(message_store: MessageStore, chat: str) -> None:
    m1 = msg(chat, "alice", to("bob"))
    await message_store.persist_batch([m1], at=T1)
    m2 = msg(chat, "alice", to("bob"))

    result = await message_store.persist_batch([m1, m2], at=T2)

    assert [(m.message_id, m.sequence_number) for m in result.new] == [(m2.message_id, 2)]
    assert [(m.message_id, m.sequence_number) for m in result.known] == [(m1.message_id, 1)]


async def test_duplicates_inside_one_batch_are_stored_once(message_store: MessageStore, chat: str) -> None:
    m1 = msg(chat, "alice", to("bob"), text="first")
    repeat = msg(chat, "alice", to("bob"), text="first", message_id=m1.message_id)
    m2 = msg(chat, "alice", to("bob"), text="second")

    result = await message_store.persist_batch([m1, repeat, m2], at=T1)

    assert [(m.message_id, m.sequence_number) for m in result.new] == [(m1.message_id, 1), (m2.message_id, 2)]
    assert len(await message_store.deliveries(m1.message_id)) == 1
    assert len(await message_store.history(m1.message_id)) == 1


async def test_each_target_gets_a_sent_delivery_and_one_sent_history_row(
    message_store: MessageStore, chat: str
) -> None:
    m = msg(chat, "alice", [("bob", "internal"), ("bob", "telegram"), ("carol", "internal")])

    await message_store.persist_batch([m], at=T1)

    assert await message_store.deliveries(m.message_id) == [
        Delivery(message_id=m.message_id, username=u, channel=c, status=SENT, updated_at=T1)
        for u, c in [("bob", "internal"), ("bob", "telegram"), ("carol", "internal")]
    ]
    history = await message_store.history(m.message_id)
    assert sorted((h.username, h.channel, h.status, h.at) for h in history) == [
        ("bob", "internal", SENT, T1),
        ("bob", "telegram", SENT, T1),
        ("carol", "internal", SENT, T1),
    ]


async def test_get_message_round_trips_every_field(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", [("bob", "internal"), ("bob", "telegram"), ("carol", "internal")], text="olá 👋")

    stored = (await message_store.persist_batch([m], at=T1)).new[0]
    found = await message_store.get_message(m.message_id)

    assert found == stored
    assert found is not None
    assert (found.message_id, found.conversation_id, found.sequence_number, found.sender) == (
        m.message_id,
        chat,
        1,
        "alice",
    )
    assert found.recipients == ("bob", "carol")
    assert found.channels == ("internal", "telegram")
    assert found.payload == {"type": "text", "text": "olá 👋"}
    assert found.metadata == {"client": "contract-test", "n": 1}
    assert found.created_at == T0 and found.created_at.tzinfo is not None
    assert await message_store.get_message(str(uuid.uuid4())) is None


async def test_concurrent_batches_into_one_conversation_get_distinct_dense_numbers(
    message_store: MessageStore, chat: str
) -> None:
    batches = [[msg(chat, "alice", to("bob")) for _ in range(3)] for _ in range(10)]

    results = await asyncio.gather(*(message_store.persist_batch(b, at=T1) for b in batches))

    seqs = sorted(m.sequence_number for r in results for m in r.new)
    assert seqs == list(range(1, 31))


async def test_the_same_batch_persisted_concurrently_is_stored_once(message_store: MessageStore, chat: str) -> None:
    """Two routers that briefly overlap on a partition both persist it; neither fails (R12.5)."""
    batch = [msg(chat, "alice", to("bob")) for _ in range(5)]

    results = await asyncio.gather(*(message_store.persist_batch(batch, at=T1) for _ in range(6)))

    new = [m.message_id for r in results for m in r.new]
    assert sorted(new) == sorted(m.message_id for m in batch)
    for r in results:
        assert {m.message_id for m in r.new} | {m.message_id for m in r.known} == {m.message_id for m in batch}
    after = await message_store.persist_batch([late := msg(chat, "bob", to("alice"))], at=T2)
    assert after.new[0].message_id == late.message_id and after.new[0].sequence_number == 6


# reading ---------------------------------------------------------------------------------------


async def test_list_messages_shows_a_viewer_only_what_they_sent_or_receive(
    message_store: MessageStore, chat: str
) -> None:
    to_bob = msg(chat, "alice", to("bob"))
    from_bob = msg(chat, "bob", to("alice", "carol"))
    to_alice_on_telegram = msg(chat, "carol", to("alice", channel="telegram"))
    await message_store.persist_batch([to_bob, from_bob, to_alice_on_telegram], at=T1)

    async def seen_by(viewer: str) -> list[str]:
        return [m.message_id for m in await message_store.list_messages(chat, viewer=viewer, since=0, limit=100)]

    assert await seen_by("alice") == [to_bob.message_id, from_bob.message_id, to_alice_on_telegram.message_id]
    assert await seen_by("bob") == [to_bob.message_id, from_bob.message_id]
    assert await seen_by("carol") == [from_bob.message_id, to_alice_on_telegram.message_id]
    assert await seen_by("dave") == []  # a member who is neither sender nor recipient


async def test_list_messages_returns_sequence_numbers_after_since_ascending_up_to_limit(
    message_store: MessageStore, chat: str, conversation_store: ConversationStore
) -> None:
    await open_conversation(conversation_store, CONV_B, "alice", "bob")
    await message_store.persist_batch([msg(chat, "alice", to("bob"), text=str(i)) for i in range(1, 6)], at=T1)
    await message_store.persist_batch([msg(CONV_B, "alice", to("bob"))], at=T1)

    async def seqs(since: int, limit: int) -> list[int]:
        page = await message_store.list_messages(chat, viewer="bob", since=since, limit=limit)
        assert all(m.conversation_id == chat for m in page)
        return [m.sequence_number for m in page]

    assert await seqs(0, 100) == [1, 2, 3, 4, 5]
    assert await seqs(2, 2) == [3, 4]
    assert await seqs(4, 100) == [5]
    assert await seqs(5, 100) == []


async def test_pending_for_lists_sent_deliveries_of_one_channel_ordered_by_conversation_then_sequence(
    message_store: MessageStore, conversation_store: ConversationStore
) -> None:
    await open_conversation(conversation_store, CONV_B, "alice", "bob")  # created first, sorts second
    await open_conversation(conversation_store, CONV_A, "alice", "bob", "carol")
    batch = [
        b1 := msg(CONV_B, "alice", to("bob")),
        a1 := msg(CONV_A, "alice", to("bob")),
        msg(CONV_A, "alice", to("carol")),  # someone else's
        msg(CONV_A, "alice", to("bob", channel="telegram")),  # another channel (seq 3)
        b2 := msg(CONV_B, "alice", to("bob")),
        a4 := msg(CONV_A, "carol", [("bob", "internal"), ("bob", "whatsapp")]),
    ]
    await message_store.persist_batch(batch, at=T1)

    pending = await message_store.pending_for("bob", channel="internal", after=None, limit=100)

    assert [(m.message_id, m.conversation_id, m.sequence_number) for m in pending] == [
        (a1.message_id, CONV_A, 1),
        (a4.message_id, CONV_A, 4),
        (b1.message_id, CONV_B, 1),
        (b2.message_id, CONV_B, 2),
    ]
    assert [
        m.message_id for m in await message_store.pending_for("bob", channel="telegram", after=None, limit=100)
    ] == [batch[3].message_id]
    assert await message_store.pending_for("dave", channel="internal", after=None, limit=100) == []


async def test_pending_for_pages_with_after_without_duplicates_or_gaps(
    message_store: MessageStore, conversation_store: ConversationStore
) -> None:
    await open_conversation(conversation_store, CONV_A, "alice", "bob")
    await open_conversation(conversation_store, CONV_B, "alice", "bob")
    batch = [msg(c, "alice", to("bob")) for c in [CONV_A, CONV_B] * 4 + [CONV_A]]
    await message_store.persist_batch(batch, at=T1)

    everything = await message_store.pending_for("bob", channel="internal", after=None, limit=100)
    paged = []
    after = None
    while page := await message_store.pending_for("bob", channel="internal", after=after, limit=2):
        assert len(page) <= 2
        paged.extend(page)
        after = (page[-1].conversation_id, page[-1].sequence_number)

    assert paged == everything
    assert [(m.conversation_id, m.sequence_number) for m in paged] == [
        (CONV_A, 1),
        (CONV_A, 2),
        (CONV_A, 3),
        (CONV_A, 4),
        (CONV_A, 5),
        (CONV_B, 1),
        (CONV_B, 2),
        (CONV_B, 3),
        (CONV_B, 4),
    ]


async def test_pending_for_leaves_out_deliveries_that_moved_on(message_store: MessageStore, chat: str) -> None:
    delivered, read, failed, waiting = (msg(chat, "alice", to("bob")) for _ in range(4))
    await message_store.persist_batch([delivered, read, failed, waiting], at=T1)
    await message_store.advance(
        username="bob", channel="internal", message_ids=[delivered.message_id], status=DELIVERED, at=T2
    )
    await message_store.advance(username="bob", channel="internal", message_ids=[read.message_id], status=READ, at=T2)
    await message_store.advance(
        username="bob", channel="internal", message_ids=[failed.message_id], status=FAILED, at=T2
    )

    pending = await message_store.pending_for("bob", channel="internal", after=None, limit=100)

    assert [m.message_id for m in pending] == [waiting.message_id]


# the status machine ----------------------------------------------------------------------------


async def _status(store: MessageStore, message_id: str, username: str, channel: str = "internal") -> Delivery:
    [found] = [d for d in await store.deliveries(message_id) if (d.username, d.channel) == (username, channel)]
    return found


async def test_advance_moves_sent_to_delivered_to_read_and_records_each_step(
    message_store: MessageStore, chat: str
) -> None:
    m = msg(chat, "alice", to("bob"))
    [stored] = (await message_store.persist_batch([m], at=T1)).new

    delivered = await message_store.advance(
        username="bob", channel="internal", message_ids=[m.message_id], status=DELIVERED, at=T2
    )
    read = await message_store.advance(
        username="bob", channel="internal", message_ids=[m.message_id], status=READ, at=T3
    )

    change = lambda status, at: StatusChange(
        message_id=m.message_id, username="bob", channel="internal", status=status, at=at
    )
    assert delivered == [(stored, [change(DELIVERED, T2)])]
    assert read == [(stored, [change(READ, T3)])]
    assert (await _status(message_store, m.message_id, "bob")).status == READ
    assert (await _status(message_store, m.message_id, "bob")).updated_at == T3
    assert await message_store.history(m.message_id) == [change(SENT, T1), change(DELIVERED, T2), change(READ, T3)]


async def test_read_on_a_sent_delivery_records_delivered_then_read(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)

    [(message, changes)] = await message_store.advance(
        username="bob", channel="internal", message_ids=[m.message_id], status=READ, at=T2
    )

    assert message.message_id == m.message_id
    assert [(c.status, c.at) for c in changes] == [(DELIVERED, T2), (READ, T2)]
    assert [h.status for h in await message_store.history(m.message_id)] == [SENT, DELIVERED, READ]
    assert (await _status(message_store, m.message_id, "bob")).status == READ


async def test_a_late_delivered_after_read_changes_and_records_nothing(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)
    await message_store.advance(username="bob", channel="internal", message_ids=[m.message_id], status=READ, at=T2)

    late = await message_store.advance(
        username="bob", channel="internal", message_ids=[m.message_id], status=DELIVERED, at=T3
    )
    repeated = await message_store.advance(
        username="bob", channel="internal", message_ids=[m.message_id], status=READ, at=T3
    )

    assert late == [] and repeated == []
    delivery = await _status(message_store, m.message_id, "bob")
    assert (delivery.status, delivery.updated_at) == (READ, T2)
    assert [h.status for h in await message_store.history(m.message_id)] == [SENT, DELIVERED, READ]


async def test_another_users_ack_changes_nothing(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)

    by_carol = await message_store.advance(
        username="carol", channel="internal", message_ids=[m.message_id], status=READ, at=T2
    )
    by_sender = await message_store.advance(
        username="alice", channel="internal", message_ids=[m.message_id], status=DELIVERED, at=T2
    )

    assert by_carol == [] and by_sender == []
    assert (await _status(message_store, m.message_id, "bob")).status == SENT
    assert len(await message_store.history(m.message_id)) == 1


async def test_advance_touches_only_the_named_channel(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", [("bob", "internal"), ("bob", "telegram")])
    await message_store.persist_batch([m], at=T1)

    await message_store.advance(username="bob", channel="telegram", message_ids=[m.message_id], status=DELIVERED, at=T2)

    assert (await _status(message_store, m.message_id, "bob", "internal")).status == SENT
    assert (await _status(message_store, m.message_id, "bob", "telegram")).status == DELIVERED


async def test_advance_moves_several_messages_and_skips_unknown_ids(message_store: MessageStore, chat: str) -> None:
    m1, m2, m3 = (msg(chat, "alice", to("bob")) for _ in range(3))
    await message_store.persist_batch([m1, m2, m3], at=T1)
    await message_store.advance(username="bob", channel="internal", message_ids=[m2.message_id], status=READ, at=T1)

    moved = await message_store.advance(
        username="bob",
        channel="internal",
        message_ids=[m1.message_id, m2.message_id, m3.message_id, m1.message_id, str(uuid.uuid4())],
        status=DELIVERED,
        at=T2,
    )

    assert sorted((m.message_id, [c.status for c in cs]) for m, cs in moved) == sorted(
        [(m1.message_id, [DELIVERED]), (m3.message_id, [DELIVERED])]
    )
    assert [h.status for h in await message_store.history(m1.message_id)] == [SENT, DELIVERED]


async def test_failed_is_reachable_from_sent_only_and_keeps_its_reason(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", [("bob", "telegram"), ("carol", "telegram")])
    await message_store.persist_batch([m], at=T1)
    await message_store.advance(
        username="carol", channel="telegram", message_ids=[m.message_id], status=DELIVERED, at=T2
    )

    failed = await message_store.advance(
        username="bob", channel="telegram", message_ids=[m.message_id], status=FAILED, at=T3, detail="chat not found"
    )
    too_late = await message_store.advance(
        username="carol", channel="telegram", message_ids=[m.message_id], status=FAILED, at=T3, detail="boom"
    )

    assert [(c.status, c.detail) for _, cs in failed for c in cs] == [(FAILED, "chat not found")]
    assert too_late == []
    bob = await _status(message_store, m.message_id, "bob", "telegram")
    assert (bob.status, bob.error) == (FAILED, "chat not found")
    assert (await _status(message_store, m.message_id, "carol", "telegram")).status == DELIVERED
    # FAILED is terminal
    assert (
        await message_store.advance(username="bob", channel="telegram", message_ids=[m.message_id], status=READ, at=T3)
        == []
    )


async def test_concurrent_receipts_record_each_status_once(message_store: MessageStore, chat: str) -> None:
    """An ack and a read racing on one delivery: history holds DELIVERED and READ exactly once each."""
    m = msg(chat, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)

    await asyncio.gather(
        *(
            message_store.advance(username="bob", channel="internal", message_ids=[m.message_id], status=s, at=T2)
            for s in [DELIVERED, READ] * 5
        )
    )

    assert [h.status for h in await message_store.history(m.message_id)] == [SENT, DELIVERED, READ]
    assert (await _status(message_store, m.message_id, "bob")).status == READ


# many receipts in one transaction -----------------------------------------------------------


async def test_advance_many_applies_receipts_of_several_users_in_the_order_given(
    message_store: MessageStore, chat: str
) -> None:
    m1 = msg(chat, "alice", [("bob", "internal"), ("carol", "internal")])
    m2 = msg(chat, "alice", [("bob", "internal"), ("bob", "telegram")])
    await message_store.persist_batch([m1, m2], at=T1)

    moved = await message_store.advance_many(
        [
            Receipt("bob", "internal", [m1.message_id, m2.message_id], DELIVERED),
            Receipt("carol", "internal", [m1.message_id], READ),
            Receipt("bob", "internal", [m1.message_id], READ),
            Receipt("bob", "internal", [m1.message_id], DELIVERED),  # late: changes nothing
            Receipt("bob", "telegram", [m2.message_id], FAILED, detail="blocked"),
            Receipt("dave", "internal", [m1.message_id], READ),  # not a recipient
        ],
        at=T2,
    )

    by_message = {m.message_id: [(c.username, c.channel, c.status, c.detail) for c in cs] for m, cs in moved}
    assert by_message == {
        m1.message_id: [
            ("bob", "internal", DELIVERED, None),
            ("carol", "internal", DELIVERED, None),
            ("carol", "internal", READ, None),
            ("bob", "internal", READ, None),
        ],
        m2.message_id: [("bob", "internal", DELIVERED, None), ("bob", "telegram", FAILED, "blocked")],
    }
    assert (await _status(message_store, m1.message_id, "bob")).status == READ
    assert (await _status(message_store, m1.message_id, "carol")).status == READ
    failed = await _status(message_store, m2.message_id, "bob", "telegram")
    assert (failed.status, failed.error, failed.updated_at) == (FAILED, "blocked", T2)
    assert [(h.username, h.status) for h in await message_store.history(m1.message_id)] == [
        ("bob", SENT),
        ("carol", SENT),
        ("bob", DELIVERED),
        ("carol", DELIVERED),
        ("carol", READ),
        ("bob", READ),
    ]


async def test_advance_many_with_nothing_to_move_returns_nothing(message_store: MessageStore, chat: str) -> None:
    m = msg(chat, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)

    assert await message_store.advance_many([], at=T2) == []
    assert await message_store.advance_many([Receipt("bob", "internal", [str(uuid.uuid4())], READ)], at=T2) == []
    assert (await _status(message_store, m.message_id, "bob")).status == SENT


async def test_advance_many_handles_more_keys_than_one_statement_takes(message_store: MessageStore, chat: str) -> None:
    batch = [msg(chat, "alice", to("bob")) for _ in range(2500)]
    await message_store.persist_batch(batch, at=T1)

    moved = await message_store.advance_many(
        [Receipt("bob", "internal", [m.message_id for m in batch[i : i + 1000]], DELIVERED) for i in range(0, 2500, 1000)],
        at=T2,
    )

    assert len(moved) == 2500
    assert await message_store.pending_for("bob", channel="internal", after=None, limit=10) == []
