"""The simulated provider (WhatsApp, Instagram Direct, Messenger): failures on demand, and
receipts POSTed back through the channel's webhook, signed, like a real provider's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from chat4all.connectors.base import (
    ConnectorContext,
    InboundMessage,
    InboundReceipt,
    OutboundMessage,
    PermanentError,
    TransientError,
    WebhookRequest,
)
from chat4all.connectors.simulated import SIGNATURE_HEADER, SimulatedConnector, sign
from chat4all.domain.errors import Forbidden, InvalidInput, Unauthenticated
from chat4all.domain.status import DeliveryStatus
from tests.conftest import wait_until
from tests.webhook_receiver import Receiver, running_receiver

SECRET = "sim-secret"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def simulated(webhook_url: str = "http://127.0.0.1:9/unused", **options: object) -> SimulatedConnector:
    return SimulatedConnector(
        ConnectorContext(
            channel="whatsapp",
            options={"secret": SECRET, "latency_ms": 0, "webhook_url": webhook_url, **options},
            webhook_url="http://127.0.0.1:9/default",
        )
    )


def outbound(attempt: int = 1) -> OutboundMessage:
    return OutboundMessage(
        message_id="3f0b7c1e-0000-4000-8000-000000000001",
        conversation_id="c0ffee00-0000-4000-8000-000000000002",
        sequence_number=1,
        sender="alice",
        recipient="bob",
        external_id="+5511999990000",
        text="hi",
        file=None,
        metadata={},
        created_at=datetime.now(UTC),
        attempt=attempt,
    )


async def test_an_accepted_message_is_reported_delivered_then_read_through_the_webhook(receiver: Receiver) -> None:
    c = simulated(receiver.url("/v1/connectors/whatsapp/webhook"), delivery_receipt_delay_s=0, read_receipt_delay_s=0)
    await c.connect()
    result = await c.send_message(outbound())
    assert result.delivered is False and result.provider_message_ids[0].startswith("sim-")
    calls = await wait_until(lambda: receiver.count(2), what="two receipts")
    await c.disconnect()
    bodies = [call.json for call in calls]
    assert [(b["type"], b["status"], b["recipient"], b["message_id"]) for b in bodies] == [
        ("receipt", "delivered", "+5511999990000", outbound().message_id),
        ("receipt", "read", "+5511999990000", outbound().message_id),
    ]
    assert all(call.headers[SIGNATURE_HEADER.lower()] == sign(SECRET, call.body) for call in calls)
    assert all(b["provider_message_id"] == result.provider_message_ids[0] for b in bodies)


async def test_failure_rates_make_transient_and_permanent_failures() -> None:
    with pytest.raises(TransientError, match="HTTP 503"):
        await simulated(transient_failure_rate=1.0).send_message(outbound())
    with pytest.raises(PermanentError, match="cannot receive"):
        await simulated(permanent_failure_rate=1.0).send_message(outbound())
    seeded = [simulated(transient_failure_rate=0.5, seed=7, delivery_receipt_delay_s=None) for _ in range(2)]
    outcomes = []
    for c in seeded:
        row = []
        for _ in range(20):
            try:
                await c.send_message(outbound())
                row.append("ok")
            except TransientError:
                row.append("fail")
        outcomes.append(row)
    assert outcomes[0] == outcomes[1] and {"ok", "fail"} == set(outcomes[0])  # repeatable with a seed
    with pytest.raises(ValueError):
        simulated(transient_failure_rate=1.5)


def signed(body: object, secret: str | None = SECRET) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {SIGNATURE_HEADER.lower(): sign(secret, raw)} if secret is not None else {}
    return WebhookRequest(headers=headers, body=raw)


async def test_the_webhook_checks_the_signature_and_reads_receipts_and_messages() -> None:
    c = simulated()
    receipt = {"type": "receipt", "status": "read", "recipient": "+55", "message_id": "m", "provider_message_id": "p"}
    with pytest.raises(Unauthenticated):
        await c.handle_webhook(signed(receipt, secret=None))
    with pytest.raises(Forbidden):
        await c.handle_webhook(signed(receipt, secret="other"))
    assert await c.handle_webhook(signed(receipt)) == [
        InboundReceipt(external_id="+55", status=DeliveryStatus.READ, message_id="m", provider_message_id="p")
    ]
    message = {"type": "message", "from": "+55", "id": "w1", "text": "hello", "reply_to": "p"}
    assert await c.handle_webhook(signed(message)) == [
        InboundMessage(external_id="+55", text="hello", provider_message_id="w1", reply_to="p")
    ]
    for bad in (b"{", [1], {"type": "receipt", "status": "lost"}, {"type": "poll"}, {"type": "message"}):
        with pytest.raises(InvalidInput):
            await c.handle_webhook(signed(bad))
    with pytest.raises(Forbidden):  # no secret configured: nothing is trusted
        await simulated(secret="").handle_webhook(signed(receipt, secret=""))
