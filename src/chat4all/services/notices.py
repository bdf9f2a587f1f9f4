"""What API v2 tells the users concerned when a conversation or a message changes: frames on
their sockets (through the Push every node shares) and webhook callbacks (through the webhook
outbox, signed and retried like every callback).

Callbacks are enqueued after the change is committed; their event ids are derived from the
change, so a repeat of the same change never enqueues twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from chat4all.domain.errors import Unavailable
from chat4all.domain.frames import Frame
from chat4all.domain.ids import utcnow
from chat4all.domain.models import Message
from chat4all.domain.views import conversation_frame, message_updated_frame, read_cursor_frame, v2_message
from chat4all.domain.webhooks import (
    CONVERSATION_UPDATED,
    MESSAGE_DELETED,
    MESSAGE_UPDATED,
    EventType,
    callback_body,
    change_event_id,
)
from chat4all.observability.logging import get_logger
from chat4all.ports import Callback, Push, WebhookOutbox, WebhookRegistry

log = get_logger(__name__)


class Notices:
    def __init__(
        self,
        *,
        push: Push,
        registry: WebhookRegistry | None = None,
        outbox: WebhookOutbox | None = None,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self._push = push
        self._registry = registry
        self._outbox = outbox
        self._on_enqueued = on_enqueued

    async def frames(self, frames: Sequence[tuple[str, Frame]]) -> None:
        """To every socket of each user, on whichever node holds it; a push outage is logged, not raised
        (the change is stored: clients see it on their next sync)."""
        if not frames:
            return
        try:
            await self._push.send(frames)
        except Unavailable:
            log.warning("v2 frames not pushed: push is unavailable", frames=len(frames))

    async def message_changed(self, message: Message) -> None:
        """An edit or a delete: ``message_updated`` to everyone who sees the message, and
        ``message.updated`` / ``message.deleted`` to their webhooks."""
        audience = list(dict.fromkeys([message.sender, *message.recipients]))
        frame = message_updated_frame(message)
        await self.frames([(u, frame) for u in audience])
        kind = MESSAGE_DELETED if message.deleted else MESSAGE_UPDATED
        version = "deleted" if message.deleted else (message.edited_at.isoformat() if message.edited_at else "")
        await self.callbacks(
            kind,
            subject_id=message.message_id,
            change=f"{message.message_id}|{version}",
            data={user: {"recipient": user, "message": v2_message(message)} for user in audience},
        )

    async def read_cursor(self, username: str, conversation_id: str, up_to: int, unread: int) -> None:
        await self.frames([(username, read_cursor_frame(conversation_id, up_to, unread))])

    async def conversation(self, event: str, summaries: dict[str, dict[str, Any]], *, change: str, at: datetime) -> None:
        """A ``conversation`` frame to each user concerned with their own view of it, and a
        ``conversation.updated`` callback to their webhooks."""
        await self.frames([(u, conversation_frame(event, s)) for u, s in summaries.items()])
        if summaries:
            conversation_id = next(iter(summaries.values()))["conversation_id"]
            await self.callbacks(
                CONVERSATION_UPDATED,
                subject_id=conversation_id,
                change=f"{conversation_id}|{change}|{at.isoformat()}",
                data={u: {"event": event, "conversation": s} for u, s in summaries.items()},
            )

    async def callbacks(self, event_type: EventType, *, subject_id: str, change: str, data: dict[str, dict[str, Any]]) -> None:
        if self._registry is None or self._outbox is None or not data:
            return
        try:
            webhooks = await self._registry.for_owners(sorted(data))
            now = utcnow()
            callbacks: list[Callback] = []
            for owner, hooks in webhooks.items():
                event_id = change_event_id(event_type, f"{change}|{owner}")
                body = callback_body(event_id=event_id, event_type=event_type, created_at=now, data=data[owner])
                callbacks.extend(
                    Callback(webhook_id=w.webhook_id, owner=owner, event_id=event_id, type=event_type, subject_id=subject_id, body=body)
                    for w in hooks
                    if w.wants(event_type)
                )
            if callbacks and await self._outbox.enqueue(callbacks, now=now) and self._on_enqueued is not None:
                self._on_enqueued()
        except Unavailable:
            log.warning("v2 callbacks not enqueued: a store is unavailable", type=event_type, subject_id=subject_id)


def audience_of(*groups: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(u for g in groups for u in g))


def new_change_id() -> str:
    return str(uuid.uuid4())
