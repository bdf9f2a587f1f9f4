"""AcceptedIds contract: the database (embedded) and Redis (production)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat4all.adapters.sql.accepted_ids import SqlAcceptedIds
from tests.fakes.messaging import FakeAcceptedIds

from .conftest import _database, _database_url, _redis_keyspace


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
        pytest.param("fake", id="fake"),
    ]
)
def accepted_ids_url(request: pytest.FixtureRequest, tmp_path) -> str:
    # resolved in a sync fixture, outside the test's event loop (the session set-up runs its own)
    if request.param in ("redis", "fake"):
        return request.param
    return _database_url(request.param, tmp_path, request)


@pytest.fixture
async def accepted_ids(accepted_ids_url: str) -> AsyncIterator[Any]:
    if accepted_ids_url == "fake":
        yield FakeAcceptedIds()
        return
    if accepted_ids_url == "redis":
        from chat4all.adapters.redis_limits import RedisAcceptedIds

        async with _redis_keyspace() as space:
            yield RedisAcceptedIds(space.client, key_prefix=space.prefix, ttl_s=60)
        return
    async with _database(accepted_ids_url) as db:
        yield SqlAcceptedIds(db, ttl_s=60)


CONV = "aaaaaaaa-0000-4000-8000-000000000001"


async def test_the_first_claim_takes_the_id_and_later_ones_learn_who_holds_it(accepted_ids: Any) -> None:
    mid = str(uuid.uuid4())
    assert await accepted_ids.claim(mid, sender="alice", conversation_id=CONV) is None
    assert await accepted_ids.claim(mid, sender="alice", conversation_id=CONV) == ("alice", CONV)
    assert await accepted_ids.claim(mid, sender="mallory", conversation_id="x") == ("alice", CONV)


async def test_concurrent_claims_have_exactly_one_winner(accepted_ids: Any) -> None:
    mid = str(uuid.uuid4())
    results = await asyncio.gather(*(accepted_ids.claim(mid, sender=f"u{i}", conversation_id=CONV) for i in range(20)))
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert {r for r in results if r is not None} == {(f"u{winners[0]}", CONV)}


async def test_a_released_id_can_be_taken_again(accepted_ids: Any) -> None:
    mid = str(uuid.uuid4())
    assert await accepted_ids.claim(mid, sender="alice", conversation_id=CONV) is None
    await accepted_ids.release(mid)
    assert await accepted_ids.claim(mid, sender="alice", conversation_id=CONV) is None


async def test_ids_are_independent(accepted_ids: Any) -> None:
    assert await accepted_ids.claim(str(uuid.uuid4()), sender="alice", conversation_id=CONV) is None
    assert await accepted_ids.claim(str(uuid.uuid4()), sender="alice", conversation_id=CONV) is None
