"""Webhooks (R6.5, R8.5): registrations, the callback outbox and the outbound HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chat4all.domain.webhooks import Attempt, CallbackDelivery, EventType, Webhook


class WebhookRegistry(Protocol):
    """Webhook registrations: metadata, so etcd in production (the database in embedded).

    Every call names the owner: someone else's webhook is simply not found.
    """

    async def create(self, webhook: Webhook) -> None: ...

    async def owned_by(self, owner: str) -> list[Webhook]:
        """Oldest first."""

    async def for_owners(self, owners: Sequence[str]) -> dict[str, list[Webhook]]:
        """The webhooks of each owner that has any (one round trip for a batch of events)."""

    async def get(self, owner: str, webhook_id: str) -> Webhook | None: ...

    async def delete(self, owner: str, webhook_id: str) -> bool: ...

    async def disable(self, owner: str, webhook_id: str, *, reason: str, at: datetime) -> bool:
        """Marks it disabled (no-op if it is gone or already disabled); True if this call did."""


@dataclass(frozen=True, slots=True)
class Callback:
    """One event for one webhook, ready to be put in the outbox."""

    webhook_id: str
    owner: str
    event_id: str
    type: EventType
    subject_id: str  # callbacks of one subject (a message, a file) go out in the order enqueued
    body: bytes  # the exact bytes POSTed (domain.webhooks.callback_body)
    traceparent: str | None = None  # the trace of the event it reports (the POST is its child)


@dataclass(frozen=True, slots=True)
class ClaimedCallback:
    """An outbox row a worker holds until it records the attempt (or its claim lapses)."""

    id: int
    webhook_id: str
    owner: str
    event_id: str
    type: EventType
    subject_id: str
    body: bytes
    attempts: int  # attempts made before this one
    traceparent: str | None = None  # the trace of the event it reports (the POST is its child)


class WebhookOutbox(Protocol):
    """Callbacks to deliver, their attempts, and each webhook's streak of failed callbacks.

    Always in the SQL database: enqueueing is idempotent on (webhook_id, event_id) and the
    delivery state lives in the rows, so a restarted worker resumes where the last one stopped.
    """

    async def enqueue(self, callbacks: Sequence[Callback], *, now: datetime) -> int:
        """Stores the callbacks not stored yet, in the given order, due now; returns how many were new."""

    async def known(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (webhook_id, event_id) pairs are already in the outbox."""

    async def claim(self, *, now: datetime, limit: int, claimer: str, lease_s: float) -> list[ClaimedCallback]:
        """Due pending callbacks, at most one per (webhook, subject) — the oldest pending one, so a
        later event never overtakes an earlier one — held by ``claimer`` for ``lease_s``."""

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        """Makes the callbacks held by ``claimer`` (None: by anyone) due now (at start-up)."""

    async def record(
        self, callback: ClaimedCallback, attempt: Attempt, *, retry_at: datetime | None, now: datetime
    ) -> int:
        """Stores the attempt. Success: delivered, and the webhook's failure streak resets.
        Failure: due again at ``retry_at``, or failed for good if None (the streak grows).
        Returns the webhook's streak of consecutive failed callbacks."""

    async def cancel(self, webhook_id: str, *, reason: str, now: datetime) -> int:
        """Cancels the webhook's pending callbacks (it was disabled)."""

    async def forget(self, webhook_id: str) -> None:
        """Deletes everything about the webhook (it was deleted)."""

    async def deliveries(self, webhook_id: str, *, limit: int, before: int | None) -> list[CallbackDelivery]:
        """Newest first; ``before`` is the id of the last one seen."""

    async def prune(self, *, finished_before: datetime) -> int:
        """Deletes delivered, failed and cancelled callbacks finished before then."""


class CallbackTransport(Protocol):
    """The outbound HTTP of webhooks, with the SSRF rules (``domain.egress``) built in."""

    async def start(self) -> None:
        """Opens the HTTP client (the webhook worker does, before its first ``post``)."""

    async def close(self) -> None: ...

    async def check(self, url: str) -> None:
        """Raises InvalidInput for a malformed URL, UrlNotAllowed if it resolves to an address
        the policy refuses (or does not resolve)."""

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int | None, str | None]:
        """One attempt, checked again and sent to the address that was checked, never following
        redirects, never raising: (status code, None) if the endpoint answered, else (None, why)."""
