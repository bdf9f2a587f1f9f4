"""Webhook delivery survives a SIGKILL mid-delivery (embedded profile, a real `chat4all serve all`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.processes import Process, embedded_process
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = pytest.mark.e2e

FAST = {
    "CHAT4ALL_WEBHOOKS_RETRY_BASE_S": "0.05",
    "CHAT4ALL_WEBHOOKS_POLL_INTERVAL_S": "0.05",
    "CHAT4ALL_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",  # the receiver is on loopback
}


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    with embedded_process(tmp_path, env=FAST) as p:
        yield p


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def test_a_worker_killed_mid_delivery_redelivers_after_restart_and_loses_nothing(
    process: Process, receiver: Receiver
) -> None:
    process.start()
    await process.ready()
    async with Chat4AllClient(process.base_url) as alice, Chat4AllClient(process.base_url) as bob:
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.register(name, PASSWORD)
            await client.login(name, PASSWORD)
        conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
        hook = await alice.request("POST", "/v1/webhooks", json={"url": receiver.url()}, expect=(201,))

        receiver.hold = asyncio.Event()  # the endpoint takes the SENT callback and does not answer yet
        sent = await alice.send_text(conversation_id, "survive")
        await wait_until(lambda: receiver.count(1), what="the SENT callback to be in flight")
        await bob.ack([sent["message_id"]], status="read")  # DELIVERED and READ wait behind SENT

        async def read() -> bool:
            return (await alice.message_status(sent["message_id"]))["status"] == "READ"

        await wait_until(read, what="the READ receipt")

    process.kill(signal.SIGKILL)  # mid-delivery: the SENT attempt was never answered nor recorded
    receiver.hold.set()
    receiver.hold = None
    process.start()
    await process.ready()

    calls = await wait_until(lambda: receiver.count(4), timeout=20, what="the callbacks after the restart")
    statuses = [c.json["data"]["status"] for c in calls]
    assert statuses == ["SENT", "SENT", "DELIVERED", "READ"]
    assert calls[0].event_id == calls[1].event_id  # the same event, delivered again
    assert len({c.event_id for c in calls}) == 3
    assert all(c.verifies(hook["secret"]) and c.json["data"]["message_id"] == sent["message_id"] for c in calls)
