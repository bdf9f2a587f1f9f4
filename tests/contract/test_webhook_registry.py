"""WebhookRegistry contract (R8.5): the same behaviour on SQL (SQLite, PostgreSQL) and etcd."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chat4all.adapters.etcd import EtcdWebhookRegistry
from chat4all.adapters.sql.webhooks import SqlWebhookRegistry
from chat4all.domain.ids import new_id
from chat4all.domain.webhooks import Webhook, new_secret
from chat4all.ports import WebhookRegistry

from tests.fakes.webhooks import FakeWebhookRegistry

from .conftest import FAKE, _database, _etcd_metadata_store

T0 = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.fixture
async def registry(metadata_url: str) -> AsyncIterator[Any]:
    """Every WebhookRegistry adapter, next to the MetadataStore it shares a backend with, and the fake."""
    if metadata_url == FAKE:
        yield FakeWebhookRegistry()
    elif metadata_url.startswith("etcd://"):
        async with _etcd_metadata_store(metadata_url) as store:
            yield EtcdWebhookRegistry(store)
    else:
        async with _database(metadata_url) as db:
            yield SqlWebhookRegistry(db)


def webhook(owner: str, *, at: datetime = T0, events: tuple[str, ...] = ("*",), url: str = "https://example.com/hook") -> Webhook:
    return Webhook(webhook_id=new_id(), owner=owner, url=url, events=events, secret=new_secret(), created_at=at)


async def test_a_created_webhook_reads_back_unchanged_for_its_owner_only(registry: WebhookRegistry) -> None:
    hook = webhook("alice", events=("message.status", "file.completed"))
    await registry.create(hook)

    found = await registry.get("alice", hook.webhook_id)

    assert found == hook
    assert found is not None and found.created_at.tzinfo is not None and found.active
    assert await registry.get("bob", hook.webhook_id) is None
    assert await registry.get("alice", new_id()) is None


async def test_owned_by_lists_oldest_first_and_for_owners_groups_them(registry: WebhookRegistry) -> None:
    first = webhook("alice", at=T0)
    second = webhook("alice", at=T0 + timedelta(seconds=1), url="https://example.com/2")
    bobs = webhook("bob")
    for hook in (second, bobs, first):
        await registry.create(hook)

    assert await registry.owned_by("alice") == [first, second]
    assert await registry.owned_by("carol") == []
    assert await registry.for_owners(["alice", "bob", "carol", "alice"]) == {"alice": [first, second], "bob": [bobs]}
    assert await registry.for_owners([]) == {}


async def test_a_deleted_webhook_is_gone_and_only_its_owner_can_delete_it(registry: WebhookRegistry) -> None:
    hook = webhook("alice")
    await registry.create(hook)

    assert await registry.delete("bob", hook.webhook_id) is False
    assert await registry.get("alice", hook.webhook_id) == hook
    assert await registry.delete("alice", hook.webhook_id) is True
    assert await registry.delete("alice", hook.webhook_id) is False
    assert await registry.get("alice", hook.webhook_id) is None
    assert await registry.owned_by("alice") == []


async def test_disabling_records_when_and_why_once(registry: WebhookRegistry) -> None:
    hook = webhook("alice")
    await registry.create(hook)
    at = T0 + timedelta(hours=1)

    assert await registry.disable("alice", hook.webhook_id, reason="20 failed", at=at) is True
    assert await registry.disable("alice", hook.webhook_id, reason="again", at=at + timedelta(1)) is False

    found = await registry.get("alice", hook.webhook_id)
    assert found is not None and not found.active
    assert (found.disabled_at, found.disabled_reason) == (at, "20 failed")
    assert not found.wants("message.status")
    assert await registry.disable("alice", new_id(), reason="x", at=at) is False


async def test_disabling_a_deleted_webhook_does_not_bring_it_back(registry: WebhookRegistry) -> None:
    hook = webhook("alice")
    await registry.create(hook)
    await registry.delete("alice", hook.webhook_id)

    assert await registry.disable("alice", hook.webhook_id, reason="late", at=T0) is False
    assert await registry.owned_by("alice") == []


async def test_concurrent_disables_record_exactly_one_reason(registry: WebhookRegistry) -> None:
    hook = webhook("alice")
    await registry.create(hook)

    results = await asyncio.gather(
        *(registry.disable("alice", hook.webhook_id, reason=f"r{i}", at=T0) for i in range(5))
    )

    assert sorted(results) == [False] * 4 + [True]
    found = await registry.get("alice", hook.webhook_id)
    assert found is not None and found.disabled_reason == f"r{results.index(True)}"
