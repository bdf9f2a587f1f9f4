"""The node's socket hub (services/hub.py) and ConnectionService on fakes: push adapters deliver
into the hub, a socket joins it before its catch-up and the live stream continues the catch-up
with no gap and no repeat, receipts go through the delivery service. No server, no sleep."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest

from chat4all.adapters.memory import MemoryPresenceStore, MemoryPush
from chat4all.domain.events import PresenceEvent
from chat4all.domain.frames import Frame, message_frame
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import FrameSink, NewMessage
from chat4all.services.connections import CLOSE_POLICY, ConnectionService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.hub import LocalHub
from tests.fakes.clock import FakeClock
from tests.fakes.deliveries import FakeDeliveryStore, FakeRelay
from tests.fakes.push import RecordingPush, RecordingSubscriber

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame(message_id: str) -> Frame:
    return Frame(message_id, orjson.dumps({"type": "message", "message": {"message_id": message_id}}))


class Log:
    def __init__(self) -> None:
        self.appended: list[tuple[str, str, bytes]] = []

    async def append(self, topic: str, key: str, value: bytes) -> None:
        self.appended.append((topic, key, value))

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None:
        self.appended.extend((topic, k, v) for k, v in records)

    def presence(self) -> list[tuple[str, str]]:
        return [
            (e["username"], e["status"])
            for t, _, v in self.appended
            if t == PresenceEvent.topic
            for e in [orjson.loads(v)]
        ]


# the hub ---------------------------------------------------------------------------------------


def test_the_hub_hands_each_frame_to_every_socket_of_its_user_and_skips_the_rest() -> None:
    hub = LocalHub()
    phone, laptop, other = RecordingSubscriber(), RecordingSubscriber(), RecordingSubscriber()
    hub.add("bob", phone)
    hub.add("bob", laptop)
    hub.add("carol", other)
    hub.deliver([("bob", frame("m1")), ("nobody", frame("m2")), ("carol", frame("m3"))])
    assert [f.message_id for f in phone.frames] == ["m1"] == [f.message_id for f in laptop.frames]
    assert [f.message_id for f in other.frames] == ["m3"]
    hub.remove("bob", phone)
    hub.deliver([("bob", frame("m4"))])
    assert len(phone.frames) == 1 and len(laptop.frames) == 2
    assert hub.connection_count() == 2


def test_a_push_gap_tells_every_socket_here() -> None:
    hub = LocalHub()
    subscribers = [RecordingSubscriber() for _ in range(3)]
    for i, s in enumerate(subscribers):
        hub.add(f"u{i}", s)
    assert hub.missed_frames(spread_s=0) == 3
    assert [s.missed_count for s in subscribers] == [1, 1, 1]


async def test_the_memory_push_adapter_delivers_into_the_hub_through_the_port() -> None:
    hub = LocalHub()
    sink: FrameSink = hub  # the hub is what push adapters deliver into
    bob = RecordingSubscriber()
    hub.add("bob", bob)
    await MemoryPush(sink).send([("bob", frame("m1"))])
    assert [f.message_id for f in bob.frames] == ["m1"]


# connections -----------------------------------------------------------------------------------


class Parts:
    def __init__(self, *, max_sockets: int = 20) -> None:
        self.clock = FakeClock()
        self.hub = LocalHub()
        self.store = FakeDeliveryStore()
        self.push = RecordingPush(sink=self.hub)
        self.log = Log()
        self.deliveries = DeliveryService(store=self.store, push=self.push, relay=FakeRelay(self.store), receipt_linger_s=0)
        self.service = ConnectionService(
            hub=self.hub,
            presence=MemoryPresenceStore(ttl_s=60),
            messages=self.store,
            deliveries=self.deliveries,
            log=self.log,  # type: ignore[arg-type]
            node_id="n1",
            queue_size=100,
            max_sockets_per_user=max_sockets,
            clock=self.clock,
        )

    async def stored(self, *message_ids: str, to: str = "bob") -> list:
        batch = [
            NewMessage(
                message_id=m, conversation_id="c1", sender="alice", recipients=[to], channels=["internal"],
                payload={"type": "text", "text": m}, metadata={}, created_at=T0, targets=[(to, "internal")],
            )
            for m in message_ids
        ]
        return (await self.deliveries.create(batch, at=T0)).new


@pytest.fixture
def parts() -> Parts:
    return Parts()


async def test_a_socket_catches_up_in_order_then_the_live_stream_continues_without_repeats(parts: Parts) -> None:
    stored = await parts.stored("m1", "m2")
    connection = await parts.service.open("bob")  # joins the hub before reading what is pending
    # the router pushes m2 again (a replay) and then m3 while the catch-up is being read
    [m3] = await parts.stored("m3")
    await parts.push.send([("bob", message_frame(stored[1])), ("bob", message_frame(m3))])

    caught_up = [f.message_id async for f in parts.service.catch_up(connection)]
    assert caught_up == ["m1", "m2", "m3"]
    # both queued frames repeat the catch-up and are dropped: the next live frame is m4
    await parts.push.send([("bob", message_frame((await parts.stored("m4"))[0]))])
    assert (await connection.next_live()).message_id == "m4"


async def test_frames_queued_during_catch_up_that_repeat_it_are_dropped(parts: Parts) -> None:
    [m1] = await parts.stored("m1")
    connection = await parts.service.open("bob")
    await parts.push.send([("bob", message_frame(m1))])  # queued while the catch-up reads m1
    assert [f.message_id async for f in parts.service.catch_up(connection)] == ["m1"]
    [m2] = await parts.stored("m2")
    await parts.push.send([("bob", message_frame(m2))])
    assert (await connection.next_live()).message_id == "m2"  # m1 is not sent twice


async def test_acks_and_reads_go_through_the_delivery_service(parts: Parts) -> None:
    await parts.stored("m1", "m2")
    connection = await parts.service.open("bob")
    assert await parts.service.on_client_frame(connection, orjson.dumps({"type": "ack", "message_ids": ["m1"]})) is None
    assert await parts.service.on_client_frame(connection, orjson.dumps({"type": "read", "message_ids": ["m2"]})) is None
    for task in list(connection._receipts):  # stored without holding the reader; wait for them here
        await task
    assert parts.store.status("m1", "bob") is DeliveryStatus.DELIVERED
    assert parts.store.status("m2", "bob") is DeliveryStatus.READ


async def test_a_malformed_frame_is_answered_with_an_error_frame(parts: Parts) -> None:
    connection = await parts.service.open("bob")
    for raw, message in (
        (b"not json", "frames are JSON objects"),
        (orjson.dumps({"type": "ack", "message_ids": "m1"}), "message_ids must be a list of at most 1000 message ids"),
        (orjson.dumps({"type": "dance"}), "type must be one of: ack, read, ping"),
    ):
        reply = await parts.service.on_client_frame(connection, raw)
        assert reply is not None
        assert orjson.loads(reply.data)["error"] == {"code": "validation_error", "message": message}


async def test_presence_is_announced_on_the_first_socket_and_after_the_last(parts: Parts) -> None:
    first = await parts.service.open("bob")
    second = await parts.service.open("bob")
    await parts.service.close(first)
    assert parts.log.presence() == [("bob", "online")]
    assert (await parts.service.presence("bob")).status == "online"
    parts.clock.advance(30)
    await parts.service.close(second)
    assert parts.log.presence() == [("bob", "online"), ("bob", "offline")]
    assert parts.hub.connection_count() == 0
    seen = await parts.service.presence("bob")
    assert seen.status == "offline" and seen.last_seen == parts.clock.now  # the service's clock


async def test_a_socket_without_heartbeats_lapses_from_presence_when_its_ttl_passes(parts: Parts) -> None:
    connection = await parts.service.open("bob")
    parts.clock.advance(59)
    await parts.service.heartbeat(connection)
    parts.clock.advance(59)
    assert (await parts.service.presence("bob")).status == "online"  # the beat kept it
    parts.clock.advance(2)
    assert (await parts.service.presence("bob")).status == "offline"  # 61 s since the last beat


async def test_a_new_socket_beyond_the_limit_ends_the_oldest() -> None:
    parts = Parts(max_sockets=2)
    oldest = await parts.service.open("bob")
    await parts.service.open("bob")
    await parts.service.open("bob")
    ended = oldest.ended.result()
    assert ended.code == CLOSE_POLICY and "too many sockets" in ended.reason
