"""Resilience of external deliveries (R11.5, R14.4): a circuit breaker per connector and the
retry schedule.

Breaker: ``closed`` lets every call through and counts consecutive failures; after
``failure_threshold`` of them it is ``open`` for ``open_s``: calls are refused at once without
reaching the provider. Then ``half_open`` lets one probe through: success closes it, failure
opens it again. Only the provider's own failures count (5xx, timeouts, network errors); a
permanent (4xx-like) answer proves the provider is up.

Retries: attempt n (1-based) that failed transiently is retried after base·2^(n-1) seconds
(1, 2, 4, 8 s by default) with ±``jitter`` spread, or after the provider's retry-after if that
is longer; after ``max_attempts`` attempts the delivery gives up.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum


class BreakerState(IntEnum):
    """Values are what the metric ``chat4all_connector_breaker_state`` exports."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        open_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1 or open_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_s > 0")
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.last_error: str | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.open_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def retry_in_s(self) -> float:
        """While open, how long until a probe is allowed; else 0."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self.open_s - (self._clock() - self._opened_at))
        return 0.0

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one probe at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        self.last_error = None
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def failure(self, reason: str | None = None) -> None:
        self._probing = False
        self.last_error = reason
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
            self._open()

    def neutral(self) -> None:
        """A call whose outcome says nothing about the provider's health (e.g. throttled)."""
        self._probing = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        if self._on_change is not None:
            self._on_change(state)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    base_s: float = 1.0
    jitter: float = 0.2  # each delay is spread uniformly over ±20 %
    max_delay_s: float = 3600.0  # a retry-after beyond this is cut to it

    def backoff_s(self, attempt: int, *, rng: Callable[[], float] = random.random) -> float:
        """The pause after failed attempt ``attempt`` (1-based): base·2^(attempt-1), jittered."""
        nominal = self.base_s * 2 ** (attempt - 1)
        return nominal * (1 + self.jitter * (2 * rng() - 1))

    def next_delay_s(
        self, attempt: int, *, retry_after_s: float | None = None, rng: Callable[[], float] = random.random
    ) -> float | None:
        """Seconds until the next attempt after failed attempt ``attempt``; None: give up."""
        if attempt >= self.max_attempts:
            return None
        delay = self.backoff_s(attempt, rng=rng)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return min(delay, self.max_delay_s)
