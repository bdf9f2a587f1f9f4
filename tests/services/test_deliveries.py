"""DeliveryService on fakes: the one writer of a delivery's status. Forward only, history and
status event with every change, status frames to the sender, the external retry bookkeeping and
the operator's requeue. No server, no sleep (receipts are not lingered)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ConnectorLink, DeliveryKey, NewMessage
from chat4all.services.deliveries import DeliveryService
from tests.fakes.clock import FakeClock
from tests.fakes.deliveries import FakeDeliveryStore, FakeRelay
from tests.fakes.push import RecordingPush

SENT, DELIVERED, READ, FAILED = (
    DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ, DeliveryStatus.FAILED,
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def new_message(message_id: str, targets: list[tuple[str, str]]) -> NewMessage:
    return NewMessage(
        message_id=message_id,
        conversation_id="c1",
        sender="alice",
        recipients=sorted({u for u, _ in targets}),
        channels=sorted({c for _, c in targets}),
        payload={"type": "text", "text": "hi"},
        metadata={},
        created_at=T0,
        targets=targets,
    )


class Parts:
    def __init__(self, *, wait_for_relay: bool = False) -> None:
        self.store = FakeDeliveryStore()
        self.relay = FakeRelay(self.store)
        self.push = RecordingPush()
        self.clock = FakeClock(T0 + timedelta(minutes=1))
        self.service = DeliveryService(
            store=self.store, push=self.push, relay=self.relay, receipt_linger_s=0, wait_for_relay=wait_for_relay,
            clock=self.clock,
        )

    async def given(self, message_id: str, targets: list[tuple[str, str]]) -> None:
        await self.service.create([new_message(message_id, targets)], at=T0)
        self.store.outbox.clear()

    def statuses_pushed(self) -> list[tuple[str, str]]:
        import orjson

        return [(u, orjson.loads(f.data)["status"]["status"]) for u, f in self.push.frames if not f.v2_only]

    def reader_copies(self) -> list[tuple[str, str]]:
        """The v2-only copies for the reader's other devices."""
        import orjson

        return [(u, orjson.loads(f.data)["status"]["status"]) for u, f in self.push.frames if f.v2_only]


@pytest.fixture
async def parts() -> Parts:
    p = Parts()
    await p.given("m1", [("bob", "internal"), ("carol", "internal"), ("bob", "telegram")])
    return p


async def test_a_receipt_moves_forward_once_with_history_event_and_frame(parts: Parts) -> None:
    moved = await parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=DELIVERED)
    assert moved == 1 and parts.store.status("m1", "bob") is DELIVERED
    assert [(c.username, c.status) for c in parts.store.outbox] == [("bob", DELIVERED)]
    assert [c.status for c in await parts.store.history("m1")][-1] is DELIVERED
    assert parts.statuses_pushed() == [("alice", "DELIVERED")]  # to the sender's sockets
    assert parts.reader_copies() == [("bob", "DELIVERED")]  # and to the reader's other v2 devices
    assert parts.relay.wakes == 1
    assert parts.store.outbox[0].at == parts.clock.now  # the service's clock, not the wall's

    again = await parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=DELIVERED)
    assert again == 0 and len(parts.store.outbox) == 1 and len(parts.push.frames) == 2  # nothing changed


async def test_a_late_receipt_never_moves_a_delivery_back(parts: Parts) -> None:
    await parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=READ)
    assert await parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=DELIVERED) == 0
    assert parts.store.status("m1", "bob") is READ


async def test_a_read_on_a_sent_delivery_records_delivered_then_read(parts: Parts) -> None:
    await parts.service.record(username="carol", channel="internal", message_ids=["m1"], status=READ)
    assert [c.status for c in parts.store.outbox] == [DELIVERED, READ]
    assert parts.statuses_pushed() == [("alice", "DELIVERED"), ("alice", "READ")]


async def test_receipts_that_arrive_together_share_one_transaction_in_arrival_order(parts: Parts) -> None:
    calls = 0
    original = parts.store.advance_many

    async def counted(receipts, *, at):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await original(receipts, at=at)

    parts.store.advance_many = counted  # type: ignore[method-assign]
    results = await asyncio.gather(
        parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=DELIVERED),
        parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=READ),
        parts.service.record(username="carol", channel="internal", message_ids=["m1", "unknown"], status=DELIVERED),
    )
    assert calls == 1 and results == [1, 1, 1]
    assert [c.status for c in parts.store.outbox if c.username == "bob"] == [DELIVERED, READ]


async def test_a_provider_that_confirms_delivery_moves_it_then_takes_it_out_of_the_queue(parts: Parts) -> None:
    key = DeliveryKey("m1", "bob", "telegram")
    link = ConnectorLink("telegram", "111", "p-1", "m1", "c1", "bob", T0)
    await parts.service.handed_over(key, attempts=1, links=[link], delivered=True, detail="delivered by the provider")
    assert parts.store.status("m1", "bob", "telegram") is DELIVERED
    assert ("m1", "bob", "telegram") not in parts.store.pending and parts.store.links == [link]
    assert parts.store.outbox[-1].detail == "delivered by the provider"


async def test_a_provider_that_only_took_it_leaves_it_sent_until_its_receipt(parts: Parts) -> None:
    await parts.service.handed_over(DeliveryKey("m1", "bob", "telegram"), attempts=2)
    assert parts.store.status("m1", "bob", "telegram") is SENT and parts.store.outbox == []
    assert ("m1", "bob", "telegram") not in parts.store.pending


async def test_a_transient_failure_is_due_again_with_its_reason_and_no_status_change(parts: Parts) -> None:
    due = T0 + timedelta(seconds=2)
    await parts.service.retry_later(DeliveryKey("m1", "bob", "telegram"), attempts=1, at=due, error="HTTP 503")
    assert parts.store.pending[("m1", "bob", "telegram")] == {"attempts": 1, "due": due, "error": "HTTP 503"}
    assert parts.store.status("m1", "bob", "telegram") is SENT and parts.store.outbox == []


async def test_giving_up_fails_the_delivery_with_the_reason_and_ends_its_retries(parts: Parts) -> None:
    key = DeliveryKey("m1", "bob", "telegram")
    await parts.service.give_up(key, attempts=5, reason="gave up after 5 attempts: HTTP 503")
    assert parts.store.status("m1", "bob", "telegram") is FAILED
    assert parts.store.outbox[-1].detail == "gave up after 5 attempts: HTTP 503"
    assert ("m1", "bob", "telegram") not in parts.store.pending
    assert parts.statuses_pushed() == [("alice", "FAILED")]
    # FAILED is terminal for receipts: a late provider callback changes nothing
    assert await parts.service.record(username="bob", channel="telegram", message_ids=["m1"], status=DELIVERED) == 0


async def test_the_operators_requeue_is_the_one_backward_move_and_only_from_failed() -> None:
    parts = Parts(wait_for_relay=True)
    await parts.given("m1", [("bob", "telegram"), ("carol", "telegram")])
    await parts.service.give_up(DeliveryKey("m1", "bob", "telegram"), attempts=5, reason="gave up")
    parts.relay.relayed.clear()

    keys = [DeliveryKey("m1", "bob", "telegram"), DeliveryKey("m1", "carol", "telegram")]
    moved = await parts.service.requeue(keys, detail="replayed from the DLQ")
    assert [(c.username, c.status, c.detail) for _, cs in moved for c in cs] == [("bob", SENT, "replayed from the DLQ")]
    assert parts.store.status("m1", "bob", "telegram") is SENT and ("m1", "bob", "telegram") in parts.store.pending
    # outside a server nothing relays later: the event is in the log before requeue returns
    assert [(c.username, c.status) for c in parts.relay.relayed] == [("bob", SENT)]
    assert await parts.service.requeue(keys, detail="again") == []  # no longer FAILED


async def test_a_status_change_is_stored_even_when_push_is_down(parts: Parts) -> None:
    parts.push.down = True
    assert await parts.service.record(username="bob", channel="internal", message_ids=["m1"], status=DELIVERED) == 1
    assert parts.store.status("m1", "bob") is DELIVERED and len(parts.store.outbox) == 1
