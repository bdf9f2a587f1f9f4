"""A simulated provider for WhatsApp, Instagram Direct and Messenger.

It behaves like a real provider seen from Chat4All: a send takes ``latency_ms``, fails
transiently (like an HTTP 503) with probability ``transient_failure_rate`` and permanently
(like "recipient not on the network") with ``permanent_failure_rate``; an accepted message is
reported DELIVERED after ``delivery_receipt_delay_s`` and READ ``read_receipt_delay_s`` later,
by POSTing signed receipts to the channel's public webhook — the same inbound path a real
provider uses. Every action is logged (``simulated provider ...``).

Options (all optional): ``latency_ms`` (20), ``transient_failure_rate`` (0),
``permanent_failure_rate`` (0), ``delivery_receipt_delay_s`` (0.3; null: no receipts),
``read_receipt_delay_s`` (1.5; null: no read receipts), ``secret`` (HMAC key of the webhook
calls; without one the webhook refuses everything), ``webhook_url`` (default: this server's),
``max_file_bytes`` (the channel's real limit), ``seed`` (repeatable failures).

Webhook bodies (header ``X-Simulator-Signature: sha256=<hex HMAC-SHA256(secret, body)>``)::

    {"type": "receipt", "status": "delivered"|"read", "recipient": "<external id>",
     "message_id": "<ours>", "provider_message_id": "<theirs>"}
    {"type": "message", "from": "<external id>", "id": "<theirs>", "text": "...", "reply_to": "<theirs>"?}
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import uuid
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
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
    InboundReceipt,
    InvalidInput,
    OutboundMessage,
    PermanentError,
    TransientError,
    Unauthenticated,
    WebhookRequest,
)
from chat4all.domain.connectors import ConnectorConfig
from chat4all.domain.status import DeliveryStatus
from chat4all.observability.logging import get_logger

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Simulator-Signature"
MiB = 1024 * 1024
# the real services' attachment limits
FILE_LIMITS = {"whatsapp": 100 * MiB, "instagram": 25 * MiB, "messenger": 25 * MiB}
SIMULATED_CHANNELS = ("whatsapp", "instagram", "messenger")
_RECEIPT_TRIES = 4


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class SimulatedConnector:
    def __init__(self, context: ConnectorContext) -> None:
        options = context.options
        self.channel = context.channel
        self.latency_s = float(options.get("latency_ms", 20)) / 1000
        self.transient_rate = _rate(options, "transient_failure_rate")
        self.permanent_rate = _rate(options, "permanent_failure_rate")
        self.delivery_delay_s = _delay(options, "delivery_receipt_delay_s", 0.3)
        self.read_delay_s = _delay(options, "read_receipt_delay_s", 1.5)
        self.secret = str(options.get("secret") or "")
        self.webhook_url = str(options.get("webhook_url") or context.webhook_url)
        self.drain_s = float(options.get("drain_s", 2.0))  # receipts still owed at disconnect
        self.capabilities = Capabilities(
            max_file_bytes=int(options.get("max_file_bytes", FILE_LIMITS.get(self.channel, 25 * MiB))),
            supports_delivery_receipts=self.delivery_delay_s is not None,
            supports_read_receipts=self.read_delay_s is not None,
        )
        self._random = random.Random(options.get("seed"))
        self._http: httpx.AsyncClient | None = None
        self._receipts: set[asyncio.Task[None]] = set()
        self.sent: deque[OutboundMessage] = deque(maxlen=1000)  # what it accepted, for demos

    async def connect(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=5.0)
        log.info("simulated provider ready", channel=self.channel, webhook_url=self.webhook_url)

    async def disconnect(self) -> None:
        if self._receipts:  # receipts already promised still go out, for a while
            _, late = await asyncio.wait(self._receipts, timeout=self.drain_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def send_message(self, message: OutboundMessage) -> DeliveryResult:
        return await self._send(message, kind="text")

    async def send_file(self, message: OutboundMessage) -> DeliveryResult:
        return await self._send(message, kind="file")

    async def _send(self, message: OutboundMessage, *, kind: str) -> DeliveryResult:
        await asyncio.sleep(self.latency_s)
        roll = self._random.random()
        context = {"channel": self.channel, "message_id": message.message_id, "to": message.external_id}
        if roll < self.permanent_rate:
            log.info("simulated provider refused a message for good", **context)
            raise PermanentError(f"simulated {self.channel}: the recipient cannot receive messages (HTTP 400)")
        if roll < self.permanent_rate + self.transient_rate:
            log.info("simulated provider failed transiently", attempt=message.attempt, **context)
            raise TransientError(f"simulated {self.channel}: service unavailable (HTTP 503)")
        provider_id = f"sim-{uuid.uuid4().hex[:16]}"
        self.sent.append(message)
        log.info("simulated provider accepted a message", kind=kind, provider_message_id=provider_id, **context)
        if self.delivery_delay_s is not None:
            task = asyncio.create_task(self._report(message, provider_id))
            self._receipts.add(task)
            task.add_done_callback(self._receipts.discard)
        return DeliveryResult(delivered=False, provider_message_ids=(provider_id,))

    async def _report(self, message: OutboundMessage, provider_id: str) -> None:
        assert self.delivery_delay_s is not None
        await asyncio.sleep(self.delivery_delay_s)
        await self._post_receipt(message, provider_id, "delivered")
        if self.read_delay_s is not None:
            await asyncio.sleep(self.read_delay_s)
            await self._post_receipt(message, provider_id, "read")

    async def _post_receipt(self, message: OutboundMessage, provider_id: str, status: str) -> None:
        body = orjson.dumps(
            {
                "type": "receipt",
                "status": status,
                "recipient": message.external_id,
                "message_id": message.message_id,
                "provider_message_id": provider_id,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(self.secret, body)}
        for attempt in range(_RECEIPT_TRIES):
            if self._http is None:  # disconnected
                return
            try:
                response = await self._http.post(self.webhook_url, content=body, headers=headers)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code < 500:
                log.info(
                    "simulated provider reported a receipt",
                    channel=self.channel,
                    message_id=message.message_id,
                    status=status,
                    answer=response.status_code,
                )
                return
            await asyncio.sleep(0.2 * 2**attempt)
        log.warning("simulated provider gave up reporting a receipt", channel=self.channel, message_id=message.message_id)

    async def handle_webhook(self, request: WebhookRequest) -> Sequence[InboundEvent]:
        given = request.headers.get(SIGNATURE_HEADER.lower())
        if not given:
            raise Unauthenticated(f"missing {SIGNATURE_HEADER} header")
        if not self.secret or not hmac.compare_digest(given, sign(self.secret, request.body)):
            raise Forbidden("the signature does not match")
        try:
            data: Any = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise InvalidInput("the body is not JSON") from None
        if not isinstance(data, dict):
            raise InvalidInput("the body must be a JSON object")
        try:
            if data.get("type") == "receipt":
                status = {"delivered": DeliveryStatus.DELIVERED, "read": DeliveryStatus.READ}[data["status"]]
                return [
                    InboundReceipt(
                        external_id=str(data["recipient"]),
                        status=status,
                        message_id=data.get("message_id"),
                        provider_message_id=data.get("provider_message_id"),
                    )
                ]
            if data.get("type") == "message":
                reply_to = data.get("reply_to")
                return [
                    InboundMessage(
                        external_id=str(data["from"]),
                        text=str(data["text"]),
                        provider_message_id=str(data["id"]),
                        reply_to=str(reply_to) if reply_to else None,
                    )
                ]
        except (KeyError, TypeError):
            raise InvalidInput("the event lacks a required field") from None
        raise InvalidInput("unknown event type; expected 'receipt' or 'message'")


def simulated_defaults(*, now: datetime, secret: str) -> list[ConnectorConfig]:
    """The embedded profile's WhatsApp, Instagram and Messenger: healthy, quick receipts."""
    options = {
        "latency_ms": 20,
        "transient_failure_rate": 0.0,
        "permanent_failure_rate": 0.0,
        "delivery_receipt_delay_s": 0.3,
        "read_receipt_delay_s": 1.5,
        "secret": secret,
    }
    return [ConnectorConfig(channel=c, options=options, updated_at=now) for c in SIMULATED_CHANNELS]


def _rate(options: Any, name: str) -> float:
    value = float(options.get(name, 0.0))
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1")
    return value


def _delay(options: Any, name: str, default: float) -> float | None:
    value = options.get(name, default)
    return None if value is None else max(0.0, float(value))
