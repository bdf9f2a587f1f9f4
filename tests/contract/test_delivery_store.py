"""DeliveryStore contract (the one port every write of a delivery goes through): creation as
SENT with dense sequence numbers, forward-only receipts with their history, FAILED only from
SENT, and the operator's requeue as the one backward move. Runs on SQLite, PostgreSQL and the
in-memory fake the service tests use (tests/fakes/deliveries.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.deliveries import SqlDeliveryStore
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.ports import DeliveryKey, Receipt
from tests.fakes.deliveries import FakeDeliveryStore

from .conftest import _database, _database_url
from .test_message_store import CONV_A, DELIVERED, FAILED, READ, SENT, T1, T2, T3, msg, open_conversation, to


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str | None:
    return None if kind == "fake" else _database_url(kind, tmp_path, request)


@pytest.fixture
async def stores(url: str | None) -> AsyncIterator[tuple[Any, Any]]:
    """(the DeliveryStore, a MessageStore reading the same rows), with alice, bob and carol's chat."""
    if url is None:
        fake = FakeDeliveryStore()
        yield fake, fake
        return
    async with _database(url) as db:
        await open_conversation(SqlConversationStore(db), CONV_A, "alice", "bob", "carol")
        yield SqlDeliveryStore(db), SqlMessageStore(db)


async def statuses(reader: Any, message_id: str) -> dict[tuple[str, str], Any]:
    return {(d.username, d.channel): d.status for d in await reader.deliveries(message_id)}


async def test_a_batch_is_stored_once_as_sent_with_dense_sequence_numbers(stores) -> None:
    store, reader = stores
    a, b = msg(CONV_A, "alice", to("bob", "carol")), msg(CONV_A, "bob", to("alice"))
    first = await store.persist_batch([a, b, a], at=T1)
    assert [m.sequence_number for m in first.new] == [1, 2] and first.known == []
    again = await store.persist_batch([b, c := msg(CONV_A, "carol", to("bob"))], at=T2)
    assert [m.message_id for m in again.known] == [b.message_id]
    assert [(m.message_id, m.sequence_number) for m in again.new] == [(c.message_id, 3)]
    assert await statuses(reader, a.message_id) == {("bob", "internal"): SENT, ("carol", "internal"): SENT}
    assert [(h.username, h.status, h.at) for h in await reader.history(a.message_id)] == [
        ("bob", SENT, T1), ("carol", SENT, T1)
    ]


async def test_receipts_move_forward_only_in_the_order_given(stores) -> None:
    store, reader = stores
    m = msg(CONV_A, "alice", to("bob", "carol"))
    await store.persist_batch([m], at=T1)
    moved = await store.advance_many(
        [
            Receipt("bob", "internal", [m.message_id], DELIVERED),
            Receipt("bob", "internal", [m.message_id], READ),
            Receipt("carol", "internal", [m.message_id, "00000000-0000-4000-8000-00000000dead"], READ),
        ],
        at=T2,
    )
    [(message, changes)] = moved
    assert message.message_id == m.message_id
    assert [(c.username, c.status) for c in changes] == [
        ("bob", DELIVERED), ("bob", READ), ("carol", DELIVERED), ("carol", READ)
    ]
    # late and repeated receipts change nothing and record nothing
    assert await store.advance_many([Receipt("bob", "internal", [m.message_id], DELIVERED)], at=T3) == []
    assert await statuses(reader, m.message_id) == {("bob", "internal"): READ, ("carol", "internal"): READ}
    assert len(await reader.history(m.message_id)) == 6


async def test_failed_only_from_sent_and_terminal_for_receipts(stores) -> None:
    store, reader = stores
    m = msg(CONV_A, "alice", [("bob", "telegram"), ("carol", "telegram")])
    await store.persist_batch([m], at=T1)
    await store.advance_many([Receipt("carol", "telegram", [m.message_id], DELIVERED)], at=T2)
    moved = await store.advance_many(
        [
            Receipt("bob", "telegram", [m.message_id], FAILED, detail="gave up"),
            Receipt("carol", "telegram", [m.message_id], FAILED, detail="too late"),
        ],
        at=T2,
    )
    assert [(c.username, c.status, c.detail) for _, cs in moved for c in cs] == [("bob", FAILED, "gave up")]
    assert await store.advance_many([Receipt("bob", "telegram", [m.message_id], DELIVERED)], at=T3) == []
    assert await statuses(reader, m.message_id) == {("bob", "telegram"): FAILED, ("carol", "telegram"): DELIVERED}


async def test_requeue_is_the_one_backward_move_and_only_from_failed(stores) -> None:
    store, reader = stores
    m = msg(CONV_A, "alice", [("bob", "telegram"), ("carol", "telegram")])
    await store.persist_batch([m], at=T1)
    await store.advance_many([Receipt("bob", "telegram", [m.message_id], FAILED, detail="gave up")], at=T2)
    keys = [DeliveryKey(m.message_id, "bob", "telegram"), DeliveryKey(m.message_id, "carol", "telegram")]
    moved = await store.requeue(keys, now=T3, detail="replayed from the dead-letter queue")
    assert [(c.username, c.status, c.detail) for _, cs in moved for c in cs] == [
        ("bob", SENT, "replayed from the dead-letter queue")
    ]
    assert await statuses(reader, m.message_id) == {("bob", "telegram"): SENT, ("carol", "telegram"): SENT}
    assert await store.requeue(keys, now=T3, detail="again") == []
    assert [h.status for h in await reader.history(m.message_id) if h.username == "bob"] == [SENT, FAILED, SENT]
