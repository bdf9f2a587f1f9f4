"""The Telegram connector: a bot sends bridged messages to users' chats and brings their
replies back into the platform.

Options: ``token`` (required), ``base_url`` (default https://api.telegram.org),
``webhook_secret`` (the ``X-Telegram-Bot-Api-Secret-Token`` Telegram must send; without it the
webhook refuses everything), ``set_webhook`` (call setWebhook on connect, default false),
``max_file_bytes`` (50 MB: a bot's upload limit; larger files go as a download link),
``show_sender`` (prefix texts with "<sender>: ", default true), ``timeout_s`` (10).

The recipient's channel identity is their Telegram chat id (a private chat's id is the user's
id). Telegram reports no delivery or read receipts to bots: a message Telegram accepted is
DELIVERED.
"""

from __future__ import annotations

import hmac
import tempfile
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from chat4all.connectors.base import (
    Capabilities,
    ConnectorContext,
    DeliveryResult,
    Forbidden,
    InboundEvent,
    InboundMessage,
    InvalidInput,
    OutboundMessage,
    TransientError,
    Unauthenticated,
    WebhookRequest,
)
from chat4all.connectors.telegram.api import DEFAULT_BASE_URL, BotApi

SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_TEXT = 4096
MAX_CAPTION = 1024
BOT_FILE_LIMIT = 50 * 1024 * 1024
_SPOOL_IN_MEMORY = 1024 * 1024


class TelegramConnector:
    def __init__(self, context: ConnectorContext, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        options = context.options
        token = str(options.get("token") or "")
        if not token:
            raise ValueError("the telegram connector needs the option 'token' (the bot token from @BotFather)")
        self.channel = context.channel
        self._webhook_url = context.webhook_url
        self._secret = str(options.get("webhook_secret") or "")
        self._set_webhook = bool(options.get("set_webhook", False))
        self._show_sender = bool(options.get("show_sender", True))
        timeout_s = float(options.get("timeout_s", 10.0))
        base_url = str(options.get("base_url") or DEFAULT_BASE_URL)
        self._api = BotApi(token=token, base_url=base_url, timeout_s=timeout_s, transport=transport)
        self._files = httpx.AsyncClient(timeout=timeout_s, transport=transport, trust_env=False)
        self.capabilities = Capabilities(
            max_file_bytes=int(options.get("max_file_bytes", BOT_FILE_LIMIT)), max_text_chars=MAX_TEXT
        )
        self.bot: dict[str, Any] = {}

    async def connect(self) -> None:
        await self._api.open()
        self.bot = await self._api.call("getMe") or {}
        if self._set_webhook:
            webhook: dict[str, Any] = {"url": self._webhook_url, "allowed_updates": ["message"]}
            if self._secret:
                webhook["secret_token"] = self._secret
            await self._api.call("setWebhook", json=webhook)

    async def disconnect(self) -> None:
        await self._api.close()
        await self._files.aclose()

    async def send_message(self, message: OutboundMessage) -> DeliveryResult:
        ids = []
        for chunk in _chunks(self._text(message, message.text or ""), MAX_TEXT):
            result = await self._api.call("sendMessage", json={"chat_id": message.external_id, "text": chunk})
            ids.append(str(result["message_id"]))
        return DeliveryResult(delivered=True, provider_message_ids=tuple(ids))

    async def send_file(self, message: OutboundMessage) -> DeliveryResult:
        file = message.file
        assert file is not None
        caption = self._text(message, message.text or "")[:MAX_CAPTION]
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            await self._download(file.url, spool)
            spool.seek(0)
            data = {"chat_id": message.external_id}
            if caption:
                data["caption"] = caption
            result = await self._api.call(
                "sendDocument", data=data, files={"document": (file.filename, spool, file.content_type)}
            )
        return DeliveryResult(delivered=True, provider_message_ids=(str(result["message_id"]),))

    async def _download(self, url: str, into: Any) -> None:
        try:
            async with self._files.stream("GET", url) as response:
                if response.status_code != 200:
                    raise TransientError(f"telegram: the file could not be read from the store (HTTP {response.status_code})")
                async for chunk in response.aiter_bytes():
                    into.write(chunk)
        except httpx.HTTPError as exc:
            raise TransientError(f"telegram: the file could not be read from the store ({type(exc).__name__})") from None

    def _text(self, message: OutboundMessage, text: str) -> str:
        if not self._show_sender:
            return text
        return f"{message.sender}: {text}" if text else message.sender

    async def handle_webhook(self, request: WebhookRequest) -> Sequence[InboundEvent]:
        given = request.headers.get(SECRET_HEADER)
        if not given:
            raise Unauthenticated("missing the X-Telegram-Bot-Api-Secret-Token header")
        if not self._secret or not _same(given, self._secret):
            raise Forbidden("the secret token does not match")
        return parse_update(request.body)


def parse_update(body: bytes) -> list[InboundEvent]:
    """A Telegram Update → the text a user wrote (replies included); anything else → nothing."""
    try:
        update = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("the body is not JSON") from None
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        raise InvalidInput("not a Telegram Update (no update_id)")
    message = update.get("message")
    if not isinstance(message, dict):
        return []  # edits, channel posts, callbacks, ...: not bridged
    chat = message.get("chat")
    text = message.get("text") or message.get("caption")
    if not isinstance(chat, dict) or chat.get("id") is None or not isinstance(text, str) or not text.strip():
        return []
    if "message_id" not in message:
        raise InvalidInput("the message has no message_id")
    reply = message.get("reply_to_message")
    reply_to = reply.get("message_id") if isinstance(reply, dict) else None
    return [
        InboundMessage(
            external_id=str(chat["id"]),
            text=text,
            provider_message_id=str(message["message_id"]),
            reply_to=str(reply_to) if reply_to is not None else None,
        )
    ]


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
