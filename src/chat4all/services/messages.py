"""Sending and reading messages (R4, R6.4, R12).

``accept`` validates and appends a MessageEvent to the log; nothing else happens in the
request. The router persists it (``workers/router.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry.trace import SpanKind

from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnknownUser,
    UnsupportedChannel,
)
from chat4all.domain.events import MessageEvent
from chat4all.domain.ids import new_id, parse_uuid
from chat4all.domain.models import ALL_CHANNELS, INTERNAL, Channel, Delivery, Message, StatusChange
from chat4all.domain.status import DeliveryStatus, aggregate
from chat4all.observability import metrics
from chat4all.observability.tracing import current_traceparent, end_span, start_span, traceparent_of
from chat4all.ports import AcceptedIds, EventLog, MessageStore
from chat4all.services.abuse import AbuseGuard
from chat4all.services.conversations import ConversationService
from chat4all.services.files import FileService

MAX_METADATA_KEYS = 50
# the rate counters and the idempotency record are helpers of the accept path, not its
# durability: one that does not answer within this (Redis failing over) is skipped
SIDE_STORE_TIMEOUT_S = 1.0
_MESSAGE_OVERHEAD_BYTES = 300  # ids, sender, recipients, timestamps of a message as JSON, roughly
_EVERY_CHANNEL = tuple(c.value for c in Channel)


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str
    conversation_id: str
    status: str  # "accepted", or a duplicate's current status
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class MessageStatus:
    message_id: str
    status: DeliveryStatus
    deliveries: list[Delivery]
    history: list[StatusChange]


@dataclass(frozen=True, slots=True)
class MessagePage:
    items: list[Message]
    next_since: int | None


class MessageService:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        messages: MessageStore,
        log: EventLog,
        max_text_chars: int,
        supported_channels: Collection[str] = _EVERY_CHANNEL,
        files: FileService | None = None,
        guard: AbuseGuard | None = None,
        accepted_ids: AcceptedIds | None = None,
        max_metadata_bytes: int = 16_384,
        history_page_max_bytes: int = 4 * 1024**2,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._guard = guard
        self._accepted_ids = accepted_ids
        self._max_metadata_bytes = max_metadata_bytes
        self._history_max_bytes = history_page_max_bytes
        self._conversations = conversations
        self._messages = messages
        self._log = log
        self._max_text = max_text_chars
        # a live view when connectors can be installed or configured while running (R9.2, R9.3)
        self._channels = supported_channels
        self._files = files

    async def accept(
        self,
        *,
        caller: str,
        conversation_id: str,
        payload: dict[str, Any],
        message_id: str | None = None,
        sender: str | None = None,
        recipients: Sequence[str] | None = None,
        channels: Sequence[str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Accepted:
        if sender is not None and sender != caller:
            raise Forbidden("you can only send messages as yourself")
        conversation = await self._conversations.get(conversation_id, viewer=caller)
        client_chose_id = message_id is not None
        message_id = _message_id(message_id)
        recipients = self._recipients(caller, conversation.members, recipients)
        channels = self._check_channels(channels)
        payload = await self._check_payload(payload, caller)
        metadata = self._check_metadata(metadata or {})

        # only an id the client chose can be a retry; one made here is new by construction
        if client_chose_id:
            existing = await self._stored(message_id)
            if existing is not None:
                return await self._duplicate(existing, caller)
        if self._guard is not None:
            try:
                async with asyncio.timeout(SIDE_STORE_TIMEOUT_S):
                    await self._guard.send(caller, len(recipients))
            except (Unavailable, TimeoutError):  # the counters' store fails over: sends are not refused for it
                metrics.MESSAGES.labels("limits_skipped").inc()
        claimed = retry_of_unstored = False
        if client_chose_id and self._accepted_ids is not None:
            # a retry that arrives before the router stored the first is a duplicate all the same
            try:
                async with asyncio.timeout(SIDE_STORE_TIMEOUT_S):
                    holder = await self._accepted_ids.claim(
                        message_id, sender=caller, conversation_id=conversation.conversation_id
                    )
            except (Unavailable, TimeoutError):  # as for the duplicate check: the router's dedup still holds
                metrics.MESSAGES.labels("duplicate_check_skipped").inc()
                holder = None
            else:
                claimed = holder is None
            if holder is not None:
                earlier = await self._accepted_earlier(message_id, holder, caller)
                if earlier is not None:
                    return earlier
                # the attempt that claimed the id may have died before its append (a node killed
                # mid-request, the gateway retrying here): append again — the router keeps one —
                # and answer as the duplicate it is
                retry_of_unstored = True

        # with tracing on, the append is a PRODUCER span; the router's span is its child
        request = current_traceparent.get()
        producer = start_span(
            f"publish {MessageEvent.topic}",
            parent=request,
            kind=SpanKind.PRODUCER,
            attributes={"messaging.destination.name": MessageEvent.topic, "messaging.message.id": message_id},
        )
        encoded = MessageEvent.encode_accepted(
            message_id=message_id,
            conversation_id=conversation.conversation_id,
            sender=caller,
            recipients=recipients,
            channels=channels,
            payload=payload,
            metadata=metadata,
            accepted_at=self._clock(),
            traceparent=request if producer is None else traceparent_of(producer),
        )
        try:
            await self._log.append(MessageEvent.topic, conversation.conversation_id, encoded)
        except BaseException as exc:
            end_span(producer, exc)
            if claimed and isinstance(exc, Exception):  # not on the log: a retry must be able to take the id
                await self._release(message_id)
            raise
        end_span(producer)
        metrics.MESSAGES.labels("duplicate" if retry_of_unstored else "accepted").inc()
        return Accepted(
            message_id=message_id, conversation_id=conversation.conversation_id, status="accepted", duplicate=retry_of_unstored
        )

    async def _stored(self, message_id: str) -> Message | None:
        """The stored message of a client-chosen id, or None. While the store cannot answer
        (a database failover) the send goes on to the log: the router drops a duplicate by
        message_id all the same, and sends keep answering 202 as long as the log takes them."""
        try:
            return await self._messages.get_message(message_id)
        except Unavailable:
            metrics.MESSAGES.labels("duplicate_check_skipped").inc()
            return None

    async def _accepted_earlier(self, message_id: str, holder: tuple[str, str], caller: str) -> Accepted | None:
        """The answer to a retry of an id claimed before: the stored message's status, or None
        when it is not stored yet (the caller appends it again: a claim does not prove the append)."""
        sender, _conversation_id = holder
        if sender != caller:
            raise Conflict("this message_id is already used")
        existing = await self._stored(message_id)
        if existing is not None:  # the router stored it meanwhile
            return await self._duplicate(existing, caller)
        return None

    async def _release(self, message_id: str) -> None:
        assert self._accepted_ids is not None
        try:
            await self._accepted_ids.release(message_id)
        except Exception:  # noqa: BLE001, S110 - the record expires with its TTL; a retry meanwhile answers duplicate
            pass

    def _check_metadata(self, metadata: dict[str, Any]) -> dict[str, Any]:
        if len(metadata) > MAX_METADATA_KEYS:
            raise InvalidInput(f"metadata has at most {MAX_METADATA_KEYS} keys")
        if not metadata:
            return metadata
        for key, value in metadata.items():
            if isinstance(value, str) and len(value) > self._max_text:
                raise PayloadTooLarge(f"metadata value {key!r} is longer than {self._max_text} characters")
        if len(orjson.dumps(metadata)) > self._max_metadata_bytes:
            raise PayloadTooLarge(f"metadata is larger than {self._max_metadata_bytes} bytes as JSON")
        return metadata

    async def _duplicate(self, existing: Message, caller: str) -> Accepted:
        if existing.sender != caller:
            raise Conflict("this message_id is already used")
        deliveries = await self._messages.deliveries(existing.message_id)
        metrics.MESSAGES.labels("duplicate").inc()
        return Accepted(
            message_id=existing.message_id,
            conversation_id=existing.conversation_id,
            status=aggregate(d.status for d in deliveries).value,
            duplicate=True,
        )

    def _recipients(self, caller: str, members: Sequence[str], requested: Sequence[str] | None) -> list[str]:
        others = [m for m in members if m != caller]
        if requested is None:
            return others
        wanted = list(dict.fromkeys(requested))
        if not wanted:
            raise InvalidInput("'to' must name at least one recipient")
        if caller in wanted:
            raise InvalidInput("you cannot send a message to yourself")
        strangers = sorted(set(wanted) - set(others))
        if strangers:
            raise UnknownUser(
                f"not members of this conversation: {', '.join(strangers)}", details={"unknown": strangers}
            )
        return wanted

    def _check_channels(self, channels: Sequence[str] | None) -> list[str]:
        if channels is None:
            return [INTERNAL]
        wanted = list(dict.fromkeys(channels))
        if not wanted:
            raise InvalidInput("'channels' must name at least one channel")
        unknown = sorted(c for c in wanted if c not in self._channels and c != ALL_CHANNELS)
        if unknown:
            raise UnsupportedChannel(
                f"unsupported channels: {', '.join(unknown)}",
                details={"unsupported": unknown, "supported": sorted({*self._channels, ALL_CHANNELS})},
            )
        return wanted

    async def _check_payload(self, payload: dict[str, Any], caller: str) -> dict[str, Any]:
        if payload.get("type") == "text":
            if len(payload.get("text", "")) > self._max_text:
                raise PayloadTooLarge(f"text is longer than {self._max_text} characters")
        elif payload.get("type") == "file":
            if len(payload.get("caption") or "") > self._max_text:
                raise PayloadTooLarge(f"caption is longer than {self._max_text} characters")
            # a completed file of the sender's; the message carries its metadata (R5.5)
            if self._files is None:
                raise InvalidInput("no completed file with this file_id", code="file_not_ready")
            file = await self._files.attachable(str(payload.get("file_id", "")), sender=caller)
            return {**payload, **file}
        return payload

    # reading ---------------------------------------------------------------------------------

    async def get(self, message_id: str, *, viewer: str) -> Message:
        return await self._visible(message_id, viewer)

    async def status(self, message_id: str, *, viewer: str) -> MessageStatus:
        message = await self._visible(message_id, viewer)
        if message.sender != viewer:
            raise NotFound("no such message")  # only the sender follows a message's status
        deliveries = await self._messages.deliveries(message.message_id)
        history = await self._messages.history(message.message_id)
        return MessageStatus(
            message_id=message.message_id,
            status=aggregate(d.status for d in deliveries),
            deliveries=deliveries,
            history=history,
        )

    async def history(self, conversation_id: str, *, viewer: str, since: int = 0, limit: int = 100) -> MessagePage:
        if since < 0:
            raise InvalidInput("since must be 0 or more")
        if not 1 <= limit <= 500:
            raise InvalidInput("limit must be between 1 and 500")
        conversation = await self._conversations.get(conversation_id, viewer=viewer)
        items = await self._messages.list_messages(
            conversation.conversation_id, viewer=viewer, since=since, limit=limit
        )
        items = self._within_budget(items)
        return MessagePage(items=items, next_since=items[-1].sequence_number if items else None)

    def _within_budget(self, items: list[Message]) -> list[Message]:
        """The page stops before it passes ``history_page_max_bytes`` (at least one message);
        the client goes on from ``next_since`` as after any page."""
        used = 0
        for i, m in enumerate(items):
            used += _MESSAGE_OVERHEAD_BYTES + len(orjson.dumps(m.payload)) + len(orjson.dumps(m.metadata))
            used += sum(len(r) + 3 for r in m.recipients)
            if used > self._history_max_bytes and i > 0:
                return items[:i]
        return items

    async def _visible(self, message_id: str, viewer: str) -> Message:
        try:
            message_id = parse_uuid(message_id)
        except ValueError:
            raise NotFound("no such message") from None
        message = await self._messages.get_message(message_id)
        if message is None or (viewer != message.sender and viewer not in message.recipients):
            raise NotFound("no such message")
        return message


def _message_id(value: str | None) -> str:
    if value is None:
        return new_id()
    try:
        return parse_uuid(value)
    except ValueError:
        raise InvalidInput("message_id must be a UUID") from None
