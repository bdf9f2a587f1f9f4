"""Events on the log: strict, versioned, and unchanged by a trip through their wire form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError

from chat4all.domain.connectors import DEAD_LETTER_TOPIC, DeadLetter
from chat4all.domain.events import (
    FILES_TOPIC,
    MESSAGES_TOPIC,
    PRESENCE_TOPIC,
    STATUS_TOPIC,
    Event,
    FileEvent,
    MessageEvent,
    PresenceEvent,
    StatusEvent,
)
from chat4all.domain.status import DeliveryStatus

AT = datetime(2026, 3, 1, 12, 0, 0, 123_456, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

EVENTS: list[Event] = [
    MessageEvent(
        message_id="6f1c2f5e-8f5e-4a36-9a8e-0d3c3f3b7c11",
        conversation_id="c5a0d8de-3c9b-4f0e-a2a4-5a6f0c2b9e01",
        sender="alice",
        recipients=["bob", "carol"],
        channels=["internal", "telegram"],
        payload={"type": "text", "text": "olá 👋", "nested": {"list": [1, 2.5, None, True]}},
        metadata={"client": "cli"},
        accepted_at=AT,
        traceparent=TRACEPARENT,
    ),
    MessageEvent(
        message_id="6f1c2f5e-8f5e-4a36-9a8e-0d3c3f3b7c12",
        conversation_id="c5a0d8de-3c9b-4f0e-a2a4-5a6f0c2b9e01",
        sender="alice",
        recipients=["bob"],
        channels=["all"],
        payload={"type": "file", "file_id": "f-1", "caption": None},
        metadata={},
        accepted_at=datetime(2026, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3))),
    ),
    StatusEvent(
        message_id="6f1c2f5e-8f5e-4a36-9a8e-0d3c3f3b7c11",
        conversation_id="c5a0d8de-3c9b-4f0e-a2a4-5a6f0c2b9e01",
        sender="alice",
        username="bob",
        channel="internal",
        status=DeliveryStatus.READ,
        at=AT,
        traceparent=TRACEPARENT,
    ),
    StatusEvent(
        message_id="6f1c2f5e-8f5e-4a36-9a8e-0d3c3f3b7c11",
        conversation_id="c5a0d8de-3c9b-4f0e-a2a4-5a6f0c2b9e01",
        sender="alice",
        username="bob",
        channel="telegram",
        status=DeliveryStatus.FAILED,
        at=AT,
        detail="chat not found",
    ),
    PresenceEvent(username="bob", status="online", at=AT, node="node-a"),
    PresenceEvent(username="bob", status="offline", at=AT, node="node-b", traceparent=TRACEPARENT),
    FileEvent(
        file_id="0b7f4c7e-3a55-4c53-9f1e-8f8a3c1b2d44",
        owner="alice",
        filename="relatório final.pdf",
        size=2 * 1024**3,
        content_type="application/pdf",
        sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        at=AT,
    ),
    DeadLetter(
        message_id="6f1c2f5e-8f5e-4a36-9a8e-0d3c3f3b7c11",
        conversation_id="c5a0d8de-3c9b-4f0e-a2a4-5a6f0c2b9e01",
        sender="alice",
        username="bob",
        channel="whatsapp",
        attempts=5,
        permanent=False,
        reason="gave up after 5 attempts: simulated whatsapp: service unavailable (HTTP 503)",
        failed_at=AT,
    ),
]


def test_every_kind_of_event_has_an_example_here() -> None:
    """A new Event subclass needs an example in EVENTS, so that the tests below cover it."""
    assert {type(e) for e in EVENTS} == set(Event.__subclasses__())


def _name(event: Event) -> str:
    return f"{type(event).__name__}-{getattr(event, 'status', '')}"


@pytest.mark.parametrize("event", EVENTS, ids=_name)
def test_an_event_decodes_to_what_was_encoded(event: Event) -> None:
    wire = event.encode()

    decoded = type(event).decode(wire)

    assert decoded == event
    assert type(decoded) is type(event)
    assert decoded.encode() == wire  # and encodes to the same bytes again
    assert type(event).decode(wire.decode()) == event  # str works as well as bytes


@pytest.mark.parametrize("event", EVENTS, ids=_name)
def test_the_wire_form_is_versioned_json_with_its_type(event: Event) -> None:
    body = orjson.loads(event.encode())

    assert body["v"] == 1
    assert body["type"] == event.type  # type: ignore[attr-defined]


@pytest.mark.parametrize("event", EVENTS, ids=_name)
def test_an_unknown_field_is_rejected(event: Event) -> None:
    body = orjson.loads(event.encode()) | {"surprise": 1}

    with pytest.raises(ValidationError):
        type(event).decode(orjson.dumps(body))


@pytest.mark.parametrize("event", EVENTS, ids=_name)
@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_a_version_other_than_1_is_rejected(event: Event, version: object) -> None:
    body = orjson.loads(event.encode()) | {"v": version}

    with pytest.raises(ValidationError):
        type(event).decode(orjson.dumps(body))


def test_an_event_of_another_type_is_rejected() -> None:
    status_wire = EVENTS[2].encode()

    with pytest.raises(ValidationError):
        MessageEvent.decode(status_wire)
    with pytest.raises(ValidationError):
        PresenceEvent.decode(status_wire)


def test_a_missing_field_is_rejected() -> None:
    body = orjson.loads(EVENTS[0].encode())
    del body["conversation_id"]

    with pytest.raises(ValidationError):
        MessageEvent.decode(orjson.dumps(body))


def test_an_unknown_status_is_rejected() -> None:
    body = orjson.loads(EVENTS[2].encode()) | {"status": "SEEN"}

    with pytest.raises(ValidationError):
        StatusEvent.decode(orjson.dumps(body))


def test_events_go_to_their_topic_keyed_for_ordering() -> None:
    message, _, status, _, presence, _, file, dead = EVENTS
    assert (MessageEvent.topic, message.key()) == (MESSAGES_TOPIC, message.conversation_id)  # type: ignore[attr-defined]
    assert (StatusEvent.topic, status.key()) == (STATUS_TOPIC, status.message_id)  # type: ignore[attr-defined]
    assert (PresenceEvent.topic, presence.key()) == (PRESENCE_TOPIC, "bob")
    assert (FileEvent.topic, file.key()) == (FILES_TOPIC, file.file_id)  # type: ignore[attr-defined]
    assert (DeadLetter.topic, dead.key()) == (DEAD_LETTER_TOPIC, dead.message_id)  # type: ignore[attr-defined]
    assert DEAD_LETTER_TOPIC == f"{MESSAGES_TOPIC}.dlq"


def test_events_are_immutable() -> None:
    with pytest.raises(ValidationError):
        EVENTS[0].sender = "mallory"  # type: ignore[misc]
