"""Helpers for tests of external channels: configure connectors, read per-channel statuses."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from chat4all.adapters.sql.connector_configs import SqlConnectorConfigStore
from chat4all.client import ApiError, Chat4AllClient
from chat4all.connectors.simulated import SIGNATURE_HEADER, sign
from chat4all.domain.connectors import ConnectorConfig, ConnectorLimits
from chat4all.domain.ids import utcnow
from tests.conftest import RunningServer, wait_until
from tests.fake_telegram import TOKEN, FakeTelegram, update

WEBHOOK_SECRET = "telegram-webhook-secret"
# the simulated channels, quick: receipts 50 ms after the send, read 50 ms later
QUICK = {"delivery_receipt_delay_s": 0.05, "read_receipt_delay_s": 0.05, "latency_ms": 5}


class Channels:
    """Connector configuration of a running (in-process, embedded) server."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.hub = server.runtime.components["connectors"]
        self.store = SqlConnectorConfigStore(server.runtime.database)

    async def set(
        self,
        channel: str,
        *,
        enabled: bool = True,
        plugin: str | None = None,
        refresh: bool = True,
        limits: ConnectorLimits | None = None,
        **options: Any,
    ) -> ConnectorConfig:
        """Merges the options into the channel's configuration; the hub picks it up at once
        (``refresh=False``: on its own schedule, as a running router would)."""
        current = await self.store.get_config(channel)
        merged = {**(current.options if current else {}), **options}
        config = ConnectorConfig(
            channel=channel, enabled=enabled, plugin=plugin, options=merged, limits=limits or ConnectorLimits(),
            updated_at=utcnow(),
        )
        await self.store.put_config(config)
        if refresh:
            await self.hub.refresh()
        return config

    async def telegram(self, fake: FakeTelegram, **options: Any) -> ConnectorConfig:
        return await self.set("telegram", token=TOKEN, base_url=fake.base_url, webhook_secret=WEBHOOK_SECRET, **options)

    async def secret(self, channel: str) -> str:
        config = await self.store.get_config(channel)
        assert config is not None
        return str(config.options["secret"])

    def live(self, channel: str) -> Any:
        return self.hub.get(channel)

    async def link(self, client: Chat4AllClient, channel: str, external_id: str) -> dict[str, Any]:
        """Claims the identity for ``client``'s user and proves it, as its owner would."""
        secret = None if channel == "telegram" else await self.secret(channel)
        return await link_identity(client, self.server.base_url, channel, external_id, secret=secret)


async def statuses(client: Chat4AllClient, message_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(username, channel) → the recipient entry of the status endpoint."""
    status = await client.message_status(message_id)
    return {(r["username"], r["channel"]): r for r in status["recipients"]}


async def wait_statuses(
    client: Chat4AllClient, message_id: str, expected: dict[str, str], *, username: str = "bob", timeout: float = 15
) -> dict[tuple[str, str], dict[str, Any]]:
    """Until each channel of ``expected`` has its status for ``username``."""

    async def reached() -> dict | None:
        try:
            now = await statuses(client, message_id)
        except ApiError as exc:
            if exc.status == 404:  # not persisted yet
                return None
            raise
        ok = all(now.get((username, c), {}).get("status") == s for c, s in expected.items())
        return now if ok else None

    return await wait_until(reached, timeout=timeout, what=f"{message_id} to reach {expected}")


async def history(client: Chat4AllClient, message_id: str, channel: str, username: str = "bob") -> list[str]:
    status = await client.message_status(message_id)
    return [h["status"] for h in status["history"] if h["channel"] == channel and h["username"] == username]


async def link_identity(
    client: Chat4AllClient, base_url: str, channel: str, external_id: str, *, secret: str | None = None
) -> dict[str, Any]:
    """Claims the identity for ``client``'s user and, as its owner would, sends the code from that
    identity through the channel's provider: Telegram (the tests' bot secret) or a simulated
    channel (signed with ``secret``). The identity is linked when this returns."""
    claim = await client.set_channel(channel, external_id)
    if claim["status"] == "pending":
        if channel == "telegram":
            answer = await telegram_post(base_url, update(claim["external_id"], f"/start {claim['code']}"))
        else:
            assert secret is not None, f"the {channel} provider's secret is needed to prove an identity"
            message = {"type": "message", "from": claim["external_id"], "text": claim["code"], "id": f"claim-{claim['code']}"}
            answer = await simulated_post(base_url, channel, secret, message)
        assert answer.status_code == 200, answer.text
        assert (await client.me())["channels"].get(channel) == claim["external_id"], "the code did not link it"
    return claim


async def telegram_post(base_url: str, body: dict[str, Any]) -> httpx.Response:
    """What Telegram POSTs to the platform's bot webhook (the tests' bot secret)."""
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{base_url}/v1/connectors/telegram/webhook",
            json=body,
            headers={"x-telegram-bot-api-secret-token": WEBHOOK_SECRET},
        )


async def simulated_post(base_url: str, channel: str, secret: str, body: dict[str, Any]) -> httpx.Response:
    """What a simulated provider POSTs to the platform, signed."""
    raw = orjson.dumps(body)
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{base_url}/v1/connectors/{channel}/webhook", content=raw, headers={SIGNATURE_HEADER: sign(secret, raw)}
        )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def upload(client: Chat4AllClient, data: bytes, name: str, content_type: str = "application/pdf") -> str:
    """A one-part upload, completed; the file_id."""
    ticket = await client.initiate_upload(name, len(data), content_type=content_type)
    assert len(ticket["parts"]) == 1
    async with httpx.AsyncClient() as plain:
        assert (await plain.put(ticket["parts"][0]["url"], content=data)).status_code == 200
    await client.complete_upload(ticket["file_id"], sha256(data))
    return ticket["file_id"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def chat4all(data_dir: Path | None, *args: str, env: dict[str, str] | None = None) -> str:
    """Runs a `chat4all` command the way an operator would (in a process of its own); its output."""
    done = subprocess.run(
        [sys.executable, "-m", "chat4all", *args],
        env={**os.environ, **({"CHAT4ALL_DATA_DIR": str(data_dir)} if data_dir else {}), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
