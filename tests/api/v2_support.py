"""Helpers of the API v2 tests: the two profiles, and waits on what the router stores.

``profiled_settings`` runs a test on the embedded profile and on the production one (its own
PostgreSQL database, Kafka namespace, Redis and etcd from scripts/services.sh); without those
servers the production run skips locally and fails in CI (``server_missing``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chat4all.client import Chat4AllClient
from chat4all.config import Settings
from tests.conftest import wait_until
from tests.ops.production import production_env

_FIELDS = {
    "CHAT4ALL_DATABASE_URL": "database_url",
    "CHAT4ALL_EVENT_LOG_URL": "event_log_url",
    "CHAT4ALL_PRESENCE_URL": "presence_url",
    "CHAT4ALL_METADATA_URL": "metadata_url",
    "CHAT4ALL_NAMESPACE": "namespace",
    "CHAT4ALL_JWT_SECRET": "jwt_secret",
}
# the receiver of the webhook tests listens on loopback, which no profile allows unless listed
_TEST_SETTINGS = {
    "webhooks_retry_base_s": 0.05,
    "webhooks_poll_interval_s": 0.05,
    "webhooks_allowed_networks": "127.0.0.0/8,::1/128",
}


async def profiled(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Settings]:
    base = settings.model_copy(update=_TEST_SETTINGS)
    if request.param == "embedded":
        yield base
        return
    async with production_env("v2") as env:
        update: dict[str, Any] = {field: env[name] for name, field in _FIELDS.items()}
        yield base.model_copy(update={**update, "router_session_timeout_ms": 6000})


async def timeline(client: Chat4AllClient, conversation_id: str, n: int, **params: Any) -> list[dict[str, Any]]:
    """The conversation's latest messages once there are at least ``n`` (the router stores them)."""

    async def fetch() -> list[dict[str, Any]] | None:
        items = (await client.v2_messages(conversation_id, limit=200, **params))["items"]
        return items if len(items) >= n else None

    return await wait_until(fetch, timeout=20, what=f"{n} messages in the timeline")


def system_events(items: list[dict[str, Any]]) -> list[str]:
    return [m["payload"]["event"] for m in items if m["kind"] == "system"]


async def frames_until(socket: Any, predicate: Any, *, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Every frame the socket receives up to and including the first that ``predicate`` accepts."""
    seen: list[dict[str, Any]] = []
    while True:
        frame = await socket.receive(timeout=timeout)
        seen.append(frame)
        if predicate(frame):
            return seen


def is_message(text_or_event: str):  # type: ignore[no-untyped-def]
    """A predicate: a message frame whose text (or system event) is this."""

    def check(frame: dict[str, Any]) -> bool:
        if frame.get("type") != "message":
            return False
        payload = frame["message"]["payload"]
        return payload.get("text") == text_or_event or payload.get("event") == text_or_event

    return check
