"""External channels over the real API, embedded profile (R4.3–4.4, R9, R11.5, R14): Telegram
against a fake Bot API server, WhatsApp / Instagram / Messenger simulated."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from chat4all.client import ApiError, Chat4AllClient, Socket
from chat4all.config import Settings
from chat4all.connectors.resilience import BreakerState
from chat4all.domain.connectors import ConnectorLimits
from tests.conftest import RunningServer, persisted, wait_until
from tests.connector_helpers import (
    QUICK,
    WEBHOOK_SECRET,
    Channels,
    history,
    percentile,
    simulated_post,
    statuses,
    upload,
    wait_statuses,
)
from tests.fake_telegram import FakeTelegram, running_fake_telegram, update

CHAT = "4242"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The suite's server, with a retry schedule and breaker quick enough for tests
    (50, 100, 200, 400 ms; the breaker opens after 3 failures, for 200 ms)."""
    return Settings(
        data_dir=tmp_path / "data",
        bcrypt_rounds=4,
        access_log=False,
        node_id="test-node",
        router_poll_interval_s=0.05,
        connectors_refresh_interval_s=0.1,
        connectors_poll_interval_s=0.02,
        connectors_retry_base_s=0.05,
        connectors_breaker_failures=3,
        connectors_breaker_open_s=0.2,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as tg:
        yield tg


@pytest.fixture
async def channels(server: RunningServer, fake: FakeTelegram) -> Channels:
    c = Channels(server)
    await c.telegram(fake)
    for channel in ("whatsapp", "instagram", "messenger"):
        await c.set(channel, **QUICK)
    return c


@pytest.fixture
async def pair(make_user, channels: Channels):
    """alice, and bob who is on telegram, whatsapp and instagram."""
    alice = await make_user("alice")
    bob = await make_user("bob")
    await channels.link(bob, "telegram", CHAT)
    await channels.link(bob, "whatsapp", "+5511999990000")
    await channels.link(bob, "instagram", "bob.insta")
    conversation = await alice.create_conversation("private", ["bob"])
    return alice, bob, conversation["conversation_id"]


async def next_message(socket: Socket, timeout: float = 10) -> dict:
    while True:
        frame = await socket.receive(timeout=timeout)
        if frame["type"] == "message":
            return frame["message"]


# reaching people on their channels ------------------------------------------------------------


async def test_all_reaches_every_mapped_channel_once_with_statuses_moving_forward_per_channel(
    pair, fake: FakeTelegram, channels: Channels
) -> None:
    alice, bob, conversation_id = pair
    async with bob.websocket() as socket:
        sent = await alice.send_text(conversation_id, "hello everywhere", channels=["all"])
        assert (await next_message(socket))["message_id"] == sent["message_id"]
    final = await wait_statuses(
        alice, sent["message_id"], {"telegram": "DELIVERED", "whatsapp": "READ", "instagram": "READ"}
    )
    # one delivery per channel, internal included; messenger is not mapped, so not used
    assert sorted(channel for _, channel in final) == ["instagram", "internal", "telegram", "whatsapp"]
    assert all(r["error"] is None for r in final.values())
    assert await history(alice, sent["message_id"], "telegram") == ["SENT", "DELIVERED"]
    assert await history(alice, sent["message_id"], "whatsapp") == ["SENT", "DELIVERED", "READ"]
    assert await history(alice, sent["message_id"], "instagram") == ["SENT", "DELIVERED", "READ"]
    # the Bot API saw exactly: the token check, then one sendMessage to bob's chat
    assert [(c.method, c.fields) for c in fake.calls] == [
        ("getMe", {}),
        ("sendMessage", {"chat_id": CHAT, "text": "alice: hello everywhere"}),
    ]
    for channel, to in (("whatsapp", "+5511999990000"), ("instagram", "bob.insta")):
        [handed] = channels.live(channel).connector.sent
        assert (handed.message_id, handed.external_id, handed.text) == (sent["message_id"], to, "hello everywhere")


async def test_a_conversation_that_reached_bob_on_whatsapp_continues_on_instagram(pair, channels: Channels, server) -> None:
    """R14.3: each message on the channel chosen for it, each with its own receipts; bob answers
    from WhatsApp and it lands in the same conversation."""
    alice, _, conversation_id = pair
    first = await alice.send_text(conversation_id, "on whatsapp", channels=["whatsapp"])
    await wait_statuses(alice, first["message_id"], {"whatsapp": "READ"})
    second = await alice.send_text(conversation_id, "now on instagram", channels=["instagram"])
    await wait_statuses(alice, second["message_id"], {"instagram": "READ"})
    assert await history(alice, first["message_id"], "whatsapp") == ["SENT", "DELIVERED", "READ"]
    assert await history(alice, second["message_id"], "instagram") == ["SENT", "DELIVERED", "READ"]
    assert set(await statuses(alice, second["message_id"])) == {("bob", "instagram")}

    reply = await simulated_post(
        server.base_url, "whatsapp", await channels.secret("whatsapp"),
        {"type": "message", "from": "+5511999990000", "id": "wamid.1", "text": "got it on whatsapp"},
    )
    assert reply.status_code == 200 and reply.json() == {"ok": True, "accepted": 1, "ignored": 0}

    async def answered() -> dict | None:
        items = (await alice.conversation_messages(conversation_id))["items"]
        return items[-1] if items and items[-1]["from"] == "bob" else None

    message = await wait_until(answered, what="bob's answer from whatsapp")
    assert message["payload"] == {"type": "text", "text": "got it on whatsapp"}
    assert message["metadata"] == {"via": "whatsapp"} and message["sequence_number"] == 3


async def test_messages_to_a_recipient_on_a_channel_go_out_in_order_even_across_retries(
    pair, fake: FakeTelegram
) -> None:
    alice, _, conversation_id = pair
    fake.fail("sendMessage", status=502, times=2)  # the first message needs three attempts
    sent = [await alice.send_text(conversation_id, f"m{i}", channels=["telegram"]) for i in range(8)]
    await wait_statuses(alice, sent[-1]["message_id"], {"telegram": "DELIVERED"})
    assert fake.texts() == ["alice: m0"] * 3 + [f"alice: m{i}" for i in range(1, 8)]
    assert await history(alice, sent[0]["message_id"], "telegram") == ["SENT", "DELIVERED"]


async def test_telegram_throttling_waits_for_the_retry_after_it_asks_for(pair, fake: FakeTelegram) -> None:
    alice, _, conversation_id = pair
    fake.throttle("sendMessage", retry_after=1)
    sent = await alice.send_text(conversation_id, "slowly", channels=["telegram"])
    await wait_statuses(alice, sent["message_id"], {"telegram": "DELIVERED"})
    first, second = fake.to("sendMessage")
    assert second.at - first.at >= 1.0  # not the 50 ms backoff: the provider's retry_after


async def test_a_permanent_failure_on_one_channel_is_recorded_and_the_others_go_on(
    pair, fake: FakeTelegram, channels: Channels
) -> None:
    """R14.5: instagram refuses for good; whatsapp, telegram and internal are delivered, and
    instagram's next message is not held back by the failed one."""
    alice, bob, conversation_id = pair
    await channels.set("instagram", permanent_failure_rate=1.0)
    sent = await alice.send_text(conversation_id, "partly", channels=["all"])
    final = await wait_statuses(
        alice, sent["message_id"], {"instagram": "FAILED", "whatsapp": "READ", "telegram": "DELIVERED"}
    )
    assert final[("bob", "instagram")]["error"].startswith("simulated instagram: the recipient cannot receive")
    assert await history(alice, sent["message_id"], "instagram") == ["SENT", "FAILED"]
    status = await alice.message_status(sent["message_id"])
    failed = [h for h in status["history"] if h["status"] == "FAILED"]
    assert failed[0]["detail"] == final[("bob", "instagram")]["error"]
    assert status["status"] == "SENT"  # internal is not acknowledged yet; FAILED does not hold it back
    await bob.ack([sent["message_id"]], status="read")
    assert (await alice.message_status(sent["message_id"]))["status"] == "DELIVERED"  # telegram's
    # one attempt only: a permanent error is not retried
    await channels.set("instagram", permanent_failure_rate=0.0)
    later = await alice.send_text(conversation_id, "later", channels=["instagram"])
    await wait_statuses(alice, later["message_id"], {"instagram": "READ"})


async def test_a_channel_with_no_enabled_connector_fails_at_once_with_the_reason(pair, channels: Channels) -> None:
    alice, bob, conversation_id = pair
    await channels.link(bob, "messenger", "bob.messenger")
    await channels.set("messenger", enabled=False)
    sent = await alice.send_text(conversation_id, "nobody home", channels=["messenger", "whatsapp"])
    final = await wait_statuses(alice, sent["message_id"], {"messenger": "FAILED", "whatsapp": "READ"})
    assert final[("bob", "messenger")]["error"] == "the messenger connector is disabled"


async def test_a_configured_channel_whose_plugin_is_missing_is_usable_and_fails_with_the_reason(
    pair, channels: Channels
) -> None:
    """A channel exists once configured (R9.3); without its plugin its deliveries say why they fail."""
    alice, bob, conversation_id = pair
    with pytest.raises(ApiError) as unknown:
        await bob.set_channel("fax", "+4930123")
    assert unknown.value.code == "unsupported_channel"
    await channels.set("fax", plugin="fax-gateway")
    await bob.set_channel("fax", "+4930123")
    sent = await alice.send_text(conversation_id, "by fax", channels=["fax", "internal"])
    final = await wait_statuses(alice, sent["message_id"], {"fax": "FAILED"})
    assert final[("bob", "fax")]["error"].startswith(
        "the fax connector could not be built: no connector plugin 'fax-gateway' is installed"
    )


async def test_configuration_changes_reach_the_running_router_without_restart(pair, channels: Channels) -> None:
    """R9.3: the store changes, the router follows within the refresh interval."""
    alice, _, conversation_id = pair
    await channels.set("whatsapp", transient_failure_rate=1.0, refresh=False)

    async def picked_up() -> bool:
        live = channels.live("whatsapp")
        return live is not None and live.config.options.get("transient_failure_rate") == 1.0

    await wait_until(picked_up, timeout=2, what="the router to pick up the change")
    failing = await alice.send_text(conversation_id, "during the outage", channels=["whatsapp"])
    await persisted(alice, failing["message_id"])

    async def retrying() -> bool:
        entry = (await statuses(alice, failing["message_id"])).get(("bob", "whatsapp"), {})
        return "service unavailable" in (entry.get("error") or "")

    await wait_until(retrying, what="whatsapp to fail under the new configuration")
    await channels.set("whatsapp", transient_failure_rate=0.0, refresh=False)
    await wait_statuses(alice, failing["message_id"], {"whatsapp": "READ"})  # a retry after the fix


# a broken provider slows nothing else (R9.4, R11.5, R14.4) ------------------------------------


async def test_a_whatsapp_outage_opens_its_breaker_fails_its_deliveries_to_the_dlq_and_delays_nothing_else(
    server: RunningServer, settings: Settings, pair, fake: FakeTelegram, channels: Channels
) -> None:
    alice, bob, conversation_id = pair
    await bob.delete_channel("instagram")

    async def round_of(socket: Socket, n: int, label: str) -> tuple[list[str], list[float], list[float]]:
        """Sends n messages to ["all"] one after the other; the internal latency of each (send →
        frame on bob's socket) and when telegram got it."""
        ids, internal, sent_at = [], [], {}
        loop = asyncio.get_running_loop()
        for i in range(n):
            started = loop.time()
            answer = await alice.send_text(conversation_id, f"{label} {i}", channels=["all"])
            sent_at[f"alice: {label} {i}"] = started
            assert (await next_message(socket))["message_id"] == answer["message_id"]
            internal.append(loop.time() - started)
            ids.append(answer["message_id"])
        for message_id in ids:
            await wait_statuses(alice, message_id, {"telegram": "DELIVERED"})
        telegram = [c.at - sent_at[c.fields["text"]] for c in fake.to("sendMessage") if c.fields["text"] in sent_at]
        return ids, internal, telegram

    async with bob.websocket() as socket:
        _, healthy_internal, healthy_telegram = await round_of(socket, 15, "healthy")
        await channels.set("whatsapp", transient_failure_rate=1.0, latency_ms=50)
        outage_ids, outage_internal, outage_telegram = await round_of(socket, 15, "outage")
    whatsapp_done = [
        s for s in [await statuses(alice, m) for m in outage_ids] if s[("bob", "whatsapp")]["status"] == "FAILED"
    ]
    report = {
        name: (round(percentile(v, 50) * 1000, 1), round(percentile(v, 95) * 1000, 1), round(max(v) * 1000, 1))
        for name, v in (
            ("internal healthy", healthy_internal),
            ("internal outage", outage_internal),
            ("telegram healthy", healthy_telegram),
            ("telegram outage", outage_telegram),
        )
    }
    print(f"\nlatency ms (p50, p95, max) during a whatsapp outage: {report}; "
          f"whatsapp deliveries already given up when the last was sent: {len(whatsapp_done)}/15")
    assert percentile(outage_internal, 95) < 0.5 and percentile(outage_telegram, 95) < 1.0
    assert len(whatsapp_done) < 15  # the outage was still going on while we measured

    # the breaker opened (it goes half-open to probe, and opens again)
    live = channels.live("whatsapp")
    assert live.breaker.state in (BreakerState.OPEN, BreakerState.HALF_OPEN) or live.breaker.last_error
    async with httpx.AsyncClient() as http:
        exported = (await http.get(f"{server.base_url}/metrics")).text
    assert 'chat4all_connector_errors_total{channel="whatsapp"}' in exported
    assert 'chat4all_connector_breaker_state{channel="whatsapp"}' in exported

    # every whatsapp delivery of the outage ends FAILED after the retry schedule, in order
    for message_id in outage_ids:
        final = await wait_statuses(alice, message_id, {"whatsapp": "FAILED"}, timeout=30)
        assert final[("bob", "whatsapp")]["error"].startswith("gave up after 5 attempts: ")
    service = server.runtime.dead_letters
    dead = [e for e in await service.entries(channel="whatsapp")]
    assert [e.letter.message_id for e in dead] == outage_ids
    assert all(e.replayable and e.letter.attempts == 5 and not e.letter.permanent for e in dead)

    # the provider is healthy again: a replay delivers them, in order
    await channels.set("whatsapp", transient_failure_rate=0.0, latency_ms=5)
    replayed = await service.replay(channel="whatsapp")
    assert [k.message_id for k in replayed] == outage_ids
    assert await service.replay(channel="whatsapp") == []  # nothing is FAILED any more
    for message_id in outage_ids:
        await wait_statuses(alice, message_id, {"whatsapp": "READ"})
    assert await history(alice, outage_ids[0], "whatsapp") == ["SENT", "FAILED", "SENT", "DELIVERED", "READ"]
    assert not any(e.replayable for e in await service.entries(channel="whatsapp"))


async def test_a_slow_provider_fills_only_its_own_slots(pair, fake: FakeTelegram, channels: Channels) -> None:
    """R9.4: whatsapp takes 3 s per message and one at a time; telegram is not held up by it."""
    alice, _, conversation_id = pair
    await channels.set("whatsapp", latency_ms=3000, limits=ConnectorLimits(max_in_flight=1, send_timeout_s=10))
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = [await alice.send_text(conversation_id, f"s{i}", channels=["whatsapp", "telegram"]) for i in range(3)]
    for s in sent:
        await wait_statuses(alice, s["message_id"], {"telegram": "DELIVERED"})
    assert loop.time() - started < 2.5  # well before whatsapp took even the first one
    now = [await statuses(alice, s["message_id"]) for s in sent]
    assert [n[("bob", "whatsapp")]["status"] for n in now] == ["SENT", "SENT", "SENT"]
    assert channels.live("whatsapp").in_flight == 1  # the first one, in the provider's hands


# inbound: receipts and replies -----------------------------------------------------------------


async def test_the_telegram_webhook_authenticates_and_refuses_bad_calls_in_the_error_shape(
    server: RunningServer, channels: Channels
) -> None:
    url = f"{server.base_url}/v1/connectors"
    good = {"x-telegram-bot-api-secret-token": WEBHOOK_SECRET}
    body = update(CHAT, "hi")
    async with httpx.AsyncClient() as http:
        cases = [
            (await http.post(f"{url}/telegram/webhook", json=body), 401, "unauthenticated"),
            (await http.post(f"{url}/telegram/webhook", json=body, headers={"x-telegram-bot-api-secret-token": "no"}), 403, "forbidden"),
            (await http.post(f"{url}/fax/webhook", json=body, headers=good), 404, "not_found"),
            (await http.post(f"{url}/telegram/webhook", content=b"{not json", headers=good), 422, "validation_error"),
            (await http.post(f"{url}/telegram/webhook", json=[1], headers=good), 422, "validation_error"),
            (await http.post(f"{url}/whatsapp/webhook", json={"type": "receipt"}), 401, "unauthenticated"),
        ]
        await channels.set("messenger", enabled=False)
        cases.append((await http.post(f"{url}/messenger/webhook", json={}), 404, "not_found"))
        unmapped = await http.post(f"{url}/telegram/webhook", json=update(999, "who am I"), headers=good)
    for response, status, code in cases:
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
        assert response.json()["error"]["trace_id"]
    assert unmapped.status_code == 200 and unmapped.json() == {"ok": True, "accepted": 0, "ignored": 1}


async def test_a_telegram_reply_posts_into_the_conversation_of_the_bridged_message(
    server: RunningServer, make_user, pair, fake: FakeTelegram
) -> None:
    alice, _, private = pair
    carol = await make_user("carol")
    group = (await alice.create_conversation("group", ["bob", "carol"], name="team"))["conversation_id"]
    to_private = await alice.send_text(private, "private question", channels=["telegram"])
    await wait_statuses(alice, to_private["message_id"], {"telegram": "DELIVERED"})
    to_group = await alice.send_text(group, "team question", channels=["telegram"])
    await wait_statuses(alice, to_group["message_id"], {"telegram": "DELIVERED"})
    assert [c.fields["text"] for c in fake.to("sendMessage")] == ["alice: private question", "alice: team question"]
    sent_ids = [101, 102]  # what the fake Bot API numbered them

    async def post(payload: dict) -> httpx.Response:
        async with httpx.AsyncClient() as http:
            return await http.post(
                f"{server.base_url}/v1/connectors/telegram/webhook",
                json=payload,
                headers={"x-telegram-bot-api-secret-token": WEBHOOK_SECRET},
            )

    # a reply to the first bridged message goes to the private conversation, as bob
    reply = update(CHAT, "answer in private", message_id=900, reply_to=sent_ids[0], update_id=1)
    assert (await post(reply)).json() == {"ok": True, "accepted": 1, "ignored": 0}
    # writing to the bot without replying goes to the most recent bridged conversation (the group)
    assert (await post(update(CHAT, "hello team", message_id=901, update_id=2))).json()["accepted"] == 1
    # Telegram redelivers an update it did not see answered: a duplicate, not a second message
    assert (await post(reply)).status_code == 200

    async def last_from_bob(client: Chat4AllClient, conversation_id: str) -> dict | None:
        items = (await client.conversation_messages(conversation_id))["items"]
        return items[-1] if items[-1]["from"] == "bob" else None

    in_private = await wait_until(lambda: last_from_bob(alice, private), what="bob's reply in private")
    in_group = await wait_until(lambda: last_from_bob(carol, group), what="bob's message in the group")
    assert in_private["payload"]["text"] == "answer in private" and in_private["to"] == ["alice"]
    assert in_group["payload"]["text"] == "hello team" and sorted(in_group["to"]) == ["alice", "carol"]
    assert in_private["metadata"] == {"via": "telegram"}
    items = (await alice.conversation_messages(private))["items"]
    assert [m["payload"]["text"] for m in items] == ["private question", "answer in private"]


async def test_receipts_from_a_provider_only_move_statuses_forward_and_only_for_the_identity(
    server: RunningServer, pair, channels: Channels
) -> None:
    alice, _, conversation_id = pair
    await channels.set("whatsapp", delivery_receipt_delay_s=None)  # no receipts of its own
    sent = await alice.send_text(conversation_id, "receipts", channels=["whatsapp"])

    async def handed() -> bool:
        return any(m.message_id == sent["message_id"] for m in channels.live("whatsapp").connector.sent)

    await wait_until(handed, what="whatsapp to take the message")
    secret = await channels.secret("whatsapp")
    receipt = {"type": "receipt", "recipient": "+5511999990000", "message_id": sent["message_id"]}
    stranger = {**receipt, "recipient": "+0000000"}
    assert (await simulated_post(server.base_url, "whatsapp", secret, stranger | {"status": "read"})).json()["ignored"] == 1
    assert (await simulated_post(server.base_url, "whatsapp", secret, receipt | {"status": "read"})).status_code == 200
    assert (await simulated_post(server.base_url, "whatsapp", secret, receipt | {"status": "delivered"})).status_code == 200
    await wait_statuses(alice, sent["message_id"], {"whatsapp": "READ"})
    assert await history(alice, sent["message_id"], "whatsapp") == ["SENT", "DELIVERED", "READ"]  # READ implies DELIVERED
    forged = await simulated_post(server.base_url, "whatsapp", "not-the-secret", receipt | {"status": "read"})
    assert forged.status_code == 403


# files ------------------------------------------------------------------------------------------


async def test_files_go_as_documents_within_the_limit_and_as_a_download_link_beyond_it(
    pair, fake: FakeTelegram, channels: Channels
) -> None:
    alice, _, conversation_id = pair
    await channels.telegram(fake, max_file_bytes=4096)  # Telegram's is 50 MB; a small one for the test
    small = random.Random(1).randbytes(3000)
    big = random.Random(2).randbytes(5000)
    small_id = await upload(alice, small, "small.pdf")
    big_id = await upload(alice, big, "big.bin", "application/octet-stream")
    first = await alice.send_file(conversation_id, small_id, caption="the report", channels=["telegram"])
    second = await alice.send_file(conversation_id, big_id, channels=["telegram"])
    await wait_statuses(alice, second["message_id"], {"telegram": "DELIVERED"})
    await wait_statuses(alice, first["message_id"], {"telegram": "DELIVERED"})
    [document] = fake.to("sendDocument")
    assert document.fields == {"chat_id": CHAT, "caption": "alice: the report"}
    assert document.files["document"] == ("small.pdf", small, "application/pdf")
    [link] = fake.texts()
    assert link.startswith("alice: big.bin (4.9 KB): http")
    async with httpx.AsyncClient() as plain:  # the link works with no token
        downloaded = await plain.get(link.rsplit(" ", 1)[1])
    assert downloaded.status_code == 200 and downloaded.content == big
