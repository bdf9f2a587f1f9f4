"""Inbound calls from channel providers (``POST /v1/connectors/{channel}/webhook``).

The channel's connector authenticates and parses the call into InboundEvents; then:

- a receipt moves the delivery of that message to the person behind the channel identity
  (DELIVERED, READ) through the delivery service — forward only, like any receipt;
- a message posts into the platform as the user mapped to the identity, in the conversation
  of the bridged message it replies to, else of the last message bridged to them (R14.3). Its
  message_id derives from the provider's id, so a provider's redelivery is a duplicate. It goes
  to the other members on every channel they are reachable on (``"all"``: their sockets and
  each channel identity they mapped), so a WhatsApp user's reply reaches an Instagram member
  over Instagram, each delivery with its own status like any outbound message.

A message from an identity nobody holds yet may carry the code of a pending claim of it: then
it links the identity to the claimant (``UserService.prove``) and is not posted anywhere.

Events that name nobody we know (an unmapped identity, an unknown message) are ignored and
counted, so the provider gets its 200 and does not retry them forever.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from chat4all.connectors.base import (
    InboundEvent,
    InboundMessage,
    InboundReceipt,
    WebhookRequest,
)
from chat4all.connectors.hub import ConnectorHub
from chat4all.domain import identities
from chat4all.domain.errors import Chat4AllError, InvalidInput, NotFound, Unavailable
from chat4all.domain.ids import parse_uuid
from chat4all.domain.models import ALL_CHANNELS
from chat4all.domain.status import DeliveryStatus
from chat4all.observability.logging import get_logger
from chat4all.ports import ConnectorLinks, MetadataStore
from chat4all.services.deliveries import DeliveryService
from chat4all.services.messages import MessageService
from chat4all.services.users import UserService

log = get_logger(__name__)
_INBOUND_IDS = uuid.UUID("6f0c2a4e-96e1-4d6b-9a43-2f3c1b7d8e55")


@dataclass(frozen=True, slots=True)
class InboundOutcome:
    accepted: int
    ignored: int


def inbound_message_id(channel: str, external_id: str, provider_message_id: str) -> str:
    return str(uuid.uuid5(_INBOUND_IDS, f"{channel}\x00{external_id}\x00{provider_message_id}"))


class InboundService:
    def __init__(
        self,
        *,
        hub: ConnectorHub,
        metadata: MetadataStore,
        links: ConnectorLinks,
        deliveries: DeliveryService,
        messages: MessageService,
        users: UserService | None = None,
    ) -> None:
        self._users = users
        self._hub = hub
        self._metadata = metadata
        self._links = links
        self._deliveries = deliveries
        self._messages = messages

    async def handle(
        self, channel: str, *, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]
    ) -> InboundOutcome:
        live = self._hub.get(channel)
        if live is None:
            raise NotFound(f"no connector is enabled for the channel {channel!r}")
        request = WebhookRequest(headers={k.lower(): v for k, v in headers.items()}, body=body, query=dict(query))
        try:
            events = await live.connector.handle_webhook(request)
        except Chat4AllError:
            raise
        except Exception as exc:  # a connector's bug answers 422, never 500
            log.exception("connector could not read an inbound call", channel=channel)
            raise InvalidInput(f"the {channel} connector could not read this call") from exc
        accepted = 0
        for event in events:
            accepted += await self._one(channel, event)
        return InboundOutcome(accepted=accepted, ignored=len(events) - accepted)

    async def _one(self, channel: str, event: InboundEvent) -> int:
        # identities are mapped in one spelling (E.164 for phone numbers); the provider's may differ
        external_id = identities.lenient(channel, event.external_id)
        username = await self._metadata.find_user_by_channel(channel, external_id)
        if username is None and isinstance(event, InboundMessage) and self._users is not None:
            claimant = await self._users.prove(channel, external_id, event.text)
            if claimant is not None:
                log.info("channel identity linked by its code", channel=channel, username=claimant)
                return 1
        if username is None:
            log.info("inbound event from an unmapped identity ignored", channel=channel, external_id=event.external_id)
            return 0
        if isinstance(event, InboundReceipt):
            return await self._receipt(channel, username, event)
        return await self._message(channel, username, event)

    async def _receipt(self, channel: str, username: str, event: InboundReceipt) -> int:
        if event.status not in (DeliveryStatus.DELIVERED, DeliveryStatus.READ):
            return 0
        message_id = _uuid_or_none(event.message_id)
        if message_id is None and event.provider_message_id:
            link = await self._links.find(channel, event.external_id, event.provider_message_id)
            message_id = link.message_id if link else None
        if message_id is None:
            return 0
        await self._deliveries.record(username=username, channel=channel, message_ids=[message_id], status=event.status)
        return 1

    async def _message(self, channel: str, username: str, event: InboundMessage) -> int:
        link = None
        if event.reply_to:
            link = await self._links.find(channel, event.external_id, event.reply_to)
        if link is None:
            link = await self._links.latest(channel, event.external_id)
        if link is None:
            log.info("inbound message with no bridged conversation ignored", channel=channel, username=username)
            return 0
        try:
            await self._messages.accept(
                caller=username,
                conversation_id=link.conversation_id,
                message_id=inbound_message_id(channel, event.external_id, event.provider_message_id),
                payload={"type": "text", "text": event.text},
                channels=[ALL_CHANNELS],  # bridged to the other members' channels too
                metadata={"via": channel},
            )
        except Unavailable:
            raise  # 503: the provider retries
        except Chat4AllError as exc:  # e.g. no longer a member, text too long
            log.info("inbound message refused", channel=channel, username=username, code=exc.code, reason=exc.message)
            return 0
        return 1


def _uuid_or_none(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return parse_uuid(value)
    except ValueError:
        return None
