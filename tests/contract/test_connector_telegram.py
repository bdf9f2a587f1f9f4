"""The Telegram connector against a fake Bot API server (tests/fake_telegram.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

from chat4all.connectors.base import (
    ConnectorContext,
    InboundMessage,
    OutboundFile,
    OutboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
    WebhookRequest,
)
from chat4all.connectors.telegram import TelegramConnector
from chat4all.connectors.telegram.connector import SECRET_HEADER
from chat4all.domain.errors import Forbidden, InvalidInput, Unauthenticated
from tests.fake_telegram import TOKEN, FakeTelegram, running_fake_telegram, update

WEBHOOK_URL = "https://chat.example.com/v1/connectors/telegram/webhook"


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with running_fake_telegram() as tg:
        yield tg


def connector(fake: FakeTelegram, **options: object) -> TelegramConnector:
    context = ConnectorContext(
        channel="telegram",
        options={"token": TOKEN, "base_url": fake.base_url, "webhook_secret": "s3cret", **options},
        webhook_url=WEBHOOK_URL,
    )
    return TelegramConnector(context)


@pytest.fixture
async def telegram(fake: FakeTelegram) -> AsyncIterator[TelegramConnector]:
    c = connector(fake)
    await c.connect()
    yield c
    await c.disconnect()


def outbound(text: str | None = "hello", *, file: OutboundFile | None = None, chat: str = "4242") -> OutboundMessage:
    return OutboundMessage(
        message_id="3f0b7c1e-0000-4000-8000-000000000001",
        conversation_id="c0ffee00-0000-4000-8000-000000000002",
        sequence_number=1,
        sender="alice",
        recipient="bob",
        external_id=chat,
        text=text,
        file=file,
        metadata={},
        created_at=datetime.now(UTC),
        attempt=1,
    )


async def test_connect_checks_the_token_with_get_me_and_can_set_the_webhook(fake: FakeTelegram) -> None:
    c = connector(fake, set_webhook=True)
    await c.connect()
    await c.disconnect()
    assert [call.method for call in fake.calls] == ["getMe", "setWebhook"]
    assert c.bot["username"] == "chat4all_bot"
    assert fake.to("setWebhook")[0].fields == {"url": WEBHOOK_URL, "allowed_updates": ["message"], "secret_token": "s3cret"}

    wrong = TelegramConnector(
        ConnectorContext(channel="telegram", options={"token": "0:wrong", "base_url": fake.base_url}, webhook_url=WEBHOOK_URL)
    )
    with pytest.raises(PermanentError, match="Unauthorized") as refused:
        await wrong.connect()
    assert "0:wrong" not in refused.value.reason  # the token never shows in a reason
    await wrong.disconnect()


def test_a_connector_without_a_token_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="token"):
        TelegramConnector(ConnectorContext(channel="telegram", options={}, webhook_url=WEBHOOK_URL))


async def test_send_message_posts_the_text_with_the_sender_to_the_chat(fake: FakeTelegram, telegram: TelegramConnector) -> None:
    result = await telegram.send_message(outbound("hello bob"))
    assert result.delivered is True and result.provider_message_ids == ("101",)
    call = fake.to("sendMessage")[0]
    assert call.token == TOKEN and call.fields == {"chat_id": "4242", "text": "alice: hello bob"}


async def test_a_text_longer_than_telegram_takes_is_sent_in_pieces(fake: FakeTelegram, telegram: TelegramConnector) -> None:
    result = await telegram.send_message(outbound("x" * 9000))
    texts = fake.texts()
    assert [len(t) for t in texts] == [4096, 4096, 9007 - 8192]
    assert "".join(texts) == "alice: " + "x" * 9000
    assert result.provider_message_ids == ("101", "102", "103")


async def test_errors_are_classified_throttling_transient_permanent(fake: FakeTelegram, telegram: TelegramConnector) -> None:
    fake.throttle("sendMessage", retry_after=7)
    with pytest.raises(RateLimited) as throttled:
        await telegram.send_message(outbound())
    assert throttled.value.retry_after_s == 7 and not throttled.value.permanent

    fake.fail("sendMessage", status=502, description="Bad Gateway")
    with pytest.raises(TransientError, match="Bad Gateway") as transient:
        await telegram.send_message(outbound())
    assert not isinstance(transient.value, RateLimited)

    fake.blocked.add("666")
    with pytest.raises(PermanentError, match="blocked by the user"):
        await telegram.send_message(outbound(chat="666"))
    fake.fail("sendMessage", status=400, description="Bad Request: chat not found")
    with pytest.raises(PermanentError, match="chat not found"):
        await telegram.send_message(outbound())


async def test_an_unreachable_api_is_a_transient_error(fake: FakeTelegram) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    c = TelegramConnector(
        ConnectorContext(
            channel="telegram", options={"token": TOKEN, "base_url": f"http://127.0.0.1:{closed_port}"}, webhook_url=WEBHOOK_URL
        )
    )
    with pytest.raises(TransientError, match="ConnectError"):
        await c.connect()
    await c.disconnect()


@pytest.fixture
async def file_server() -> AsyncIterator[str]:
    """Serves /report.pdf like the blob store's download URL does."""
    content = b"%PDF-1.7 " + bytes(range(256)) * 40

    async def serve(_: object) -> Response:
        return Response(content, media_type="application/pdf")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/report.pdf", serve)]), log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/report.pdf"
    server.should_exit = True
    await task


async def test_send_file_uploads_the_bytes_with_send_document(
    fake: FakeTelegram, telegram: TelegramConnector, file_server: str
) -> None:
    content = b"%PDF-1.7 " + bytes(range(256)) * 40
    file = OutboundFile(
        file_id="f", filename="report.pdf", size=len(content), content_type="application/pdf", url=file_server,
        url_expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    result = await telegram.send_file(outbound("the report", file=file))
    assert result.delivered and result.provider_message_ids == ("101",)
    call = fake.to("sendDocument")[0]
    assert call.fields == {"chat_id": "4242", "caption": "alice: the report"}
    assert call.files["document"] == ("report.pdf", content, "application/pdf")
    assert telegram.capabilities.max_file_bytes == 50 * 1024 * 1024  # a bot's upload limit


def webhook(body: object, secret: str | None = "s3cret") -> WebhookRequest:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return WebhookRequest(headers=headers, body=raw)


async def test_the_webhook_checks_the_secret_token(telegram: TelegramConnector) -> None:
    with pytest.raises(Unauthenticated):
        await telegram.handle_webhook(webhook(update(4242, "hi"), secret=None))
    with pytest.raises(Forbidden):
        await telegram.handle_webhook(webhook(update(4242, "hi"), secret="guess"))
    assert await telegram.handle_webhook(webhook(update(4242, "hi")))


async def test_a_connector_without_a_webhook_secret_refuses_every_call(fake: FakeTelegram) -> None:
    c = connector(fake, webhook_secret="")
    with pytest.raises(Forbidden):
        await c.handle_webhook(webhook(update(4242, "hi"), secret="anything"))


async def test_updates_become_inbound_messages_replies_included(telegram: TelegramConnector) -> None:
    plain = await telegram.handle_webhook(webhook(update(4242, "hello", message_id=7)))
    assert plain == [InboundMessage(external_id="4242", text="hello", provider_message_id="7", reply_to=None)]
    reply = await telegram.handle_webhook(webhook(update(4242, "sure", message_id=8, reply_to=101)))
    assert reply == [InboundMessage(external_id="4242", text="sure", provider_message_id="8", reply_to="101")]
    # what is not a text message is not bridged
    assert await telegram.handle_webhook(webhook({"update_id": 3, "edited_message": {"message_id": 7}})) == []
    sticker = update(4242, "x")
    del sticker["message"]["text"]
    assert await telegram.handle_webhook(webhook(sticker)) == []


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", orjson.dumps({"message": {}}), orjson.dumps({"update_id": "x"})])
async def test_malformed_updates_are_invalid_input(telegram: TelegramConnector, body: bytes) -> None:
    with pytest.raises(InvalidInput):
        await telegram.handle_webhook(webhook(body))
