"""DeliveryQueue and ConnectorLinks contract (SQLite and PostgreSQL): external deliveries wait in
their rows, go out in order per (recipient, channel, conversation), are claimed by one
dispatcher at a time, retried, given up and replayed (R14.4, R14.5)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from chat4all.adapters.sql.connector_links import SqlConnectorLinks
from chat4all.adapters.sql.connector_queue import SqlDeliveryQueue
from chat4all.adapters.sql.database import Database
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ConnectorLink, ConversationStore, DeliveryKey, MessageStore
from tests.contract.test_message_store import (
    CONV_A,
    CONV_B,
    T0,
    T1,
    T2,
    T3,
    msg,
    open_conversation,
    to,
)
from tests.fakes.world import FakeWorld

# SQL on each database, and the in-memory fake (tests/fakes)
pytestmark = pytest.mark.fakes

LEASE_S = 30.0


@pytest.fixture
def links(database: Database | None, fakes: FakeWorld) -> Any:
    return fakes.links if database is None else SqlConnectorLinks(database)


@pytest.fixture
def queue(database: Database | None, fakes: FakeWorld) -> Any:
    return fakes.queue if database is None else SqlDeliveryQueue(database)


@pytest.fixture
async def two_chats(conversation_store: ConversationStore) -> tuple[str, str]:
    await open_conversation(conversation_store, CONV_A, "alice", "bob", "carol")
    await open_conversation(conversation_store, CONV_B, "alice", "bob")
    return CONV_A, CONV_B


async def store(messages: MessageStore, conversation_id: str, targets: list[tuple[str, str]], n: int = 1) -> list[str]:
    batch = [msg(conversation_id, "alice", targets, text=f"m{i}") for i in range(n)]
    result = await messages.persist_batch(batch, at=T0)
    return [m.message_id for m in result.new]


def keys(claimed) -> list[tuple[str, str, str]]:
    return [(c.key.message_id, c.key.username, c.key.channel) for c in claimed]


async def test_external_deliveries_are_pending_from_the_start_and_internal_ones_never(
    queue: SqlDeliveryQueue, message_store: MessageStore, two_chats
) -> None:
    [mid] = await store(message_store, CONV_A, [("bob", "internal"), ("bob", "telegram"), ("carol", "whatsapp")])
    assert await queue.due_channels(now=T0) == {"telegram", "whatsapp"}
    assert await queue.due_channels(now=T0 - timedelta(seconds=1)) == set()
    claimed = await queue.claim(now=T0, limit=10, claimer="r1", lease_s=LEASE_S)
    assert sorted(keys(claimed)) == [(mid, "bob", "telegram"), (mid, "carol", "whatsapp")]
    assert all(c.attempts == 0 and c.message.payload == {"type": "text", "text": "m0"} for c in claimed)
    assert claimed[0].message.sequence_number == 1


async def test_only_the_lowest_pending_sequence_of_a_recipient_channel_and_conversation_goes_out(
    queue: SqlDeliveryQueue, message_store: MessageStore, two_chats
) -> None:
    a = await store(message_store, CONV_A, to("bob", channel="telegram"), n=3)
    [b] = await store(message_store, CONV_B, to("bob", channel="telegram"))
    first = await queue.claim(now=T0, limit=10, claimer="r1", lease_s=LEASE_S, channels=["telegram"])
    assert sorted(keys(first)) == sorted([(a[0], "bob", "telegram"), (b, "bob", "telegram")])  # other conversations run in parallel
    assert await queue.claim(now=T0, limit=10, claimer="r1", lease_s=LEASE_S, channels=["telegram"]) == []
    # a retry keeps its place: the next message waits behind it
    await queue.retry(DeliveryKey(a[0], "bob", "telegram"), attempts=1, at=T2, error="attempt 1 of 5 failed: HTTP 503")
    assert await queue.claim(now=T1, limit=10, claimer="r1", lease_s=LEASE_S, channels=["telegram"]) == []
    again = await queue.claim(now=T2, limit=10, claimer="r1", lease_s=LEASE_S, channels=["telegram"])
    assert keys(again) == [(a[0], "bob", "telegram")] and again[0].attempts == 1
    deliveries = {d.channel: d for d in await message_store.deliveries(a[0])}
    assert deliveries["telegram"].error == "attempt 1 of 5 failed: HTTP 503"
    await queue.sent(DeliveryKey(a[0], "bob", "telegram"), attempts=2)
    assert (await message_store.deliveries(a[0]))[0].error is None
    nxt = await queue.claim(now=T2, limit=10, claimer="r1", lease_s=LEASE_S, channels=["telegram"])
    assert keys(nxt) == [(a[1], "bob", "telegram")]


async def test_a_claim_lapses_after_its_lease_and_a_release_makes_it_due_at_once(
    queue: SqlDeliveryQueue, message_store: MessageStore, two_chats
) -> None:
    [mid] = await store(message_store, CONV_A, to("bob", channel="telegram"))
    assert len(await queue.claim(now=T0, limit=10, claimer="r1", lease_s=LEASE_S)) == 1
    assert await queue.claim(now=T0 + timedelta(seconds=29), limit=10, claimer="r2", lease_s=LEASE_S) == []
    lapsed = await queue.claim(now=T0 + timedelta(seconds=31), limit=10, claimer="r2", lease_s=LEASE_S)
    assert keys(lapsed) == [(mid, "bob", "telegram")]
    assert await queue.release(claimer="r1", now=T1) == 0  # r2 holds it now
    assert await queue.release(claimer="r2", now=T1) == 1
    assert len(await queue.claim(now=T1, limit=10, claimer="r3", lease_s=LEASE_S)) == 1
    assert await queue.release(claimer=None, now=T2) == 1  # everyone's (a lone SQLite process at start)


async def test_concurrent_claims_never_hand_out_the_same_delivery(
    queue: SqlDeliveryQueue, message_store: MessageStore, conversation_store: ConversationStore
) -> None:
    conversations = [f"cccccccc-0000-4000-8000-{i:012d}" for i in range(20)]
    for c in conversations:
        await open_conversation(conversation_store, c, "alice", "bob")
        await store(message_store, c, to("bob", channel="whatsapp"))
    results = await asyncio.gather(
        *(queue.claim(now=T0, limit=8, claimer=f"r{i}", lease_s=LEASE_S) for i in range(4))
    )
    handed = [k for claimed in results for k in keys(claimed)]
    assert len(handed) == len(set(handed)) == 20


async def test_scope_by_channel_or_everything_but_excluded_channels(
    queue: SqlDeliveryQueue, message_store: MessageStore, two_chats
) -> None:
    await store(message_store, CONV_A, [("bob", "internal"), ("bob", "telegram"), ("bob", "fax"), ("carol", "whatsapp")])
    assert await queue.claim(now=T0, limit=10, claimer="r", lease_s=LEASE_S, channels=[]) == []
    others = await queue.claim(now=T0, limit=10, claimer="r", lease_s=LEASE_S, exclude=["telegram", "whatsapp"])
    assert [c.key.channel for c in others] == ["fax"]


async def test_giving_up_frees_the_next_message_and_a_replay_puts_it_back_once(
    queue: SqlDeliveryQueue, message_store: MessageStore, two_chats
) -> None:
    first, second = await store(message_store, CONV_A, to("bob", channel="telegram"), n=2)
    key = DeliveryKey(first, "bob", "telegram")
    await queue.claim(now=T0, limit=10, claimer="r", lease_s=LEASE_S)
    await message_store.advance(
        username="bob", channel="telegram", message_ids=[first], status=DeliveryStatus.FAILED, at=T1,
        detail="gave up after 5 attempts: HTTP 503",
    )
    await queue.finish(key, attempts=5)
    assert keys(await queue.claim(now=T1, limit=10, claimer="r", lease_s=LEASE_S)) == [(second, "bob", "telegram")]

    moved = await queue.requeue([key, DeliveryKey(second, "bob", "telegram")], now=T2, detail="replayed from the DLQ")
    assert [(m.message_id, [(c.status, c.detail) for c in cs]) for m, cs in moved] == [
        (first, [(DeliveryStatus.SENT, "replayed from the DLQ")])
    ]  # the second one was not FAILED: left alone
    [delivery] = await message_store.deliveries(first)
    assert (delivery.status, delivery.error) == (DeliveryStatus.SENT, None)
    assert [h.status for h in await message_store.history(first)] == [
        DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SENT
    ]
    assert await queue.requeue([key], now=T3, detail="again") == []  # no longer FAILED
    # it is due again, from attempt 1, and goes before the later message of the same recipient
    await queue.sent(DeliveryKey(second, "bob", "telegram"), attempts=1)
    back = await queue.claim(now=T3, limit=10, claimer="r", lease_s=LEASE_S)
    assert keys(back) == [(first, "bob", "telegram")] and back[0].attempts == 0


async def test_provider_ids_of_sent_messages_lead_back_to_their_conversation(
    queue: SqlDeliveryQueue, message_store: MessageStore, links: Any, two_chats
) -> None:
    [a] = await store(message_store, CONV_A, to("bob", channel="telegram"))
    [b] = await store(message_store, CONV_B, to("bob", channel="telegram"))
    assert await links.latest("telegram", "4242") is None

    def link(message_id: str, conversation_id: str, provider_id: str, at) -> ConnectorLink:
        return ConnectorLink("telegram", "4242", provider_id, message_id, conversation_id, "bob", at)

    await queue.sent(DeliveryKey(a, "bob", "telegram"), attempts=1, links=[link(a, CONV_A, "101", T1), link(a, CONV_A, "102", T1)])
    await queue.sent(DeliveryKey(b, "bob", "telegram"), attempts=1, links=[link(b, CONV_B, "103", T2)])
    await queue.sent(DeliveryKey(b, "bob", "telegram"), attempts=1, links=[link(b, CONV_B, "103", T2)])  # idempotent
    assert (await links.find("telegram", "4242", "102")).conversation_id == CONV_A
    assert await links.find("telegram", "9999", "102") is None
    assert (await links.latest("telegram", "4242")).message_id == b
