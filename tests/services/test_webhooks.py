"""Webhooks on fakes: registration rules, and the delivery of callbacks — retries on the backoff
schedule, giving up, disabling a failing endpoint — driven by a FakeClock, round by round."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.domain.errors import InvalidInput
from chat4all.domain.webhooks import SIGNATURE_HEADER, DeliveryState, Webhook, verify
from chat4all.ports import Callback
from chat4all.services.webhooks import WebhookLimitReached, WebhookService
from chat4all.workers.webhook_delivery import CallbackDispatcher, CallbackRules
from tests.fakes.clock import FakeClock
from tests.fakes.webhooks import FakeCallbackTransport
from tests.fakes.world import FakeWorld

RULES = CallbackRules(max_retries=2, retry_base_s=10.0, disable_after=2, claim_ttl_s=30.0)


def service(world: FakeWorld, transport: FakeCallbackTransport, clock: FakeClock) -> WebhookService:
    return WebhookService(registry=world.webhooks, outbox=world.outbox, transport=transport, max_per_user=2, clock=clock)


def dispatcher(world: FakeWorld, transport: FakeCallbackTransport, clock: FakeClock) -> CallbackDispatcher:
    return CallbackDispatcher(
        outbox=world.outbox, registry=world.webhooks, transport=transport, node_id="n1", rules=RULES, clock=clock
    )


async def one_round(loop: CallbackDispatcher) -> None:
    """What the loop does when woken: claim what is due and finish every attempt started."""
    await loop._round()
    await asyncio.gather(*loop._in_flight)


async def hook_with_callback(world: FakeWorld, clock: FakeClock, subject: str = "m1") -> Webhook:
    owned = await world.webhooks.owned_by("alice")
    hook = owned[0] if owned else await service(world, FakeCallbackTransport(), clock).register(
        "alice", url="https://example.com/hook"
    )
    callback = Callback(hook.webhook_id, "alice", f"{subject}-SENT", "message.status", subject, b'{"event":"SENT"}')
    await world.outbox.enqueue([callback], now=clock())
    return hook


async def test_a_registration_is_checked_stamped_and_limited(world: FakeWorld, clock: FakeClock) -> None:
    webhooks = service(world, FakeCallbackTransport(), clock)
    with pytest.raises(InvalidInput):
        await webhooks.register("alice", url="ftp://example.com/hook")

    first = await webhooks.register("alice", url="https://example.com/a")
    await webhooks.register("alice", url="https://example.com/b")
    with pytest.raises(WebhookLimitReached):
        await webhooks.register("alice", url="https://example.com/c")
    assert first.created_at == clock.now


async def test_a_failed_callback_is_retried_on_the_backoff_schedule_then_delivered(
    world: FakeWorld, clock: FakeClock
) -> None:
    hook = await hook_with_callback(world, clock)
    transport = FakeCallbackTransport((500, None), (None, "timed out"), (200, None))
    loop = dispatcher(world, transport, clock)
    started = clock.now

    await one_round(loop)  # attempt 1: 500, due again in 10 s
    clock.advance(9.9)
    await one_round(loop)
    assert len(transport.posts) == 1  # not due yet
    clock.advance(0.1)
    await one_round(loop)  # attempt 2: no answer, due again in 20 s
    clock.advance(19.9)
    await one_round(loop)
    assert len(transport.posts) == 2
    clock.advance(0.1)
    await one_round(loop)  # attempt 3: delivered

    [delivery] = await world.outbox.deliveries(hook.webhook_id, limit=10, before=None)
    assert delivery.state is DeliveryState.DELIVERED
    assert [a.attempt for a in delivery.attempts] == [1, 2, 3]
    assert [round((a.at - started).total_seconds(), 1) for a in delivery.attempts] == [0.0, 10.0, 30.0]
    # each POST is signed at the time of its attempt, on the same clock
    last = transport.posts[-1]
    assert verify(hook.secret, last.body, last.headers[SIGNATURE_HEADER], now=int(clock.now.timestamp()))


async def test_a_callback_that_keeps_failing_is_given_up_and_the_endpoint_disabled_after_a_streak(
    world: FakeWorld, clock: FakeClock
) -> None:
    hook = await hook_with_callback(world, clock, "m1")
    await hook_with_callback(world, clock, "m2")
    await hook_with_callback(world, clock, "m3")
    transport = FakeCallbackTransport((503, None))
    loop = dispatcher(world, transport, clock)

    for _ in range(3):  # 1 + max_retries attempts of m1 and m2 (m3 is due too)
        await one_round(loop)
        clock.advance(60)

    states = {d.event_id: d.state for d in await world.outbox.deliveries(hook.webhook_id, limit=10, before=None)}
    assert states["m1-SENT"] is DeliveryState.FAILED and states["m2-SENT"] is DeliveryState.FAILED
    assert states["m3-SENT"] is DeliveryState.CANCELLED  # the webhook was disabled: pending ones stop
    disabled = await world.webhooks.get("alice", hook.webhook_id)
    assert not disabled.active and disabled.disabled_at is not None
    assert "2 consecutive failed callbacks" in disabled.disabled_reason
