"""What moves a delivery: a receipt, and the key that names one delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chat4all.domain.status import DeliveryStatus


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    message_id: str
    username: str
    channel: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """(username, channel) says these messages reached ``status`` (an ack, a read, a provider's
    callback, a failure with its ``detail``)."""

    username: str
    channel: str
    message_ids: Sequence[str]
    status: DeliveryStatus
    detail: str | None = None
    traceparent: str | None = None  # the span that saw it happen; its StatusEvents carry it
