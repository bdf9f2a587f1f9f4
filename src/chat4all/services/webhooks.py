"""Webhook registrations and their delivery log, as the API offers them (R6.5, R8.5).

A webhook belongs to the user who registered it and receives the events about that user's
messages (and files). Its secret is generated here and shown once, in the answer to the
registration. The URL is checked against the SSRF rules now and again at every delivery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.egress import parse_url
from chat4all.domain.errors import InvalidInput, NotFound
from chat4all.domain.ids import MAX_INT64, new_id
from chat4all.domain.webhooks import EVENT_TYPES, Webhook, new_secret, normalize_events
from chat4all.ports import (
    CallbackDelivery,
    CallbackTransport,
    WebhookOutbox,
    WebhookRegistry,
)


class WebhookLimitReached(InvalidInput):
    code = "webhook_limit_reached"


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[CallbackDelivery]
    next_cursor: str | None


class WebhookService:
    def __init__(
        self,
        *,
        registry: WebhookRegistry,
        outbox: WebhookOutbox,
        transport: CallbackTransport,
        max_per_user: int,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._registry = registry
        self._outbox = outbox
        self._transport = transport
        self._max_per_user = max_per_user

    @property
    def registry(self) -> WebhookRegistry:
        return self._registry

    @property
    def outbox(self) -> WebhookOutbox:
        return self._outbox

    async def register(self, owner: str, *, url: str, events: list[str] | None = None) -> Webhook:
        target = parse_url(url)
        try:
            subscribed = normalize_events(events)
        except ValueError as exc:
            raise InvalidInput(str(exc), details={"supported": ["*", *EVENT_TYPES]}) from None
        if len(await self._registry.owned_by(owner)) >= self._max_per_user:
            raise WebhookLimitReached(f"you can register at most {self._max_per_user} webhooks")
        await self._transport.check(target.url)
        webhook = Webhook(
            webhook_id=new_id(),
            owner=owner,
            url=target.url,
            events=subscribed,
            secret=new_secret(),
            created_at=self._clock(),
        )
        await self._registry.create(webhook)
        return webhook

    async def list_for(self, owner: str) -> list[Webhook]:
        return await self._registry.owned_by(owner)

    async def delete(self, owner: str, webhook_id: str) -> None:
        """Stops delivery at once: the registration goes, then its pending callbacks and log."""
        if not await self._registry.delete(owner, webhook_id):
            raise NotFound("no such webhook")
        await self._outbox.forget(webhook_id)

    async def deliveries(self, owner: str, webhook_id: str, *, limit: int, cursor: str | None) -> DeliveryPage:
        """The webhook's callbacks, newest first, each with every attempt made."""
        if await self._registry.get(owner, webhook_id) is None:
            raise NotFound("no such webhook")
        before = _cursor(cursor)
        items = await self._outbox.deliveries(webhook_id, limit=limit, before=before)
        next_cursor = str(items[-1].id) if len(items) == limit else None
        return DeliveryPage(items=items, next_cursor=next_cursor)


_CURSOR = re.compile(r"[0-9]{1,19}")


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    # ASCII digits only (str.isdigit() also takes "²"), and within the database's 64-bit integers
    if not _CURSOR.fullmatch(cursor) or int(cursor) > MAX_INT64:
        raise InvalidInput(
            "invalid cursor", details=[{"loc": ["query", "cursor"], "msg": "not a cursor of this list", "type": "value_error"}]
        )
    return int(cursor)
