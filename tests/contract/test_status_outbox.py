"""The status outbox: every status change's StatusEvent is committed with it and relayed to the
log in order, at least once; a failed publish loses nothing. A delivery's creation (SENT) is the
exception: the router appends those itself (tests/services/test_routing.py,
tests/e2e/test_outbox_crash.py). SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.adapters.sql.status_outbox import SqlStatusOutbox
from chat4all.domain.events import StatusEvent
from chat4all.ports import Receipt

from .test_message_store import CONV_A, DELIVERED, READ, T1, T2, msg, open_conversation, to


@pytest.fixture
def outbox(database) -> SqlStatusOutbox:
    return SqlStatusOutbox(database)


class LogDown(Exception):
    pass


class Log:
    def __init__(self, fail: int = 0) -> None:
        self.events: list[StatusEvent] = []
        self.fail = fail

    async def publish(self, records) -> None:
        if self.fail:
            self.fail -= 1
            raise LogDown("the log is down")
        for key, value in records:
            event = StatusEvent.decode(value)
            assert key == event.message_id
            self.events.append(event)


async def test_stored_statuses_are_in_the_outbox_and_relayed_in_order(
    conversation_store, message_store, outbox
) -> None:
    await open_conversation(conversation_store, CONV_A, "alice", "bob", "carol")
    m = msg(CONV_A, "alice", to("bob", "carol"))
    await message_store.persist_batch([m], at=T1)
    assert await outbox.pending() == 0  # SENT is not in the outbox: the router appends it
    await message_store.advance_many([Receipt("bob", "internal", [m.message_id], READ)], at=T2)
    await message_store.advance_many([Receipt("carol", "internal", [m.message_id], DELIVERED)], at=T2)
    assert await outbox.pending() == 3  # DELIVERED and READ for bob, then DELIVERED for carol

    log = Log()
    assert await outbox.relay(log.publish, limit=2) == 2
    assert await outbox.relay(log.publish, limit=2) == 1
    assert await outbox.pending() == 0
    assert [(e.username, e.status) for e in log.events] == [("bob", DELIVERED), ("bob", READ), ("carol", DELIVERED)]
    assert {(e.sender, e.conversation_id) for e in log.events} == {("alice", CONV_A)}


async def test_a_failed_publish_keeps_the_events_for_the_next_relay(conversation_store, message_store, outbox) -> None:
    await open_conversation(conversation_store, CONV_A, "alice", "bob")
    m = msg(CONV_A, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)
    await message_store.advance_many([Receipt("bob", "internal", [m.message_id], DELIVERED)], at=T2)
    log = Log(fail=1)
    with pytest.raises(LogDown):
        await outbox.relay(log.publish)
    assert await outbox.pending() == 1
    assert await outbox.relay(log.publish) == 1
    assert [(e.message_id, e.status) for e in log.events] == [(m.message_id, DELIVERED)]


async def test_repeated_receipts_write_no_events(conversation_store, message_store, outbox) -> None:
    await open_conversation(conversation_store, CONV_A, "alice", "bob")
    m = msg(CONV_A, "alice", to("bob"))
    await message_store.persist_batch([m], at=T1)
    await message_store.persist_batch([m], at=T2)  # a replay stores nothing, announces nothing
    await message_store.advance_many([Receipt("bob", "internal", [m.message_id], DELIVERED)], at=T2)
    await message_store.advance_many([Receipt("bob", "internal", [m.message_id], DELIVERED)], at=T2)
    assert await outbox.pending() == 1


async def test_concurrent_relays_publish_each_event_once_in_order(
    database, conversation_store, message_store
) -> None:
    await open_conversation(conversation_store, CONV_A, "alice", "bob")
    batch = [msg(CONV_A, "alice", to("bob")) for _ in range(50)]
    await message_store.persist_batch(batch, at=T1)
    for m in batch:  # one transaction each, in this order
        await message_store.advance_many([Receipt("bob", "internal", [m.message_id], DELIVERED)], at=T2)
    log = Log()
    relays = [SqlStatusOutbox(database) for _ in range(3)]  # as if in three processes

    async def drain(relay: SqlStatusOutbox) -> None:
        while await relay.pending():
            await relay.relay(log.publish, limit=7)

    await asyncio.gather(*(drain(r) for r in relays))
    assert [e.message_id for e in log.events] == [m.message_id for m in batch]
