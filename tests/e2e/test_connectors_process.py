"""External deliveries survive a SIGKILL mid-retry, and operators replay what gave up
(R14.4, R14.5; embedded profile, a real `chat4all serve all`, the `chat4all` commands)."""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, persisted, wait_until
from tests.connector_helpers import chat4all, statuses, wait_statuses
from tests.e2e.processes import Process, embedded_process
from tests.fake_telegram import TOKEN, FakeTelegram, running_fake_telegram

pytestmark = pytest.mark.e2e

# retries after 0.5, 1, 2 and 4 s (no jitter, so the test knows when each attempt comes); a
# breaker that stays out of the way: this test is about the retry state
FAST = {
    "CHAT4ALL_CONNECTORS_RETRY_BASE_S": "0.5",
    "CHAT4ALL_CONNECTORS_RETRY_JITTER": "0",
    "CHAT4ALL_CONNECTORS_BREAKER_FAILURES": "100",
    "CHAT4ALL_CONNECTORS_POLL_INTERVAL_S": "0.05",
    "CHAT4ALL_CONNECTORS_REFRESH_INTERVAL_S": "0.2",
}


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    # identities are linked without proof here: the subject is the retry schedule, not the claim
    with embedded_process(tmp_path, env={**FAST, "CHAT4ALL_VERIFY_CHANNEL_IDENTITIES": "false"}) as p:
        yield p


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as tg:
        yield tg


async def test_a_router_killed_mid_retry_resumes_the_schedule_and_the_dlq_replays_once_healthy(
    process: Process, fake: FakeTelegram
) -> None:
    out = chat4all(process.data_dir, "connectors", "set", "telegram", "-o", f"token={TOKEN}", "-o", f"base_url={fake.base_url}")
    assert "telegram: enabled" in out
    listed = chat4all(process.data_dir, "connectors", "list")
    assert "telegram\tenabled\tplugin=telegram" in listed and TOKEN not in listed  # credentials are masked
    process.start()
    await process.ready()
    await wait_until(lambda: fake.count("getMe", 1), what="the connector to connect")
    fake.fail("sendMessage", status=502, description="Bad Gateway", times=1000)  # sending breaks
    async with Chat4AllClient(process.base_url) as alice, Chat4AllClient(process.base_url) as bob:
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.register(name, PASSWORD)
            await client.login(name, PASSWORD)
        await bob.set_channel("telegram", "4242")
        conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
        sent = await alice.send_text(conversation_id, "survive", channels=["internal", "telegram"])
        await persisted(alice, sent["message_id"])

        async def second_attempt_recorded() -> bool:
            entry = (await statuses(alice, sent["message_id"])).get(("bob", "telegram"), {})
            return (entry.get("error") or "").startswith("attempt 2 of 5 failed: telegram sendMessage: Bad Gateway")

        await wait_until(second_attempt_recorded, what="two failed attempts, recorded")
    process.kill(signal.SIGKILL)  # mid-retry: the third attempt is due 1 s after the second
    killed_at = time.monotonic()
    assert len(fake.to("sendMessage")) == 2
    assert "TEST-token" not in process.log.read_text()  # the bot token never reaches the logs

    process.start()
    await process.ready()
    async with Chat4AllClient(process.base_url) as alice:
        await alice.login("alice", PASSWORD)
        final = await wait_statuses(alice, sent["message_id"], {"telegram": "FAILED"}, timeout=30)
        # five attempts in all: the two before the kill count, the schedule went on where it was
        assert final[("bob", "telegram")]["error"] == "gave up after 5 attempts: telegram sendMessage: Bad Gateway"
        attempts = fake.to("sendMessage")
        assert len(attempts) == 5 and all(a.at > killed_at for a in attempts[2:])
        gaps = [round(b.at - a.at, 1) for a, b in itertools.pairwise(attempts[2:])]
        assert gaps[0] >= 1.9 and gaps[1] >= 3.9  # 2 s, then 4 s: attempts 3→4→5 of the schedule

        dead = chat4all(process.data_dir, "dlq", "list")
        assert f"telegram\tbob\t{sent['message_id']}\tattempts=5\tnow=FAILED" in dead
        assert "1 dead letter(s), 1 still FAILED (replayable)" in dead
        fake.script.clear()  # healthy again
        assert "1 delivery(ies) would be replayed" in chat4all(process.data_dir, "dlq", "replay", "--dry-run")
        assert "1 delivery(ies) replayed" in chat4all(process.data_dir, "dlq", "replay", "--channel", "telegram")
        await wait_statuses(alice, sent["message_id"], {"telegram": "DELIVERED"}, timeout=15)
        assert len(fake.to("sendMessage")) == 6
        status = await alice.message_status(sent["message_id"])
        assert [(h["status"], h["detail"]) for h in status["history"] if h["channel"] == "telegram"] == [
            ("SENT", None),
            ("FAILED", "gave up after 5 attempts: telegram sendMessage: Bad Gateway"),
            ("SENT", "replayed from the dead-letter queue"),
            ("DELIVERED", None),
        ]
        assert "0 delivery(ies) replayed" in chat4all(process.data_dir, "dlq", "replay")
        assert "1 dead letter(s), 0 still FAILED" in chat4all(process.data_dir, "dlq", "list")
