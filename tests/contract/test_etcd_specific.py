"""What only the etcd MetadataStore does: leases, races settled by transactions, endpoint failover.

The behaviour shared with every adapter lives in ``test_metadata_store.py``.
"""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import timedelta
from typing import Any

import httpx
import pytest

from chat4all.adapters.etcd import EtcdMetadataStore
from chat4all.domain.errors import Conflict, Unavailable, UsernameTaken
from chat4all.domain.ids import utcnow
from chat4all.domain.models import User

from .conftest import ETCD_DEFAULT_URL, ETCD_URL_ENV

pytestmark = pytest.mark.etcd

ETCD_URL = os.environ.get(ETCD_URL_ENV, ETCD_DEFAULT_URL)
LIVE_HOSTS = ETCD_URL.partition("://")[2]


@pytest.fixture
def store(etcd_metadata_store: EtcdMetadataStore) -> EtcdMetadataStore:
    return etcd_metadata_store


async def _lease_of(key: str) -> tuple[str, int]:
    """(lease id, seconds left) of a key, read straight from etcd's JSON gateway."""

    async def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.post(f"http://{LIVE_HOSTS.split(',')[0]}{path}", json=body)
            response.raise_for_status()
            return response.json()

    kvs = (await call("/v3/kv/range", {"key": base64.b64encode(key.encode()).decode()}))["kvs"]
    lease = str(kvs[0].get("lease", "0"))
    return lease, int((await call("/v3/lease/timetolive", {"ID": lease})).get("TTL", -1))


async def test_refresh_tokens_live_on_a_lease_that_spending_keeps(store: EtcdMetadataStore) -> None:
    await store.add_refresh_token(
        token_id="t1", family_id="f1", username="alice", expires_at=utcnow() + timedelta(hours=1)
    )
    lease, ttl = await _lease_of(f"{store.prefix}/refresh/t1")
    assert lease != "0" and 3500 < ttl <= 3600

    assert (await store.spend_refresh_token("t1")).outcome == "ok"
    assert (await _lease_of(f"{store.prefix}/refresh/t1"))[0] == lease


async def test_a_revoked_family_marker_expires_with_the_refresh_lifetime(store: EtcdMetadataStore) -> None:
    short = EtcdMetadataStore(ETCD_URL, prefix=store.prefix, refresh_ttl_s=600)
    await short.start()
    try:
        await short.revoke_refresh_family("f1")
    finally:
        await short.close()
    _, ttl = await _lease_of(f"{store.prefix}/refresh-family-revoked/f1")
    assert 590 < ttl <= 600


async def test_two_concurrent_registrations_of_one_name_let_exactly_one_win(store: EtcdMetadataStore) -> None:
    users = [User(username="same", password_hash=f"hash-{i}", created_at=utcnow()) for i in range(8)]
    results = await asyncio.gather(*(store.create_user(u) for u in users), return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, UsernameTaken) for r in results if r is not None)
    winner = users[results.index(None)]
    assert await store.get_user("same") == winner


async def test_concurrent_claims_of_one_channel_identity_let_exactly_one_user_hold_it(
    store: EtcdMetadataStore,
) -> None:
    names = [f"user-{i}" for i in range(6)]
    claims = (store.set_channel(n, "telegram", "42") for n in names)
    results = await asyncio.gather(*claims, return_exceptions=True)
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, Conflict) for r in results if r is not None)
    holder = names[results.index(None)]
    assert await store.find_user_by_channel("telegram", "42") == holder
    assert [n for n in names if await store.get_channels(n)] == [holder]


async def test_an_unreachable_endpoint_raises_unavailable() -> None:
    store = EtcdMetadataStore("etcd://127.0.0.1:1", timeout_s=1)
    await store.start()
    try:
        with pytest.raises(Unavailable):
            await store.ping()
        with pytest.raises(Unavailable):
            await store.get_user("alice")
    finally:
        await store.close()


async def test_a_multi_host_url_falls_through_to_the_live_host(store: EtcdMetadataStore) -> None:
    fallback = EtcdMetadataStore(f"etcd://127.0.0.1:1,{LIVE_HOSTS}", prefix=store.prefix, timeout_s=1)
    await fallback.start()
    try:
        await fallback.ping()
        await fallback.create_user(User(username="alice", password_hash="h", created_at=utcnow()))
        assert await store.existing_usernames(["alice"]) == {"alice"}
    finally:
        await fallback.close()


def test_a_url_that_is_not_etcd_is_refused() -> None:
    with pytest.raises(ValueError):
        EtcdMetadataStore("http://127.0.0.1:2379")
