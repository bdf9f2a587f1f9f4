"""What each consumed topic becomes for webhooks: one ``CallbackSource`` per topic.

A source decodes a log record, names the webhook owner it concerns, and turns a batch of its
events into callbacks for the owners' subscribed webhooks. Adding a topic is writing a source
and listing it in ``runtime.webhook_sources``.

Status callbacks keep each delivery's steps in order and complete: the StatusEvent of a later
step can reach the log before an earlier one (the recipient acknowledges a pushed message
before the router has announced SENT), or an earlier one can be lost (a crash between the
status commit and its append). So before a DELIVERED, READ or FAILED callback, the steps it
implies that are not in the outbox yet are taken from the durable status history and enqueued
first; event ids are deterministic, so when the earlier event does arrive it is a duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from chat4all.domain.events import FileEvent, StatusEvent
from chat4all.domain.frames import message_view
from chat4all.domain.models import StatusChange
from chat4all.domain.status import DeliveryStatus
from chat4all.domain.webhooks import (
    FILE_COMPLETED,
    MESSAGE_RECEIVED,
    MESSAGE_STATUS,
    EventType,
    Webhook,
    callback_body,
    file_event_id,
    received_event_id,
    status_event_id,
)
from chat4all.ports import Callback, MessageStore, WebhookOutbox

# the steps a delivery has been through when it reaches a status
_EARLIER: dict[DeliveryStatus, tuple[DeliveryStatus, ...]] = {
    DeliveryStatus.SENT: (),
    DeliveryStatus.DELIVERED: (DeliveryStatus.SENT,),
    DeliveryStatus.READ: (DeliveryStatus.SENT, DeliveryStatus.DELIVERED),
    DeliveryStatus.FAILED: (DeliveryStatus.SENT,),
}


class CallbackSource(Protocol):
    topic: str

    def decode(self, raw: bytes) -> Any:
        """The event; ValueError (pydantic's ValidationError is one) if unreadable."""

    def owner(self, event: Any) -> str: ...

    async def callbacks(self, events: Sequence[Any], webhooks: Mapping[str, Sequence[Webhook]]) -> list[Callback]:
        """Callbacks for ``events``, in order, for the owners' webhooks (``webhooks``) that want them."""


class StatusCallbacks:
    """``status.events`` → ``message.status`` callbacks for the message's sender."""

    topic = StatusEvent.topic

    def __init__(self, *, messages: MessageStore, outbox: WebhookOutbox) -> None:
        self._messages = messages
        self._outbox = outbox

    def decode(self, raw: bytes) -> StatusEvent:
        event = StatusEvent.decode(raw)
        assert isinstance(event, StatusEvent)
        return event

    def owner(self, event: StatusEvent) -> str:
        return event.sender

    async def callbacks(
        self, events: Sequence[StatusEvent], webhooks: Mapping[str, Sequence[Webhook]]
    ) -> list[Callback]:
        wanted = [(e, w) for e in events for w in webhooks.get(e.sender, ()) if w.wants(MESSAGE_STATUS)]
        if not wanted:
            return []
        earlier = {(w.webhook_id, eid) for e, w in wanted for eid in _earlier_ids(e)}
        enqueued = await self._outbox.known(sorted(earlier))
        histories: dict[str, list[StatusChange]] = {}  # read only when a step is missing

        callbacks: dict[tuple[str, str], Callback] = {}  # insertion-ordered, first occurrence wins
        for event, webhook in wanted:
            # an earlier step is missing if neither the outbox nor this batch (so far) has it;
            # one later in the batch is taken from the history now and skipped as a repeat then
            gaps = {
                eid
                for eid in _earlier_ids(event)
                if (webhook.webhook_id, eid) not in enqueued and (webhook.webhook_id, eid) not in callbacks
            }
            if gaps:
                if event.message_id not in histories:
                    histories[event.message_id] = await self._messages.history(event.message_id)
                for change in _steps(histories[event.message_id], event, gaps, since=webhook.created_at):
                    _add(callbacks, _status_callback(webhook, change, event.conversation_id, event.traceparent))
            _add(callbacks, _status_callback(webhook, _change(event), event.conversation_id, event.traceparent))
        return list(callbacks.values())


def _earlier_ids(event: StatusEvent) -> list[str]:
    """The event ids of the steps this delivery went through before ``event``."""
    return [status_event_id(event.message_id, event.username, event.channel, s) for s in _EARLIER[event.status]]


def _steps(history: Sequence[StatusChange], event: StatusEvent, event_ids: set[str], *, since: datetime) -> list[StatusChange]:
    """The recorded changes of ``event``'s delivery with these event ids, from ``since`` on, in order."""
    return [
        h
        for h in history
        if h.username == event.username
        and h.channel == event.channel
        and status_event_id(h.message_id, h.username, h.channel, h.status) in event_ids
        and h.at >= since
    ]


class ReceivedCallbacks:
    """``status.events`` → ``message.received`` callbacks for the message's recipients (API v2).

    The router already stores a SENT status (and its StatusEvent, through the outbox) for every
    delivery in the transaction that persists the message: that event is the signal, so the hot
    path writes nothing more. One callback per message and recipient (event id from both), the
    message read in one query per batch and only for recipients whose webhooks want it. Its own
    consumer group on the topic (``name``), beside the status callbacks'.
    """

    topic = StatusEvent.topic
    name = MESSAGE_RECEIVED

    def __init__(self, *, messages: MessageStore) -> None:
        self._messages = messages

    def decode(self, raw: bytes) -> StatusEvent:
        event = StatusEvent.decode(raw)
        assert isinstance(event, StatusEvent)
        return event

    def owner(self, event: StatusEvent) -> str:
        return event.username

    async def callbacks(
        self, events: Sequence[StatusEvent], webhooks: Mapping[str, Sequence[Webhook]]
    ) -> list[Callback]:
        wanted = [
            (e, w)
            for e in events
            if e.status is DeliveryStatus.SENT
            for w in webhooks.get(e.username, ())
            if w.wants(MESSAGE_RECEIVED)
        ]
        if not wanted:
            return []
        stored = await self._messages.get_messages(sorted({e.message_id for e, _ in wanted}))
        callbacks: dict[tuple[str, str], Callback] = {}
        for event, webhook in wanted:
            message = stored.get(event.message_id)
            if message is None or message.created_at < webhook.created_at:
                continue  # not stored (cannot be: SENT is written with it), or before the webhook
            data = {"recipient": event.username, "message": received_view(message)}
            event_id = received_event_id(event.message_id, event.username)
            _add(
                callbacks,
                _callback(webhook, event_id, MESSAGE_RECEIVED, event.message_id, event.at, data, event.traceparent),
            )
        return list(callbacks.values())


def received_view(message: Any) -> dict[str, Any]:
    """The message as v2 shows it (docs/api-v2.md): v1's view plus kind, edited_at, deleted."""
    return {**message_view(message), "kind": "user", "edited_at": None, "deleted": False}


class FileCallbacks:
    """``file.events`` → ``file.completed`` callbacks for the file's owner."""

    topic = FileEvent.topic

    def decode(self, raw: bytes) -> FileEvent:
        event = FileEvent.decode(raw)
        assert isinstance(event, FileEvent)
        return event

    def owner(self, event: FileEvent) -> str:
        return event.owner

    async def callbacks(self, events: Sequence[FileEvent], webhooks: Mapping[str, Sequence[Webhook]]) -> list[Callback]:
        callbacks: dict[tuple[str, str], Callback] = {}
        for e in events:
            data = {
                "file_id": e.file_id,
                "filename": e.filename,
                "size": e.size,
                "content_type": e.content_type,
                "sha256": e.sha256,
                "status": "completed",
                "at": e.at.isoformat(),
            }
            for w in webhooks.get(e.owner, ()):
                if w.wants(FILE_COMPLETED):
                    _add(
                        callbacks,
                        _callback(w, file_event_id(e.file_id), FILE_COMPLETED, e.file_id, e.at, data, e.traceparent),
                    )
        return list(callbacks.values())


def _change(e: StatusEvent) -> StatusChange:
    return StatusChange(
        message_id=e.message_id, username=e.username, channel=e.channel, status=e.status, at=e.at, detail=e.detail
    )


def _status_callback(webhook: Webhook, change: StatusChange, conversation_id: str, traceparent: str | None) -> Callback:
    data: dict[str, Any] = {
        "message_id": change.message_id,
        "conversation_id": conversation_id,
        "username": change.username,
        "channel": change.channel,
        "status": change.status.value,
        "at": change.at.isoformat(),
    }
    if change.detail:
        data["detail"] = change.detail
    event_id = status_event_id(change.message_id, change.username, change.channel, change.status)
    return _callback(webhook, event_id, MESSAGE_STATUS, change.message_id, change.at, data, traceparent)


def _callback(
    webhook: Webhook,
    event_id: str,
    event_type: EventType,
    subject_id: str,
    at: datetime,
    data: dict[str, Any],
    traceparent: str | None,
) -> Callback:
    return Callback(
        webhook_id=webhook.webhook_id,
        owner=webhook.owner,
        event_id=event_id,
        type=event_type,
        subject_id=subject_id,
        body=callback_body(event_id=event_id, event_type=event_type, created_at=at, data=data),
        traceparent=traceparent,
    )


def _add(callbacks: dict[tuple[str, str], Callback], callback: Callback) -> None:
    callbacks.setdefault((callback.webhook_id, callback.event_id), callback)
