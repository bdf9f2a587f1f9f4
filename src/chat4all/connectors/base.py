"""What a connector is (R9.1): the protocol every channel plugin implements, and the typed
records that cross it.

A plugin is an entry point in the group ``chat4all.connectors`` whose object is a factory —
usually the connector class itself — called with a :class:`ConnectorContext`::

    [project.entry-points."chat4all.connectors"]
    acme = "acme_chat4all:AcmeConnector"

The core never imports a plugin by name: the built-in connectors are registered the same way
(see ``pyproject.toml``). ``docs/connectors.md`` walks through writing one.

Errors: ``send_message``/``send_file`` raise :class:`TransientError` (retried with backoff),
:class:`RateLimited` (retried no sooner than ``retry_after_s``) or :class:`PermanentError` (the
delivery fails at once, with the reason). ``handle_webhook`` raises ``Unauthenticated`` (no
credential, 401), ``Forbidden`` (wrong credential, 403) or ``InvalidInput`` (malformed, 422).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from chat4all.domain.errors import Forbidden, InvalidInput, Unauthenticated
from chat4all.domain.status import DeliveryStatus

__all__ = [
    "Capabilities",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorFactory",
    "DeliveryResult",
    "DeliveryStatus",
    "Forbidden",
    "InboundEvent",
    "InboundMessage",
    "InboundReceipt",
    "InvalidInput",
    "OutboundFile",
    "OutboundMessage",
    "PermanentError",
    "RateLimited",
    "TransientError",
    "Unauthenticated",
    "WebhookRequest",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a channel can do; the dispatcher adapts what it sends to it."""

    # files up to this size go through send_file; larger ones (or any, if None) are sent as a
    # text with a download link
    max_file_bytes: int | None = None
    # texts longer than this are the connector's business (split or cut); None: no limit
    max_text_chars: int | None = None
    # the provider reports DELIVERED / READ later through the webhook
    supports_delivery_receipts: bool = False
    supports_read_receipts: bool = False


@dataclass(frozen=True, slots=True)
class ConnectorContext:
    """Everything a connector is built from."""

    channel: str
    options: Mapping[str, Any]
    # where this channel's provider must POST inbound events: .../v1/connectors/{channel}/webhook
    webhook_url: str


@dataclass(frozen=True, slots=True)
class OutboundFile:
    file_id: str
    filename: str
    size: int
    content_type: str
    # a download URL that works with no token until url_expires_at
    url: str
    url_expires_at: datetime
    sha256: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One message for one recipient on this channel."""

    message_id: str
    conversation_id: str
    sequence_number: int
    sender: str
    recipient: str  # the platform username
    external_id: str  # the recipient's identity on the channel (chat id, phone number, ...)
    text: str | None  # the text, or a file's caption
    file: OutboundFile | None
    metadata: Mapping[str, Any]
    created_at: datetime
    attempt: int  # 1 for the first try


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    # True: the provider confirms the recipient has it (→ DELIVERED now); False: accepted, a
    # receipt may follow through the webhook
    delivered: bool = False
    # the provider's ids of what it created: replies to them find their way back (R14.3)
    provider_message_ids: tuple[str, ...] = ()
    detail: str | None = None


class ConnectorError(Exception):
    permanent = False

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class TransientError(ConnectorError):
    """Worth another try later: network error, timeout, 5xx."""


class RateLimited(TransientError):
    """The provider asks to slow down; the next try waits at least ``retry_after_s``."""


class PermanentError(ConnectorError):
    """Another try cannot succeed (4xx-like): the delivery fails with this reason."""

    permanent = True


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboundReceipt:
    """The provider says a message reached (or was read by) the person behind ``external_id``."""

    external_id: str
    status: DeliveryStatus  # DELIVERED or READ
    message_id: str | None = None  # ours, when the provider echoes it back
    provider_message_id: str | None = None  # else theirs, as returned by a send


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """Someone wrote to the platform from the channel (e.g. replied to a bridged message)."""

    external_id: str
    text: str
    provider_message_id: str  # unique per channel and sender: a repeat is a duplicate
    reply_to: str | None = None  # the provider id of the bridged message it answers


InboundEvent = InboundReceipt | InboundMessage


@runtime_checkable
class Connector(Protocol):
    capabilities: Capabilities

    async def connect(self) -> None:
        """Checks credentials and opens clients; raises PermanentError if it never can."""

    async def send_message(self, message: OutboundMessage) -> DeliveryResult: ...

    async def send_file(self, message: OutboundMessage) -> DeliveryResult:
        """Only called for files within ``capabilities.max_file_bytes``."""

    async def handle_webhook(self, request: WebhookRequest) -> Sequence[InboundEvent]:
        """Authenticates and parses one inbound call from the provider."""

    async def disconnect(self) -> None: ...


ConnectorFactory = Callable[[ConnectorContext], Connector]
