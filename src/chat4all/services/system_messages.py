"""System messages (API v2): a change of a conversation recorded in its timeline.

They go through the same pipeline as the users' messages — a MessageEvent on the log, the
router assigns the sequence number, stores an internal delivery per recipient and pushes it —
so they take their place in the order of everything said, and catch-up brings them like any
message. The payload is ``{"type": "system", "event", "actor", ...the event's fields}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chat4all.domain.events import MessageEvent
from chat4all.domain.ids import new_id, utcnow
from chat4all.domain.models import INTERNAL
from chat4all.observability.tracing import current_traceparent
from chat4all.ports import EventLog


class SystemMessages:
    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def append(
        self, *, conversation_id: str, actor: str, recipients: Sequence[str], event: str, **fields: Any
    ) -> str:
        """Appends it; returns its message_id. ``recipients``: who sees it besides the actor."""
        message_id = new_id()
        message = MessageEvent(
            message_id=message_id,
            conversation_id=conversation_id,
            sender=actor,
            recipients=[u for u in dict.fromkeys(recipients) if u != actor],
            channels=[INTERNAL],
            payload={"type": "system", "event": event, "actor": actor, **fields},
            metadata={},
            accepted_at=utcnow(),
            traceparent=current_traceparent.get(),
        )
        await self._log.append(MessageEvent.topic, message.key(), message.encode())
        return message_id
