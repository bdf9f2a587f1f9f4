"""Connectors (R9, R14): their configuration, the external deliveries waiting for them, and
the provider message ids of bridged messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chat4all.domain.connectors import ConnectorConfig
from chat4all.domain.models import Message
from chat4all.ports.delivery import DeliveryKey


class ConnectorConfigStore(Protocol):
    """Connector configuration: metadata, so etcd in production (the database in embedded).
    Routers re-read it periodically and rebuild what changed (R9.3)."""

    async def list_configs(self) -> list[ConnectorConfig]:
        """Every channel's configuration, by channel name."""

    async def get_config(self, channel: str) -> ConnectorConfig | None: ...

    async def put_config(self, config: ConnectorConfig) -> None:
        """Creates or replaces the channel's configuration."""

    async def add_config(self, config: ConnectorConfig) -> bool:
        """Creates it only if the channel has none yet; True if this call did."""

    async def delete_config(self, channel: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """An external delivery a dispatcher holds until it records the attempt (or its lease lapses)."""

    key: DeliveryKey
    message: Message
    attempts: int  # attempts made before this one
    traceparent: str | None = None  # the router's span for the message (the send is its child)


@dataclass(frozen=True, slots=True)
class ConnectorLink:
    """A provider's message id for a bridged message: replies to it come back to its conversation."""

    channel: str
    external_id: str
    provider_message_id: str
    message_id: str
    conversation_id: str
    username: str
    created_at: datetime


class DeliveryQueue(Protocol):
    """The external deliveries waiting for a connector; the state lives in the delivery rows
    (``attempts``, ``next_attempt_at``), so a restarted dispatcher resumes pending retries.
    Claims only: the outcome of an attempt is written through ``DeliveryStore``."""

    async def due_channels(self, *, now: datetime) -> set[str]:
        """Channels with at least one delivery due."""

    async def claim(
        self,
        *,
        now: datetime,
        limit: int,
        claimer: str,
        lease_s: float,
        channels: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedDelivery]:
        """Due SENT deliveries of these channels (or of every channel but ``exclude``), at most
        one per (recipient, channel, conversation) — the lowest pending sequence number, so a
        later message never overtakes an earlier one — held by ``claimer`` for ``lease_s``."""

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        """Makes the deliveries held by ``claimer`` (None: by anyone) due now (at start-up)."""


class ConnectorLinks(Protocol):
    async def find(self, channel: str, external_id: str, provider_message_id: str) -> ConnectorLink | None: ...

    async def latest(self, channel: str, external_id: str) -> ConnectorLink | None:
        """The most recent message bridged to this identity."""
