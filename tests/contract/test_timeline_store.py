"""TimelineStore contract (API v2): pages both ways, what a viewer sees, edits with versions,
tombstones, and the deliveries a read cursor marks, on every database backend."""

from __future__ import annotations

import pytest

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.timeline import SqlTimelineStore
from chat4all.domain.errors import Conflict
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ConversationStore, MessageStore, Receipt, TimelineStore
from tests.contract.test_message_store import CONV_A, T0, T1, T2, T3, msg, open_conversation


@pytest.fixture
def timeline(database: Database) -> TimelineStore:
    return SqlTimelineStore(database)


async def _seed(conversation_store: ConversationStore, message_store: MessageStore) -> list[str]:
    await open_conversation(conversation_store, CONV_A, "alice", "bob", "carol")
    batch = [msg(CONV_A, "alice", [("bob", "internal")], text=f"m{i}") for i in range(1, 7)]
    batch.append(msg(CONV_A, "alice", [("carol", "internal")], text="for carol"))
    result = await message_store.persist_batch(batch, at=T1)
    return [m.message_id for m in result.new]


async def test_pages_go_both_ways_over_what_the_viewer_sees(
    conversation_store: ConversationStore, message_store: MessageStore, timeline: TimelineStore
) -> None:
    await _seed(conversation_store, message_store)
    seqs = lambda page: [m.sequence_number for m in page]  # noqa: E731
    assert seqs(await timeline.page(CONV_A, viewer="bob", before=None, after=None, limit=3)) == [4, 5, 6]
    assert seqs(await timeline.page(CONV_A, viewer="bob", before=4, after=None, limit=2)) == [2, 3]
    assert seqs(await timeline.page(CONV_A, viewer="bob", before=None, after=4, limit=10)) == [5, 6]
    assert seqs(await timeline.page(CONV_A, viewer="carol", before=None, after=None, limit=10)) == [7]
    assert seqs(await timeline.page(CONV_A, viewer="alice", before=None, after=None, limit=10)) == [1, 2, 3, 4, 5, 6, 7]
    assert await timeline.has_visible(CONV_A, viewer="bob", below=2, above=None)
    assert not await timeline.has_visible(CONV_A, viewer="bob", below=None, above=6)
    last = await timeline.last_messages("bob", [CONV_A])
    assert last[CONV_A].sequence_number == 6


async def test_edits_keep_versions_and_deletes_leave_tombstones(
    conversation_store: ConversationStore, message_store: MessageStore, timeline: TimelineStore
) -> None:
    ids = await _seed(conversation_store, message_store)
    edited = await timeline.edit(ids[0], payload={"type": "text", "text": "edited"}, metadata=None, at=T2)
    assert edited.payload["text"] == "edited" and edited.edited_at == T2
    versions = await timeline.versions(ids[0])
    assert [(v.version, v.payload["text"], v.at) for v in versions] == [(1, "m1", T0), (2, "edited", T2)]
    stored = await message_store.get_message(ids[0])
    assert stored is not None and stored.payload["text"] == "edited" and stored.edited_at == T2

    deleted = await timeline.delete(ids[0], at=T3)
    assert deleted is not None and deleted.deleted and deleted.sequence_number == 1
    assert await timeline.delete(ids[0], at=T3) is None
    assert await timeline.versions(ids[0]) == []
    with pytest.raises(Conflict):
        await timeline.edit(ids[0], payload={"type": "text", "text": "again"}, metadata=None, at=T3)
    stored = await message_store.get_message(ids[0])
    assert stored is not None and stored.deleted and stored.payload == {}


async def test_unread_ids_are_the_internal_deliveries_not_read_yet(
    conversation_store: ConversationStore, message_store: MessageStore, timeline: TimelineStore
) -> None:
    ids = await _seed(conversation_store, message_store)
    await message_store.advance_many([Receipt("bob", "internal", ids[:2], DeliveryStatus.READ)], at=T2)
    assert await timeline.unread_ids(CONV_A, "bob", up_to=4, limit=100) == ids[2:4]
    assert await timeline.unread_ids(CONV_A, "bob", up_to=6, limit=1) == ids[2:3]
    assert await timeline.unread_ids(CONV_A, "carol", up_to=7, limit=100) == [ids[6]]
