"""RoutingService on fakes: expansion of "all", one store round trip per batch, frames encoded
once, SENT announced after the push (frames, and StatusEvents appended to the log by the router
itself), replays pushed and their SENT appended again but stored once. No server, no sleep."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chat4all.domain.errors import Unavailable
from chat4all.domain.events import StatusEvent
from chat4all.domain.frames import Frame
from chat4all.domain.status import DeliveryStatus
from chat4all.services.deliveries import DeliveryService
from chat4all.services.routing import RoutingService
from tests.fakes.clock import FakeClock
from tests.fakes.deliveries import FakeDeliveryStore, FakeRelay
from tests.fakes.log import FakeEventLog
from tests.fakes.push import RecordingPush
from tests.fakes.routing import ChannelDirectory, message_event


class Parts:
    def __init__(self, channels: dict[str, dict[str, str]] | None = None, max_deliveries: int = 2000) -> None:
        self.clock = FakeClock()
        self.store = FakeDeliveryStore()
        self.relay = FakeRelay(self.store)
        self.push = RecordingPush()
        self.directory = ChannelDirectory(channels)
        self.woken = 0
        self.log = FakeEventLog()
        self.deliveries = DeliveryService(
            store=self.store, push=self.push, relay=self.relay, log=self.log, receipt_linger_s=0
        )
        self.routing = RoutingService(
            deliveries=self.deliveries,
            metadata=self.directory,  # type: ignore[arg-type]
            push=self.push,
            on_external=self._wake,
            max_deliveries_per_transaction=max_deliveries,
            clock=self.clock,
        )

    def _wake(self) -> None:
        self.woken += 1

    def message_frames(self) -> list[tuple[str, Frame]]:
        return [(u, f) for u, f in self.push.frames if b'"type":"message"' in f.data and not f.v2_only]

    def own_frames(self) -> list[tuple[str, Frame]]:
        """What the senders' own v2 devices receive: each message once, marked own."""
        return [(u, f) for u, f in self.push.frames if b'"own":true' in f.data]

    def sent_events(self) -> list[StatusEvent]:
        """The StatusEvents on the log, in order within each message."""
        return [StatusEvent.decode(r.value) for r in self.log.records(StatusEvent.topic)]  # type: ignore[misc]

    def status_frames(self) -> list[tuple[str, Frame]]:
        return [(u, f) for u, f in self.push.frames if b'"type":"status"' in f.data]


@pytest.fixture
def parts() -> Parts:
    return Parts()


async def test_a_batch_is_stored_in_one_round_trip_then_pushed_then_announced(parts: Parts) -> None:
    at = parts.clock.now - timedelta(seconds=1)
    events = [message_event("c1", "alice", ["bob", "carol"], at=at, text=str(i)) for i in range(3)]
    routed = await parts.routing.route(events)

    assert parts.store.transactions == 1
    assert [m.sequence_number for m in routed.new] == [1, 2, 3] and routed.known == []
    # each message frame is encoded once: the same bytes object goes to both recipients
    frames = parts.message_frames()
    assert [u for u, _ in frames] == ["bob", "carol"] * 3
    assert all(frames[i][1] is frames[i + 1][1] for i in range(0, 6, 2))
    # and the SENT statuses: a StatusEvent each on the log, a frame per delivery to the sender
    assert [u for u, _ in parts.status_frames()] == ["alice"] * 6
    assert [u for u, f in parts.own_frames() if f.v2_only] == ["alice"] * 3  # the sender's other devices
    assert [x for x in parts.push.calls[0] if not x[1].v2_only] == frames  # messages before statuses
    sent = [c for c in parts.store.history_rows if c.status is DeliveryStatus.SENT]
    assert len(sent) == 6 and {c.at for c in sent} == {parts.clock.now}  # time comes from the clock
    logged = parts.sent_events()
    assert sorted((e.message_id, e.username, e.channel, e.status) for e in logged) == sorted(
        (c.message_id, c.username, c.channel, c.status) for c in sent
    )
    assert {(e.sender, e.conversation_id, e.at) for e in logged} == {("alice", "c1", parts.clock.now)}
    assert all(r.key == StatusEvent.decode(r.value).message_id for r in parts.log.records(StatusEvent.topic))
    # not through the outbox: the router's uncommitted input is the outbox of SENT
    assert parts.store.outbox == [] and parts.relay.wakes == 0


async def test_all_expands_to_internal_and_every_mapped_channel_looked_up_once_per_batch() -> None:
    parts = Parts(channels={"bob": {"telegram": "111", "whatsapp": "+55"}, "carol": {}})
    at = parts.clock.now
    events = [message_event("c1", "alice", ["bob", "carol"], at=at, channels=["all"]) for _ in range(2)]
    await parts.routing.route(events)

    targets = sorted((u, c) for (m, u, c) in parts.store.rows if m == events[0].message_id)
    assert targets == [("bob", "internal"), ("bob", "telegram"), ("bob", "whatsapp"), ("carol", "internal")]
    assert sorted(parts.directory.lookups) == ["bob", "carol"]  # not once per message
    assert parts.woken == 1  # external deliveries were stored: the dispatcher is woken
    assert [u for u, _ in parts.message_frames()] == ["bob", "carol", "bob", "carol"]  # in-app ones only


async def test_named_channels_are_kept_once_each_and_only_internal_is_pushed(parts: Parts) -> None:
    event = message_event("c1", "alice", ["bob"], at=parts.clock.now, channels=["telegram", "internal", "telegram"])
    await parts.routing.route([event])
    assert sorted(c for (_, _, c) in parts.store.rows) == ["internal", "telegram"]
    assert [u for u, _ in parts.message_frames()] == ["bob"]


async def test_internal_only_batches_do_not_wake_the_connector_dispatcher(parts: Parts) -> None:
    await parts.routing.route([message_event("c1", "alice", ["bob"], at=parts.clock.now)])
    assert parts.woken == 0


async def test_a_replayed_batch_is_stored_once_pushed_again_and_its_sent_appended_again(parts: Parts) -> None:
    events = [message_event("c1", "alice", ["bob"], at=parts.clock.now, text=str(i)) for i in range(2)]
    await parts.routing.route(events)
    statuses_before = len(parts.status_frames())
    parts.clock.advance(5)
    again = await parts.routing.route(events)

    assert again.new == [] and [m.message_id for m in again.known] == [e.message_id for e in events]
    assert len(parts.store.messages) == 2
    assert len(parts.message_frames()) == 4  # a crash may have come between commit and push
    assert len(parts.status_frames()) == statuses_before  # nothing new to show the sender
    assert len([c for c in parts.store.history_rows if c.status is DeliveryStatus.SENT]) == 2
    # a crash may have come between the commit and the append: SENT goes to the log again
    # (the same event ids downstream, so a webhook sees it once)
    assert [(e.message_id, e.status) for e in parts.sent_events()].count((events[0].message_id, DeliveryStatus.SENT)) == 2


async def test_a_message_repeated_within_a_batch_is_stored_once(parts: Parts) -> None:
    event = message_event("c1", "alice", ["bob"], at=parts.clock.now)
    routed = await parts.routing.route([event, event])
    assert len(routed.new) == 1 and len(parts.store.messages) == 1


async def test_big_fan_out_is_stored_in_bounded_transactions_in_order() -> None:
    parts = Parts(max_deliveries=5)
    members = [f"u{i}" for i in range(4)]
    events = [message_event("c1", "alice", members, at=parts.clock.now, text=str(i)) for i in range(3)]
    routed = await parts.routing.route(events)
    assert parts.store.transactions == 3  # 4 + 4 + 4 deliveries, at most 5 per transaction
    assert [m.sequence_number for m in routed.new] == [1, 2, 3]


async def test_nothing_is_pushed_or_announced_when_the_store_fails(parts: Parts) -> None:
    parts.store.fail_next = Unavailable("the database is not reachable")
    with pytest.raises(Unavailable):
        await parts.routing.route([message_event("c1", "alice", ["bob"], at=parts.clock.now)])
    assert parts.push.calls == [] and parts.sent_events() == []
    # the worker does not commit the offsets; the next poll routes the batch again
    routed = await parts.routing.route([message_event("c1", "alice", ["bob"], at=parts.clock.now)])
    assert len(routed.new) == 1


async def test_status_frames_that_cannot_be_pushed_do_not_fail_the_batch(parts: Parts) -> None:
    class MessagesOnly(RecordingPush):
        async def send(self, frames):  # type: ignore[no-untyped-def]
            if any(b'"type":"status"' in f.data for _, f in frames):
                raise Unavailable("push is unavailable")
            await super().send(frames)

    parts.deliveries._push = MessagesOnly()  # type: ignore[attr-defined]
    routed = await parts.routing.route([message_event("c1", "alice", ["bob"], at=parts.clock.now)])
    assert len(routed.new) == 1 and len(parts.sent_events()) == 1


async def test_each_delivery_keeps_the_trace_it_was_routed_under(parts: Parts) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    mine = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
    event = message_event("c1", "alice", ["bob"], at=parts.clock.now, traceparent=parent)

    seen: list[str | None] = []
    original = parts.store.persist_batch

    async def spy(batch, *, at):  # type: ignore[no-untyped-def]
        seen.extend(m.traceparent for m in batch)
        return await original(batch, at=at)

    parts.store.persist_batch = spy  # type: ignore[method-assign]
    await parts.routing.route([event])  # tracing off: the accepting request's trace
    await parts.routing.route([event], traces={event.message_id: mine})  # the router's span
    assert seen == [parent, mine]
    # the SENT events carry the trace the delivery was stored with
    assert [e.traceparent for e in parts.sent_events()] == [parent, mine]


async def test_a_batch_whose_sent_events_the_log_refuses_fails_and_is_announced_on_retry(parts: Parts) -> None:
    event = message_event("c1", "alice", ["bob"], at=parts.clock.now)
    await parts.log.close()  # the log refuses appends
    with pytest.raises(Unavailable):
        await parts.routing.route([event])
    assert len(parts.store.messages) == 1  # stored; the worker will not commit the batch's offsets
    assert parts.push.calls == []  # nobody received it yet: nobody can have acknowledged it
    parts.log._closed = False  # type: ignore[attr-defined]
    again = await parts.routing.route([event])  # the replay
    assert again.new == [] and [(e.message_id, e.username, e.status) for e in parts.sent_events()] == [
        (event.message_id, "bob", DeliveryStatus.SENT)
    ]


async def test_sent_is_on_the_log_before_the_message_reaches_a_socket(parts: Parts) -> None:
    """So a recipient's DELIVERED (appended after its ack, under the same key) follows SENT."""
    logged_at_push: list[list[str]] = []
    original = parts.push.send

    async def send(frames):  # type: ignore[no-untyped-def]
        logged_at_push.append([e.message_id for e in parts.sent_events()])
        await original(frames)

    parts.push.send = send  # type: ignore[method-assign]
    event = message_event("c1", "alice", ["bob"], at=parts.clock.now)
    await parts.routing.route([event])
    assert logged_at_push and all(event.message_id in seen for seen in logged_at_push)
