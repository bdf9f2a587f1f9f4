"""RateLimiter in the process's memory: the embedded profile, where one process sees every request."""

from __future__ import annotations

import time
from collections.abc import Callable

from chat4all.domain.limits import Backoff, Decision, Limit, gcra, verdict

_PRUNE_EVERY = 10_000  # hits between sweeps of keys whose allowance is full again


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, float] = {}  # key → theoretical arrival time, ms of the clock
        self._failures: dict[str, tuple[int, float, float]] = {}  # key → (streak, locked until, forget at), s
        self._hits = 0

    async def hit(self, *rules: Limit) -> Decision:
        now = self._clock() * 1000.0
        self._hits += 1
        if self._hits % _PRUNE_EVERY == 0:
            self._prune(now)
        results = [gcra(self._tat.get(r.key), now, r) for r in rules]
        decision = verdict([d for d, _ in results])
        if decision.allowed:
            for rule, (_, tat) in zip(rules, results, strict=True):
                self._tat[rule.key] = tat
        return decision

    async def fail(self, backoff: Backoff) -> float:
        now = self._clock()
        streak, _, forget_at = self._failures.get(backoff.key, (0, 0.0, 0.0))
        if forget_at <= now:
            streak = 0
        streak += 1
        lock = backoff.lock_after(streak)
        self._failures[backoff.key] = (streak, now + lock, now + lock + backoff.forget_s)
        return lock

    async def locked_for(self, key: str) -> float:
        _, until, _ = self._failures.get(key, (0, 0.0, 0.0))
        return max(0.0, until - self._clock())

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)

    def _prune(self, now_ms: float) -> None:
        self._tat = {k: v for k, v in self._tat.items() if v > now_ms}
        now = now_ms / 1000.0
        self._failures = {k: v for k, v in self._failures.items() if v[2] > now}
