"""Webhooks in the production profile: PostgreSQL outbox, Kafka status events, etcd registrations,
and a separate `chat4all serve webhooks` process (R6.5, R8.5)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.test_production import Stack, stack  # noqa: F401 - the fixture, reused
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.production]

WEBHOOK_ENV = {
    # production refuses loopback by default; the receiver of this test lives there
    "CHAT4ALL_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
    "CHAT4ALL_WEBHOOKS_RETRY_BASE_S": "0.05",
    "CHAT4ALL_WEBHOOKS_POLL_INTERVAL_S": "0.05",
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def _users(base_url: str) -> tuple[Chat4AllClient, Chat4AllClient, str]:
    alice, bob = Chat4AllClient(base_url), Chat4AllClient(base_url)
    for client, name in ((alice, "alice"), (bob, "bob")):
        await client.register(name, PASSWORD)
        await client.login(name, PASSWORD)
    conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    return alice, bob, conversation_id


async def test_sent_delivered_read_arrive_signed_and_in_order_from_the_webhook_process(
    stack: Stack, receiver: Receiver  # noqa: F811
) -> None:
    stack.env.update(WEBHOOK_ENV)
    api = stack.process("api", "api-1")
    stack.process("router", "router-1")
    stack.process("webhooks", "webhooks-1")
    await stack.start_all()
    alice, bob, conversation_id = await _users(api.base_url)
    hook = await alice.request("POST", "/v1/webhooks", json={"url": receiver.url()}, expect=(201,))
    listed = (await alice.request("GET", "/v1/webhooks"))["items"]
    assert [w["webhook_id"] for w in listed] == [hook["webhook_id"]]  # kept in etcd

    async with bob.websocket() as socket:
        await socket.ping()
        assert (await socket.receive())["type"] == "pong"
        sent = await alice.send_text(conversation_id, "watched")
        frame = await socket.receive(timeout=15)
        assert frame["message"]["message_id"] == sent["message_id"]
        await socket.ack([sent["message_id"]])
        await socket.read([sent["message_id"]])
        calls = await wait_until(lambda: receiver.count(3), timeout=30, what="three callbacks")

    assert [c.json["data"]["status"] for c in calls] == ["SENT", "DELIVERED", "READ"]
    assert all(c.verifies(hook["secret"]) and c.json["data"]["message_id"] == sent["message_id"] for c in calls)
    assert len({c.event_id for c in calls}) == 3
    for c in (alice, bob):
        await c.close()


async def test_the_webhook_process_killed_mid_delivery_redelivers_on_restart(
    stack: Stack, receiver: Receiver  # noqa: F811
) -> None:
    stack.env.update(WEBHOOK_ENV)
    api = stack.process("api", "api-1")
    stack.process("router", "router-1")
    worker = stack.process("webhooks", "webhooks-1")
    await stack.start_all()
    alice, bob, conversation_id = await _users(api.base_url)
    hook = await alice.request("POST", "/v1/webhooks", json={"url": receiver.url()}, expect=(201,))

    receiver.hold = asyncio.Event()
    sent = await alice.send_text(conversation_id, "in flight")
    await wait_until(lambda: receiver.count(1), timeout=30, what="the SENT callback in flight")
    await bob.ack([sent["message_id"]], status="read")

    worker.kill(signal.SIGKILL)
    receiver.hold.set()
    receiver.hold = None
    worker.start()  # same node id: it releases what it held at once
    await worker.ready()

    calls = await wait_until(lambda: receiver.count(4), timeout=30, what="the callbacks after the restart")
    assert [c.json["data"]["status"] for c in calls] == ["SENT", "SENT", "DELIVERED", "READ"]
    assert calls[0].event_id == calls[1].event_id
    assert all(c.verifies(hook["secret"]) for c in calls)
    for c in (alice, bob):
        await c.close()
