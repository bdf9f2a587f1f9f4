"""External channels in the production profile: PostgreSQL, Kafka, Redis and etcd from
scripts/services.sh, an API process and two routers; connector configuration in etcd, dead
letters on Kafka, operators' commands against them (R9, R11.5, R14)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.connector_helpers import (
    WEBHOOK_SECRET,
    link_identity,
    chat4all,
    history,
    percentile,
    statuses,
    wait_statuses,
)
from tests.e2e.test_production import Stack, stack  # noqa: F401 (the fixture)
from tests.fake_telegram import TOKEN, FakeTelegram, running_fake_telegram

pytestmark = [pytest.mark.e2e, pytest.mark.production]

FAST = {
    "CHAT4ALL_CONNECTORS_RETRY_BASE_S": "0.1",
    "CHAT4ALL_CONNECTORS_REFRESH_INTERVAL_S": "0.5",
    "CHAT4ALL_CONNECTORS_POLL_INTERVAL_S": "0.05",
    "CHAT4ALL_CONNECTORS_BREAKER_FAILURES": "3",
    "CHAT4ALL_CONNECTORS_BREAKER_OPEN_S": "0.3",
}
SECRET = "simulated-provider-secret"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as tg:
        yield tg


async def config_in_use(base_url: str, channel: str, written_after: float) -> bool:
    """For ``wait_until``: the process runs a configuration of ``channel`` written after then."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{base_url}/metrics")).text
    found = re.search(rf'chat4all_connector_config_timestamp_seconds{{channel="{channel}"}} (\S+)', text)
    return found is not None and float(found.group(1)) >= written_after


@pytest.mark.timeout(300)
async def test_all_reaches_every_channel_a_whatsapp_outage_goes_to_the_dlq_and_a_replay_delivers_it(
    stack: Stack, fake: FakeTelegram  # noqa: F811
) -> None:
    api = stack.process("api", "api-1")
    routers = [stack.process("router", "router-1"), stack.process("router", "router-2")]
    for p in (api, *routers):
        p.env.update(FAST)

    def simulated(channel: str, **options: str) -> list[str]:
        receipts_to = f"{api.base_url}/v1/connectors/{channel}/webhook"
        pairs = {"secret": SECRET, "webhook_url": receipts_to, "delivery_receipt_delay_s": "0.05",
                 "read_receipt_delay_s": "0.05", **options}
        return ["connectors", "set", channel, *[a for k, v in pairs.items() for a in ("-o", f"{k}={v}")]]

    # configuration goes to etcd before anything runs, the way an operator sets up a deployment
    chat4all(
        None, "connectors", "set", "telegram", "-o", f"token={TOKEN}", "-o", f"base_url={fake.base_url}",
        "-o", f"webhook_secret={WEBHOOK_SECRET}", env=stack.env,
    )
    chat4all(None, *simulated("whatsapp", transient_failure_rate="1.0"), env=stack.env)
    chat4all(None, *simulated("instagram"), env=stack.env)
    await stack.start_all()

    async with Chat4AllClient(api.base_url) as alice, Chat4AllClient(api.base_url) as bob:
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.register(name, PASSWORD)
            await client.login(name, PASSWORD)
        for channel, identity in (("telegram", "4242"), ("whatsapp", "+5511999990000"), ("instagram", "bob.insta")):
            await link_identity(bob, api.base_url, channel, identity, secret=SECRET)  # proven through the provider
        conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]

        loop = asyncio.get_running_loop()
        sent, internal = [], []
        async with bob.websocket() as socket:
            for i in range(5):
                started = loop.time()
                sent.append(await alice.send_text(conversation_id, f"m{i}", channels=["all"]))
                frame = await socket.receive(timeout=15)
                assert frame["type"] == "message" and frame["message"]["message_id"] == sent[-1]["message_id"]
                internal.append(loop.time() - started)
        ids = [s["message_id"] for s in sent]
        print(f"\ninternal delivery during the whatsapp outage (production): p50 {percentile(internal, 50) * 1000:.0f} ms, "
              f"max {max(internal) * 1000:.0f} ms")
        assert max(internal) < 1.0

        for message_id in ids:
            final = await wait_statuses(
                alice, message_id, {"telegram": "DELIVERED", "instagram": "READ", "whatsapp": "FAILED"}, timeout=60
            )
            assert sorted(c for _, c in final) == ["instagram", "internal", "telegram", "whatsapp"]
            assert final[("bob", "whatsapp")]["error"].startswith("gave up after 5 attempts: ")
            assert await history(alice, message_id, "instagram") == ["SENT", "DELIVERED", "READ"]
        # two routers, each message sent to Telegram exactly once, in order; a token check per process
        assert fake.texts() == [f"alice: m{i}" for i in range(5)]
        assert [c.method for c in fake.calls].count("getMe") == 3
        assert {c.fields["chat_id"] for c in fake.to("sendMessage")} == {"4242"}

        dead = chat4all(None, "dlq", "list", "--channel", "whatsapp", env=stack.env)
        assert all(f"whatsapp\tbob\t{m}\tattempts=5\tnow=FAILED" in dead for m in ids)
        assert "5 dead letter(s), 5 still FAILED (replayable)" in dead

        # whatsapp recovers: the routers pick the change up from etcd, then the operator replays
        changed_at = time.time() - 1  # etcd and this machine share a clock
        chat4all(None, "connectors", "set", "whatsapp", "-o", "transient_failure_rate=0", env=stack.env)
        for router in routers:
            await wait_until(lambda r=router: config_in_use(r.base_url, "whatsapp", changed_at), what="the new configuration")
        replayed = chat4all(None, "dlq", "replay", "--channel", "whatsapp", env=stack.env)
        assert "5 delivery(ies) replayed" in replayed
        for message_id in ids:
            await wait_statuses(alice, message_id, {"whatsapp": "READ"}, timeout=30)
        assert await history(alice, ids[0], "whatsapp") == ["SENT", "FAILED", "SENT", "DELIVERED", "READ"]
        status = await statuses(alice, ids[-1])
        assert status[("bob", "whatsapp")]["error"] is None
        assert "0 still FAILED" in chat4all(None, "dlq", "list", "--channel", "whatsapp", env=stack.env)
