"""Webhooks (R6.5, R8.5): registrations, callback events, their signature and retry schedule.

Pure rules only. A callback is POSTed with the body ``{event_id, type, created_at, data}`` and
the header ``Chat4All-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``; the
key is the secret string's UTF-8 bytes. ``event_id`` is derived from what happened, so the
same status change always yields the same event_id (replays and redeliveries dedup on it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from chat4all.domain.status import DeliveryStatus

SIGNATURE_HEADER = "Chat4All-Signature"
EVENT_ID_HEADER = "Chat4All-Event-Id"
EVENT_TYPE_HEADER = "Chat4All-Event-Type"
ALL_EVENTS = "*"

# the event types a webhook can subscribe to
EventType = Literal[
    "message.status", "file.completed", "message.received", "message.updated", "message.deleted", "conversation.updated"
]
MESSAGE_STATUS: EventType = "message.status"
FILE_COMPLETED: EventType = "file.completed"
MESSAGE_RECEIVED: EventType = "message.received"  # a message addressed to the webhook's owner (API v2)
# API v2: a message edited or deleted, a conversation changed (docs/api-v2.md)
MESSAGE_UPDATED: EventType = "message.updated"
MESSAGE_DELETED: EventType = "message.deleted"
CONVERSATION_UPDATED: EventType = "conversation.updated"
EVENT_TYPES: tuple[EventType, ...] = (
    MESSAGE_STATUS, FILE_COMPLETED, MESSAGE_RECEIVED, MESSAGE_UPDATED, MESSAGE_DELETED, CONVERSATION_UPDATED
)
# types a webhook gets only when it names them ("*" does not include them): message.received
# carries every message's content, which a webhook registered for "*" under v1 never asked for
OPT_IN_EVENT_TYPES: tuple[EventType, ...] = (MESSAGE_RECEIVED,)

# namespace of the deterministic event ids (uuid5)
_EVENT_NAMESPACE = uuid.UUID("6f1d3c1e-5a43-4d3b-9a55-2f6c0c8e7b10")


class Webhook(BaseModel):
    """A URL that receives the owner's events, and where it stands."""

    model_config = ConfigDict(frozen=True)

    webhook_id: str
    owner: str
    url: str
    events: tuple[str, ...]  # ("*",) = every type, including those added later
    secret: str
    created_at: datetime
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    def wants(self, event_type: str) -> bool:
        if not self.active:
            return False
        return event_type in self.events or (ALL_EVENTS in self.events and event_type not in OPT_IN_EVENT_TYPES)


class DeliveryState(StrEnum):
    """Where one callback (an outbox row) stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt failed
    CANCELLED = "cancelled"  # the webhook was disabled before it went out


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def normalize_events(events: list[str] | None) -> tuple[str, ...]:
    """The subscribed types, deduplicated; None or ["*"] means every type. ValueError if unknown."""
    if events is None:
        return (ALL_EVENTS,)
    chosen = list(dict.fromkeys(e.strip() for e in events))
    if not chosen:
        raise ValueError("events must name at least one event type (or be omitted for all)")
    unknown = [e for e in chosen if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)}")
    if ALL_EVENTS in chosen:
        return (ALL_EVENTS, *(e for e in chosen if e in OPT_IN_EVENT_TYPES))
    return tuple(chosen)


def status_event_id(message_id: str, username: str, channel: str, status: DeliveryStatus | str) -> str:
    """One id per status of one delivery: a status is reached at most once (it only moves forward)."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{MESSAGE_STATUS}|{message_id}|{username}|{channel}|{status}"))


def received_event_id(message_id: str, recipient: str) -> str:
    """One id per message and recipient, whatever the channels it went out on."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{MESSAGE_RECEIVED}|{message_id}|{recipient}"))


def file_event_id(file_id: str, event_type: str = FILE_COMPLETED) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{event_type}|{file_id}"))


def change_event_id(event_type: str, change: str) -> str:
    """API v2 changes: one id per (type, what changed, for whom)."""
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{event_type}|{change}"))


def callback_body(*, event_id: str, event_type: str, created_at: datetime, data: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed); stored once so every attempt sends the same body."""
    return orjson.dumps({"event_id": event_id, "type": event_type, "created_at": created_at.isoformat(), "data": data})


def sign(secret: str, body: bytes, *, timestamp: int) -> str:
    """The ``Chat4All-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the v1 HMAC matches and the timestamp is recent (replay window)."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp=timestamp).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, candidate) for candidate in fields.get("v1", []))


def retry_delay_s(retry: int, *, base_s: float) -> float:
    """Backoff before retry number ``retry`` (1, 2, 3 ...): base, 2×base, 4×base ..."""
    return base_s * 2 ** (retry - 1)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a callback: what the endpoint answered, or why there was no answer."""

    attempt: int  # 1 = the first try
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class CallbackDelivery:
    """A callback and every attempt made so far (GET /v1/webhooks/{id}/deliveries)."""

    id: int
    event_id: str
    type: EventType
    body: bytes
    state: DeliveryState
    created_at: datetime
    next_attempt_at: datetime | None  # when the next attempt is due, while pending
    finished_at: datetime | None
    last_error: str | None
    attempts: list[Attempt]
