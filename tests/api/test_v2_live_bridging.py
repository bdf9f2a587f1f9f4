"""Inbound bridging (R14.3) end to end with the simulated connectors, embedded profile: a
WhatsApp user's reply reaches an Instagram member over Instagram and an app member on their
socket, each delivery with its own per-channel status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx

import pytest

from chat4all.config import Settings
from tests.conftest import RunningServer, wait_until
from tests.connector_helpers import QUICK, Channels, history, simulated_post, statuses, wait_statuses
from tests.api.test_v2_live import next_frame
from tests.connector_helpers import WEBHOOK_SECRET
from tests.fake_telegram import FakeTelegram, running_fake_telegram, update

WA = "+5511988887777"
IG = "carol.insta"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        bcrypt_rounds=4,
        access_log=False,
        node_id="test-node",
        router_poll_interval_s=0.05,
        connectors_refresh_interval_s=0.1,
        connectors_poll_interval_s=0.02,
        connectors_retry_base_s=0.05,
    )


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as tg:
        yield tg


@pytest.fixture
async def channels(server: RunningServer, fake: FakeTelegram) -> Channels:
    c = Channels(server)
    await c.telegram(fake)
    for channel in ("whatsapp", "instagram"):
        await c.set(channel, **QUICK)
    return c


async def test_a_whatsapp_reply_reaches_an_instagram_member_with_per_channel_statuses(
    make_user, channels: Channels, server: RunningServer
) -> None:
    alice = await make_user("alice")  # in the app
    bob = await make_user("bob")  # on WhatsApp
    carol = await make_user("carol")  # on Instagram
    await channels.link(bob, "whatsapp", WA)
    await channels.link(carol, "instagram", IG)
    conversation_id = (await alice.create_conversation("group", ["bob", "carol"], name="trip"))["conversation_id"]
    first = await alice.send_text(conversation_id, "who's in?", channels=["all"])
    await wait_statuses(alice, first["message_id"], {"whatsapp": "READ"}, username="bob")
    await wait_statuses(alice, first["message_id"], {"instagram": "READ"}, username="carol")

    async with alice.websocket(version="v2") as alice_socket:
        reply = await simulated_post(
            server.base_url, "whatsapp", await channels.secret("whatsapp"),
            {"type": "message", "from": WA, "id": "wamid.bridge-1", "text": "me! from whatsapp"},
        )
        assert reply.status_code == 200 and reply.json() == {"ok": True, "accepted": 1, "ignored": 0}
        frame = await next_frame(alice_socket, "message")
        message = frame["message"]
        assert message["from"] == "bob" and message["payload"] == {"type": "text", "text": "me! from whatsapp"}
        assert "own" not in frame

    # carol gets it over Instagram, from the Instagram connector, with its own receipts
    def handed() -> list:
        return [s for s in channels.live("instagram").connector.sent if s.message_id == message["message_id"]]

    async def over_instagram() -> list | None:
        return handed() or None

    [sent] = await wait_until(over_instagram, what="bob's reply over instagram")
    assert (sent.external_id, sent.text) == (IG, "me! from whatsapp")
    final = await wait_statuses(bob, message["message_id"], {"instagram": "READ", "internal": "SENT"}, username="carol")
    assert final[("alice", "internal")]["status"] in ("SENT", "DELIVERED")
    assert await history(bob, message["message_id"], "instagram", username="carol") == ["SENT", "DELIVERED", "READ"]
    # nothing goes back to the WhatsApp author, nor to channels nobody mapped
    assert set(await statuses(bob, message["message_id"])) == {
        ("alice", "internal"), ("carol", "internal"), ("carol", "instagram"),
    }
    assert [s for s in channels.live("whatsapp").connector.sent if s.message_id == message["message_id"]] == []

    # a provider's redelivery is a duplicate: one message, still one instagram send
    again = await simulated_post(
        server.base_url, "whatsapp", await channels.secret("whatsapp"),
        {"type": "message", "from": WA, "id": "wamid.bridge-1", "text": "me! from whatsapp"},
    )
    assert again.status_code == 200
    items = (await carol.conversation_messages(conversation_id))["items"]
    assert [m["payload"]["text"] for m in items if m["from"] == "bob"] == ["me! from whatsapp"]
    assert len(handed()) == 1


async def test_a_telegram_reply_reaches_a_whatsapp_member_over_whatsapp(
    make_user, channels: Channels, server: RunningServer, fake: FakeTelegram
) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")  # on Telegram
    carol = await make_user("carol")  # on WhatsApp
    await channels.link(bob, "telegram", "4242")
    await channels.link(carol, "whatsapp", WA)
    conversation_id = (await alice.create_conversation("group", ["bob", "carol"], name="ops"))["conversation_id"]
    first = await alice.send_text(conversation_id, "status?", channels=["telegram"])
    await wait_statuses(alice, first["message_id"], {"telegram": "DELIVERED"}, username="bob")
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{server.base_url}/v1/connectors/telegram/webhook",
            json=update("4242", "all green", message_id=900, update_id=1),
            headers={"x-telegram-bot-api-secret-token": WEBHOOK_SECRET},
        )
    assert answer.json() == {"ok": True, "accepted": 1, "ignored": 0}

    async def bridged() -> dict | None:
        items = (await carol.conversation_messages(conversation_id))["items"]
        return items[-1] if items and items[-1]["from"] == "bob" else None

    message = await wait_until(bridged, what="bob's telegram reply in the conversation")
    final = await wait_statuses(bob, message["message_id"], {"whatsapp": "READ"}, username="carol")
    [handed] = [s for s in channels.live("whatsapp").connector.sent if s.message_id == message["message_id"]]
    assert (handed.external_id, handed.text) == (WA, "all green")
    assert set(final) == {("alice", "internal"), ("carol", "internal"), ("carol", "whatsapp")}
    assert [c for c in fake.to("sendMessage") if "all green" in str(c.fields.get("text"))] == []  # not echoed to bob
