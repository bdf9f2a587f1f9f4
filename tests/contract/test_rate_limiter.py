"""The RateLimiter contract, run against the in-memory adapter and Redis."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat4all.adapters.memory_limits import MemoryRateLimiter
from chat4all.domain.limits import Backoff, Limit
from tests.conftest import wait_until

from .conftest import _redis_keyspace


@pytest.fixture(
    params=[pytest.param("memory", id="memory"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    from chat4all.adapters.redis_limits import RedisRateLimiter

    async with _redis_keyspace() as space:
        yield RedisRateLimiter(space.client, key_prefix=space.prefix)


def key() -> str:
    return f"k-{secrets.token_hex(4)}"


async def test_allows_the_limit_then_refuses_with_when_to_retry(limiter: Any) -> None:
    k = key()
    seen = [await limiter.hit(Limit(k, 3, 60.0)) for _ in range(3)]
    assert [d.allowed for d in seen] == [True, True, True]
    assert [d.remaining for d in seen] == [2, 1, 0]
    assert all(d.limit == 3 for d in seen)
    refused = await limiter.hit(Limit(k, 3, 60.0))
    assert not refused.allowed
    assert refused.remaining == 0
    assert 15.0 <= refused.retry_after_s <= 20.5  # one unit comes back every 20 s
    assert 55.0 <= refused.reset_s <= 60.5


async def test_a_refused_request_costs_nothing_and_keys_are_independent(limiter: Any) -> None:
    k, other = key(), key()
    assert (await limiter.hit(Limit(k, 1, 60.0))).allowed
    for _ in range(5):
        assert not (await limiter.hit(Limit(k, 1, 60.0))).allowed
    assert (await limiter.hit(Limit(other, 1, 60.0))).allowed


async def test_cost_counts_several_units(limiter: Any) -> None:
    k = key()
    first = await limiter.hit(Limit(k, 10, 60.0, cost=7))
    assert first.allowed and first.remaining == 3
    refused = await limiter.hit(Limit(k, 10, 60.0, cost=4))
    assert not refused.allowed and refused.remaining == 3
    assert (await limiter.hit(Limit(k, 10, 60.0, cost=3))).allowed


async def test_a_cost_beyond_the_limit_is_always_refused(limiter: Any) -> None:
    d = await limiter.hit(Limit(key(), 5, 60.0, cost=6))
    assert not d.allowed and d.retry_after_s > 0


async def test_rules_are_charged_all_or_nothing(limiter: Any) -> None:
    wide, narrow = key(), key()
    assert (await limiter.hit(Limit(wide, 10, 60.0), Limit(narrow, 1, 60.0))).allowed
    verdict = await limiter.hit(Limit(wide, 10, 60.0), Limit(narrow, 1, 60.0))
    assert not verdict.allowed and verdict.limit == 1  # the rule that refused speaks
    # the refused request did not charge the wide rule: 9 left, not 8
    assert (await limiter.hit(Limit(wide, 10, 60.0))).remaining == 8


async def test_the_allowance_comes_back_as_time_passes(limiter: Any) -> None:
    k = key()
    assert (await limiter.hit(Limit(k, 2, 0.4))).allowed
    assert (await limiter.hit(Limit(k, 2, 0.4))).allowed
    assert not (await limiter.hit(Limit(k, 2, 0.4))).allowed

    async def passes() -> bool:
        return (await limiter.hit(Limit(k, 2, 0.4))).allowed

    await wait_until(passes, timeout=3, what="the allowance to come back")


async def test_concurrent_hits_never_exceed_the_limit(limiter: Any) -> None:
    k = key()
    results = await asyncio.gather(*(limiter.hit(Limit(k, 20, 60.0)) for _ in range(60)))
    assert sum(d.allowed for d in results) == 20


async def test_many_concurrent_hits_on_one_key_allow_exactly_the_limit(limiter: Any) -> None:
    # Redis charges concurrent hits in one script call: the result must be that of one call each,
    # in order — the limit exactly, and every count of what is left given once
    k = key()
    results = await asyncio.gather(*(limiter.hit(Limit(k, 100, 60.0)) for _ in range(300)))
    allowed = [d for d in results if d.allowed]
    assert len(allowed) == 100
    assert sorted(d.remaining for d in allowed) == list(range(100))
    assert all(d.remaining == 0 and d.retry_after_s > 0 for d in results if not d.allowed)
    assert not (await limiter.hit(Limit(k, 100, 60.0))).allowed


async def test_concurrent_hits_are_each_all_or_none_over_their_own_rules(limiter: Any) -> None:
    shared = key()
    spent = [key() for _ in range(10)]
    for k in spent:
        assert (await limiter.hit(Limit(k, 1, 60.0))).allowed
    fresh = [key() for _ in range(20)]
    # the hits refused by their own spent rule come first: had they charged the shared rule, no
    # fresh hit would pass
    results = await asyncio.gather(*(limiter.hit(Limit(shared, 10, 60.0), Limit(k, 1, 60.0)) for k in [*spent, *fresh]))
    assert [d.allowed for d in results[:10]] == [False] * 10
    assert [d.allowed for d in results[10:]] == [True] * 10 + [False] * 10
    assert all(d.limit == 10 for d in results[20:])  # the shared rule refused those
    # the fresh keys whose hit was refused were not charged either
    assert all([(await limiter.hit(Limit(k, 1, 60.0))).allowed for k in fresh[10:]])


async def test_failures_lock_with_exponential_backoff_and_a_success_clears(limiter: Any) -> None:
    b = Backoff(key(), free=2, base_s=10.0, max_s=35.0, forget_s=600.0)
    assert await limiter.fail(b) == 0
    assert await limiter.fail(b) == 0
    assert await limiter.locked_for(b.key) == 0
    assert await limiter.fail(b) == pytest.approx(10.0)
    assert 9.0 <= await limiter.locked_for(b.key) <= 10.0
    assert await limiter.fail(b) == pytest.approx(20.0)
    assert await limiter.fail(b) == pytest.approx(35.0)  # capped
    await limiter.clear(b.key)
    assert await limiter.locked_for(b.key) == 0
    assert await limiter.fail(b) == 0  # a fresh streak


async def test_a_lock_ends_by_itself(limiter: Any) -> None:
    b = Backoff(key(), free=0, base_s=0.3, max_s=1.0, forget_s=60.0)
    assert await limiter.fail(b) == pytest.approx(0.3)
    assert await limiter.locked_for(b.key) > 0

    async def unlocked() -> bool:
        return await limiter.locked_for(b.key) == 0

    await wait_until(unlocked, timeout=3, what="the lock to end")


@pytest.mark.redis
async def test_redis_charges_concurrent_hits_in_one_round_trip(redis_keyspace: Any) -> None:
    from chat4all.adapters.redis_limits import RedisRateLimiter

    limiter = RedisRateLimiter(redis_keyspace.client, key_prefix=redis_keyspace.prefix)
    script = limiter._hit
    calls: list[int] = []

    async def counted(*, keys: list[str], args: list[int]) -> Any:
        calls.append(args[0])  # the number of hits in the call
        return await script(keys=keys, args=args)

    limiter._hit = counted  # type: ignore[method-assign]
    results = await asyncio.gather(*(limiter.hit(Limit(key(), 5, 60.0)) for _ in range(50)))
    assert all(d.allowed and d.remaining == 4 for d in results)
    assert sum(calls) == 50
    assert len(calls) <= 2  # the first goes at once, the rest share the next call
