"""WebhookOutbox contract (R6.5): idempotent, ordered per subject, durable delivery state."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.webhook_outbox import SqlWebhookOutbox
from chat4all.domain.webhooks import DeliveryState
from chat4all.ports import Attempt, Callback, ClaimedCallback
from tests.fakes.world import FakeWorld

# SQL on each database, and the in-memory fake (tests/fakes)
pytestmark = pytest.mark.fakes

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE_S = 30.0


@pytest.fixture
def outbox(database: Database | None, fakes: FakeWorld) -> Any:
    return fakes.outbox if database is None else SqlWebhookOutbox(database)


def callback(webhook_id: str, subject_id: str, event: str, *, owner: str = "alice") -> Callback:
    return Callback(
        webhook_id=webhook_id,
        owner=owner,
        event_id=f"{subject_id}-{event}",
        type="message.status",
        subject_id=subject_id,
        body=f'{{"event":"{event}"}}'.encode(),
    )


def ok(number: int = 1, at: datetime = T0) -> Attempt:
    return Attempt(attempt=number, at=at, status_code=200, latency_ms=12)


def failed(number: int = 1, at: datetime = T0, status: int | None = 500) -> Attempt:
    return Attempt(attempt=number, at=at, status_code=status, latency_ms=5, error=None if status else "timed out")


async def claim(outbox: SqlWebhookOutbox, at: datetime = T0, *, claimer: str = "w1", limit: int = 100) -> list[ClaimedCallback]:
    return await outbox.claim(now=at, limit=limit, claimer=claimer, lease_s=LEASE_S)


def names(claimed: list[ClaimedCallback]) -> list[tuple[str, str]]:
    return [(c.webhook_id, c.event_id) for c in claimed]


async def test_enqueue_is_idempotent_per_webhook_and_event(outbox: SqlWebhookOutbox) -> None:
    first = [callback("h1", "m1", "SENT"), callback("h2", "m1", "SENT")]
    assert await outbox.enqueue(first, now=T0) == 2
    assert await outbox.enqueue([*first, callback("h1", "m1", "READ")], now=T0) == 1

    assert await outbox.known([("h1", "m1-SENT"), ("h2", "m1-SENT"), ("h2", "m1-READ"), ("h1", "m1-READ")]) == {
        ("h1", "m1-SENT"),
        ("h2", "m1-SENT"),
        ("h1", "m1-READ"),
    }
    assert await outbox.known([]) == set()
    assert len(await claim(outbox)) == 2  # h1's READ waits behind its SENT


async def test_only_the_oldest_pending_callback_of_a_subject_is_claimed(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue(
        [
            callback("h1", "m1", "SENT"),
            callback("h1", "m1", "DELIVERED"),
            callback("h1", "m2", "SENT"),
            callback("h2", "m1", "SENT"),
        ],
        now=T0,
    )

    claimed = await claim(outbox)

    assert sorted(names(claimed)) == [("h1", "m1-SENT"), ("h1", "m2-SENT"), ("h2", "m1-SENT")]
    assert all(c.attempts == 0 and c.owner == "alice" for c in claimed)
    assert claimed[0].body.startswith(b"{")
    assert await claim(outbox) == []  # held, and m1's DELIVERED must not overtake its SENT


async def test_a_success_delivers_and_lets_the_next_callback_of_the_subject_go(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", "m1", "SENT"), callback("h1", "m1", "DELIVERED")], now=T0)
    [sent] = await claim(outbox)

    assert await outbox.record(sent, ok(), retry_at=None, now=T0) == 0

    [delivered] = await claim(outbox)
    assert delivered.event_id == "m1-DELIVERED"
    [newest, oldest] = await outbox.deliveries("h1", limit=10, before=None)
    assert (oldest.event_id, oldest.state, oldest.finished_at, oldest.next_attempt_at) == ("m1-SENT", DeliveryState.DELIVERED, T0, None)
    assert oldest.attempts == [ok()]
    assert (newest.state, newest.attempts) == (DeliveryState.PENDING, [])


async def test_a_failure_is_retried_when_due_and_holds_back_later_callbacks(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", "m1", "SENT"), callback("h1", "m1", "READ")], now=T0)
    [sent] = await claim(outbox)
    retry_at = T0 + timedelta(seconds=1)

    assert await outbox.record(sent, failed(1), retry_at=retry_at, now=T0) == 0

    assert await claim(outbox, T0 + timedelta(milliseconds=999)) == []
    [again] = await claim(outbox, retry_at)
    assert (again.event_id, again.attempts) == ("m1-SENT", 1)
    [_, first] = await outbox.deliveries("h1", limit=10, before=None)
    assert (first.state, first.last_error, first.attempts) == (DeliveryState.PENDING, "HTTP 500", [failed(1)])
    assert first.next_attempt_at is not None and first.next_attempt_at > retry_at  # held by the claim


async def test_a_final_failure_grows_the_streak_that_a_success_resets(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", f"m{i}", "SENT") for i in range(4)] + [callback("h1", "m0", "READ")], now=T0)
    claimed = {c.event_id: c for c in await claim(outbox)}

    assert await outbox.record(claimed["m0-SENT"], failed(4, status=None), retry_at=None, now=T0) == 1
    assert await outbox.record(claimed["m1-SENT"], failed(4), retry_at=None, now=T0) == 2
    assert await outbox.record(claimed["m2-SENT"], ok(), retry_at=None, now=T0) == 0
    assert await outbox.record(claimed["m3-SENT"], failed(4), retry_at=None, now=T0) == 1

    [read] = await claim(outbox)  # m0's READ goes once its SENT has failed for good
    assert read.event_id == "m0-READ"
    by_event = {d.event_id: d for d in await outbox.deliveries("h1", limit=10, before=None)}
    assert (by_event["m0-SENT"].state, by_event["m0-SENT"].last_error) == (DeliveryState.FAILED, "timed out")
    assert by_event["m0-SENT"].attempts[0].status_code is None


async def test_a_claim_lapses_so_a_dead_workers_callbacks_go_again(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", "m1", "SENT")], now=T0)
    [held] = await claim(outbox, claimer="dead")

    assert await claim(outbox, T0 + timedelta(seconds=LEASE_S - 1), claimer="w2") == []
    [again] = await claim(outbox, T0 + timedelta(seconds=LEASE_S), claimer="w2")
    assert (again.id, again.event_id) == (held.id, held.event_id)


async def test_release_makes_a_claimers_callbacks_due_at_once(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", "m1", "SENT"), callback("h1", "m2", "SENT")], now=T0)
    await claim(outbox, claimer="w1", limit=1)
    await claim(outbox, claimer="w2", limit=1)

    assert await outbox.release(claimer="w1", now=T0) == 1
    assert len(await claim(outbox, claimer="w3")) == 1
    assert await outbox.release(claimer=None, now=T0) == 2
    assert len(await claim(outbox, claimer="w3")) == 2


async def test_cancel_and_forget(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", "m1", "SENT"), callback("h1", "m2", "SENT"), callback("h2", "m1", "SENT")], now=T0)
    [first, *_] = await claim(outbox, limit=1)
    await outbox.record(first, ok(), retry_at=None, now=T0)

    assert await outbox.cancel("h1", reason="the webhook was disabled", now=T0) == 1
    assert names(await claim(outbox)) == [("h2", "m1-SENT")]
    states = {d.event_id: (d.state, d.last_error) for d in await outbox.deliveries("h1", limit=10, before=None)}
    assert states == {
        "m1-SENT": (DeliveryState.DELIVERED, None),
        "m2-SENT": (DeliveryState.CANCELLED, "the webhook was disabled"),
    }

    await outbox.forget("h1")
    assert await outbox.deliveries("h1", limit=10, before=None) == []
    assert await outbox.known([("h1", "m1-SENT")]) == set()
    assert await outbox.record(first, ok(2), retry_at=None, now=T0) == 0  # an attempt that ends after the delete


async def test_deliveries_page_newest_first(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", f"m{i}", "SENT") for i in range(5)], now=T0)

    page = await outbox.deliveries("h1", limit=2, before=None)
    assert [d.event_id for d in page] == ["m4-SENT", "m3-SENT"]
    page = await outbox.deliveries("h1", limit=10, before=page[-1].id)
    assert [d.event_id for d in page] == ["m2-SENT", "m1-SENT", "m0-SENT"]


async def test_prune_drops_finished_callbacks_and_keeps_pending_ones(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", "m1", "SENT"), callback("h1", "m2", "SENT")], now=T0)
    [first, _] = await claim(outbox)
    await outbox.record(first, ok(), retry_at=None, now=T0)

    assert await outbox.prune(finished_before=T0) == 0
    assert await outbox.prune(finished_before=T0 + timedelta(seconds=1)) == 1
    assert [d.event_id for d in await outbox.deliveries("h1", limit=10, before=None)] == ["m2-SENT"]


async def test_concurrent_claimers_never_hold_the_same_callback(outbox: SqlWebhookOutbox) -> None:
    await outbox.enqueue([callback("h1", f"m{i}", "SENT") for i in range(30)], now=T0)

    results = await asyncio.gather(*(claim(outbox, claimer=f"w{i}", limit=7) for i in range(6)))

    ids = [c.id for claimed in results for c in claimed]
    assert len(ids) == len(set(ids)) == 30
