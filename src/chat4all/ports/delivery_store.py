"""The delivery aggregate's writes and the status outbox: held by ``DeliveryService`` only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Protocol

from chat4all.domain.models import Message, StatusChange
from chat4all.ports.connectors import ConnectorLink
from chat4all.ports.delivery import DeliveryKey, Receipt
from chat4all.ports.messaging import NewMessage, PersistResult

Moved = list[tuple[Message, list[StatusChange]]]


class DeliveryStore(Protocol):
    """The delivery aggregate: every write of a delivery's status or retry state.

    Each status change is made forward only (``domain.status``; the operator's requeue of a
    FAILED delivery is the one backward move), recorded in the status history and, in the same
    transaction, as a StatusEvent in the status outbox, except a delivery's creation as SENT
    (``persist_batch``), whose events the router appends itself once the batch is stored (its
    uncommitted input offsets are its outbox). Only ``DeliveryService`` calls this.
    """

    async def persist_batch(self, messages: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        """In one transaction: skip known message_ids, assign dense sequence numbers per
        conversation, insert messages, one SENT delivery per target and its history, and
        remember the conversation each file message shared its file with (R5.5)."""

    async def advance_many(self, receipts: Sequence[Receipt], *, at: datetime) -> Moved:
        """Moves the receipts' deliveries forward (never back) in one transaction, applied in
        the order given (so a READ after a DELIVERED for the same delivery records both).
        Returns, per message that moved, the status changes recorded."""

    async def requeue(self, keys: Sequence[DeliveryKey], *, now: datetime, detail: str) -> Moved:
        """An operator's replay: FAILED deliveries back to SENT, due now, attempts reset, with a
        history entry. Deliveries that are not FAILED are left alone."""

    async def sent(self, key: DeliveryKey, *, attempts: int, links: Sequence[ConnectorLink] = ()) -> None:
        """The provider took an external delivery: no longer pending; remembers the provider's ids."""

    async def retry(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        """An external delivery failed transiently: due again at ``at``, with the reason."""

    async def finish(self, key: DeliveryKey, *, attempts: int) -> None:
        """An external delivery was given up (its status moved to FAILED): no longer pending."""


class StatusOutbox(Protocol):
    """StatusEvents written with the status changes (same transaction), waiting for the relay
    (``workers/outbox_relay.py``) to append them to the log."""

    async def relay(
        self, publish: Callable[[Sequence[tuple[str, bytes]]], Awaitable[None]], *, limit: int = 1000
    ) -> int:
        """Appends up to ``limit`` of the oldest events with ``publish`` and deletes them; how many."""
