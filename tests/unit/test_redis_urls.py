"""The presence/push URL forms: plain Redis and Redis behind Sentinel (the HA profile)."""

from __future__ import annotations

import pytest
from redis.asyncio.sentinel import SentinelConnectionPool

from chat4all.adapters.redis import connect, parse_sentinel_url


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_db() -> None:
    assert parse_sentinel_url("redis+sentinel://127.0.0.1:16479,127.0.0.1:16480,h3:26379/chat4all/2") == (
        [("127.0.0.1", 16479), ("127.0.0.1", 16480), ("h3", 26379)], "chat4all", 2, None,
    )
    assert parse_sentinel_url("redis+sentinel://:s%40cret@h:1/m") == ([("h", 1)], "m", 0, "s@cret")


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://h:1", "redis+sentinel://h:1/", "redis+sentinel://h/m", "redis+sentinel:///m", "redis+sentinel://h:1/m/x"],
)
def test_a_sentinel_url_without_addresses_or_master_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_sentinel_url(url)


async def test_a_sentinel_url_gives_a_client_that_follows_the_master() -> None:
    client = connect("redis+sentinel://127.0.0.1:1,127.0.0.1:2/chat4all/3")
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "chat4all" and pool.connection_kwargs["db"] == 3
    finally:
        await client.aclose()
