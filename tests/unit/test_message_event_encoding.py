"""The accept path and the status outbox encode their events without building the models: the
bytes must be the models' own, so that consumers decode exactly what ``encode()`` wrote."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chat4all.domain.events import MessageEvent, StatusEvent
from chat4all.domain.status import DeliveryStatus

CASES: list[dict[str, Any]] = [
    {
        "message_id": "6f1c7a52-8b1e-4d5a-9a39-0d4c2f8e7b11",
        "conversation_id": "0b6f3f0e-3c3e-4a5e-8f4f-1d2c3b4a5f60",
        "sender": "alice",
        "recipients": ["bob"],
        "channels": ["internal"],
        "payload": {"type": "text", "text": "héllo \u2028 \"quoted\" 🙂"},
        "metadata": {},
        "accepted_at": datetime(2026, 11, 30, 10, 0, 0, 123456, tzinfo=UTC),
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    },
    {
        "message_id": "6f1c7a52-8b1e-4d5a-9a39-0d4c2f8e7b12",
        "conversation_id": "0b6f3f0e-3c3e-4a5e-8f4f-1d2c3b4a5f61",
        "sender": "carol",
        "recipients": ["dan", "erin"],
        "channels": ["internal", "telegram", "all"],
        "payload": {
            "type": "file",
            "file_id": "8d9c2a10-1111-4222-8333-944455556666",
            "filename": "a.pdf",
            "size": 1_800_000_000,
            "content_type": None,
            "sha256": None,
            "caption": "",
        },
        "metadata": {"k": [1, 2.5, {"nested": True}], "n": None, "big": 2**53},
        "accepted_at": datetime(2026, 11, 30, 10, 0, 0, tzinfo=UTC),  # no microseconds
        "traceparent": None,
    },
]


@pytest.mark.parametrize("fields", CASES)
def test_the_accepted_event_is_encoded_as_the_model_encodes_it(fields: dict[str, Any]) -> None:
    assert MessageEvent.encode_accepted(**fields) == MessageEvent(**fields).encode()
    assert MessageEvent.decode(MessageEvent.encode_accepted(**fields)) == MessageEvent(**fields)


@pytest.mark.parametrize("status", list(DeliveryStatus))
@pytest.mark.parametrize("detail", [None, "provider said: \"no\" ✗"])
def test_a_status_change_is_encoded_as_the_model_encodes_it(status: DeliveryStatus, detail: str | None) -> None:
    fields: dict[str, Any] = {
        "message_id": "6f1c7a52-8b1e-4d5a-9a39-0d4c2f8e7b11",
        "conversation_id": "0b6f3f0e-3c3e-4a5e-8f4f-1d2c3b4a5f60",
        "sender": "alice",
        "username": "bob",
        "channel": "telegram",
        "status": status,
        "at": datetime(2026, 11, 30, 10, 0, 1, 5, tzinfo=UTC),
        "detail": detail,
        "traceparent": None if detail else "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert StatusEvent.encode_change(**fields) == StatusEvent(**fields).encode()
