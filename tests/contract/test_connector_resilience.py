"""The circuit breaker and the retry schedule of connectors (R11.5, R14.4)."""

from __future__ import annotations

import pytest

from chat4all.connectors.resilience import BreakerState, CircuitBreaker, RetryPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, open_s=5.0, clock=clock, on_change=changes.append if changes is not None else None
    )


def test_the_breaker_opens_after_consecutive_failures_and_refuses_until_the_open_time_passed() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(2):
        assert b.allow()
        b.failure("HTTP 503")
    assert b.state is BreakerState.CLOSED
    b.success()  # a success in between resets the count
    for _ in range(3):
        assert b.allow()
        b.failure("HTTP 503")
    assert b.state is BreakerState.OPEN and changes == [BreakerState.OPEN]
    assert not b.allow() and b.last_error == "HTTP 503"
    clock.now += 4.9
    assert not b.allow() and b.retry_in_s() == pytest.approx(0.1)
    clock.now += 0.1
    assert b.state is BreakerState.HALF_OPEN and b.retry_in_s() == 0


def test_half_open_lets_one_probe_through_success_closes_failure_reopens() -> None:
    clock, changes = Clock(), []
    b = breaker(clock, changes)
    for _ in range(3):
        b.failure("down")
    clock.now += 5
    assert b.allow()  # the probe
    assert not b.allow()  # only one at a time
    b.failure("still down")
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.now += 5
    assert b.allow()
    b.success()
    assert b.state is BreakerState.CLOSED and b.allow() and b.allow()
    assert changes == [
        BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED
    ]


def test_a_neutral_outcome_frees_the_probe_without_changing_the_state() -> None:
    clock = Clock()
    b = breaker(clock)
    for _ in range(3):
        b.failure("down")
    clock.now += 5
    assert b.allow()
    b.neutral()  # e.g. throttled: says nothing about health
    assert b.state is BreakerState.HALF_OPEN and b.allow()


def test_the_breaker_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(open_s=0)


def test_backoff_is_1_2_4_8_seconds_with_jitter_then_gives_up_after_5_attempts() -> None:
    policy = RetryPolicy()  # the defaults are the contract: 5 attempts, base 1 s, ±20 %
    nominal = [1.0, 2.0, 4.0, 8.0]
    assert [policy.next_delay_s(n, rng=lambda: 0.5) for n in range(1, 5)] == nominal
    for n, expected in enumerate(nominal, start=1):
        assert policy.next_delay_s(n, rng=lambda: 0.0) == pytest.approx(expected * 0.8)
        assert policy.next_delay_s(n, rng=lambda: 1.0) == pytest.approx(expected * 1.2)
    assert policy.next_delay_s(5) is None
    spread = {round(policy.backoff_s(1), 6) for _ in range(50)}
    assert len(spread) > 10 and all(0.8 <= s <= 1.2 for s in spread)  # jittered, within bounds


def test_retry_after_is_honoured_when_longer_than_the_backoff_and_capped() -> None:
    policy = RetryPolicy(base_s=1.0, jitter=0.0, max_delay_s=60)
    assert policy.next_delay_s(1, retry_after_s=7) == 7
    assert policy.next_delay_s(3, retry_after_s=1) == 4  # the backoff is longer
    assert policy.next_delay_s(1, retry_after_s=3600) == 60
    assert policy.next_delay_s(5, retry_after_s=1) is None  # exhausted is exhausted


def test_a_configurable_base_scales_the_whole_schedule() -> None:
    policy = RetryPolicy(base_s=0.05, jitter=0.0, max_attempts=3)
    assert [policy.next_delay_s(n) for n in (1, 2, 3)] == [0.05, 0.1, None]
