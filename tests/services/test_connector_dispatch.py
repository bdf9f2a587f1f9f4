"""ConnectorSender on fakes: one attempt at an external delivery and what it records — the
retry schedule, a provider's retry-after, the circuit breaker's open time, giving up to the
dead-letter topic — with the clock moved by hand instead of waiting for the backoff."""

from __future__ import annotations

import pytest

from chat4all.connectors.base import DeliveryResult, PermanentError, RateLimited, TransientError
from chat4all.connectors.resilience import RetryPolicy
from chat4all.domain.connectors import DeadLetter
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import NewMessage
from chat4all.services.connector_dispatch import ConnectorSender, ConnectorSendRules
from chat4all.services.deliveries import DeliveryService
from tests.fakes.clock import FakeClock
from tests.fakes.log import FakeEventLog
from tests.fakes.users import FakeMetadataStore
from tests.fakes.world import FakeWorld

from .conftest import ScriptedConnector, add_users, group, live

CHAT = "aaaaaaaa-0000-4000-8000-000000000001"
LEASE_S = 30.0
# no jitter: the delays are exactly 1, 2, 4 ... seconds
RULES = ConnectorSendRules(retry=RetryPolicy(max_attempts=3, base_s=1.0, jitter=0.0))


@pytest.fixture
async def dispatch(
    world: FakeWorld, metadata: FakeMetadataStore, deliveries: DeliveryService, log: FakeEventLog, clock: FakeClock
) -> ConnectorSender:
    await add_users(metadata, clock, "alice", "bob")
    await metadata.set_channel("bob", "telegram", "4242")
    await group(world, clock, CHAT, "alice", "bob")
    message = NewMessage(
        "11111111-0000-4000-8000-000000000001", CHAT, "alice", ["bob"], ["telegram"],
        {"type": "text", "text": "hi"}, {}, clock(), [("bob", "telegram")],
    )
    await world.messages.persist_batch([message], at=clock())
    return ConnectorSender(
        metadata=metadata, deliveries=deliveries, log=log, rules=RULES, clock=clock
    )


async def claim(world: FakeWorld, clock: FakeClock) -> list:
    return await world.queue.claim(now=clock(), limit=10, claimer="router-1", lease_s=LEASE_S)


async def status(world: FakeWorld) -> tuple[DeliveryStatus, str | None]:
    [delivery] = await world.messages.deliveries("11111111-0000-4000-8000-000000000001")
    return delivery.status, delivery.error


async def test_an_accepted_send_leaves_the_queue_and_a_confirmed_one_is_delivered(
    dispatch: ConnectorSender, world: FakeWorld, clock: FakeClock
) -> None:
    connector = ScriptedConnector([DeliveryResult(delivered=True, provider_message_ids=("p-1",))])
    [claimed] = await claim(world, clock)

    await dispatch.deliver(claimed, live(connector, clock))

    assert connector.sent[0].external_id == "4242" and connector.sent[0].text == "hi"
    assert (await status(world))[0] is DeliveryStatus.DELIVERED
    assert await claim(world, clock) == []
    link = await world.links.find("telegram", "4242", "p-1")
    assert link is not None and link.conversation_id == CHAT


async def test_transient_failures_are_retried_after_1_then_2_seconds_then_given_up_to_the_dlq(
    dispatch: ConnectorSender, world: FakeWorld, log: FakeEventLog, clock: FakeClock
) -> None:
    connector = ScriptedConnector([TransientError("502"), TransientError("502"), TransientError("502")])
    channel = live(connector, clock)
    [claimed] = await claim(world, clock)

    await dispatch.deliver(claimed, channel)  # attempt 1 fails: due again in 1 s
    assert (await status(world)) == (DeliveryStatus.SENT, "attempt 1 of 3 failed: 502; next in 1.0 s")
    clock.advance(0.9)
    assert await claim(world, clock) == []
    clock.advance(0.1)
    [again] = await claim(world, clock)
    assert again.attempts == 1

    await dispatch.deliver(again, channel)  # attempt 2 fails: due again in 2 s
    clock.advance(1.9)
    assert await claim(world, clock) == []
    clock.advance(0.1)
    [last] = await claim(world, clock)

    await dispatch.deliver(last, channel)  # attempt 3 was the last

    gave_up_at = clock.now
    assert (await status(world))[0] is DeliveryStatus.FAILED
    clock.advance(3600)
    assert await claim(world, clock) == []  # nothing is pending any more
    [letter] = [DeadLetter.decode(r.value) for r in log.records(DeadLetter.topic)]
    assert (letter.attempts, letter.permanent, letter.failed_at) == (3, False, gave_up_at)
    assert letter.reason == "gave up after 3 attempts: 502"


async def test_a_providers_retry_after_is_honoured(
    dispatch: ConnectorSender, world: FakeWorld, clock: FakeClock
) -> None:
    connector = ScriptedConnector([RateLimited("slow down", retry_after_s=30.0)])
    [claimed] = await claim(world, clock)

    await dispatch.deliver(claimed, live(connector, clock))

    clock.advance(29.9)
    assert await claim(world, clock) == []
    clock.advance(0.1)
    assert len(await claim(world, clock)) == 1


async def test_while_the_breaker_is_open_nothing_is_sent_and_the_retry_waits_for_the_probe(
    dispatch: ConnectorSender, world: FakeWorld, clock: FakeClock
) -> None:
    connector = ScriptedConnector([TransientError("down")])
    channel = live(connector, clock, failure_threshold=1, open_s=5.0)
    [claimed] = await claim(world, clock)
    await dispatch.deliver(claimed, channel)  # the failure opens the breaker
    clock.advance(1)
    [again] = await claim(world, clock)

    await dispatch.deliver(again, channel)

    assert len(connector.sent) == 1  # refused without calling the provider
    clock.advance(3.9)
    assert await claim(world, clock) == []  # not before the breaker lets a probe through (5 s after opening)
    clock.advance(0.1)
    assert len(await claim(world, clock)) == 1


async def test_a_permanent_error_fails_the_delivery_at_once(
    dispatch: ConnectorSender, world: FakeWorld, log: FakeEventLog, clock: FakeClock
) -> None:
    [claimed] = await claim(world, clock)

    await dispatch.deliver(claimed, live(ScriptedConnector([PermanentError("chat not found")]), clock))

    assert (await status(world)) == (DeliveryStatus.FAILED, "chat not found")
    [letter] = [DeadLetter.decode(r.value) for r in log.records(DeadLetter.topic)]
    assert letter.permanent and letter.attempts == 1
