"""Row mappers the SQL stores share: a message row and its columns, status history rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from chat4all.adapters.sql.schema import messages
from chat4all.domain.models import Message, StatusChange

MESSAGE_COLUMNS = (
    messages.c.message_id,
    messages.c.conversation_id,
    messages.c.sequence_number,
    messages.c.sender,
    messages.c.recipients,
    messages.c.channels,
    messages.c.payload,
    messages.c.metadata,
    messages.c.created_at,
    messages.c.kind,
    messages.c.edited_at,
    messages.c.deleted_at,
)


def message_from_row(row: sa.Row) -> Message:
    """A ``Message`` from a row selected with ``MESSAGE_COLUMNS``."""
    return Message(
        message_id=row.message_id,
        conversation_id=row.conversation_id,
        sequence_number=row.sequence_number,
        sender=row.sender,
        recipients=tuple(row.recipients),
        channels=tuple(row.channels),
        payload=row.payload,
        metadata=row.metadata,
        created_at=row.created_at,
        kind=row.kind,
        edited_at=row.edited_at,
        deleted=row.deleted_at is not None,
    )


def history_rows(changes: Iterable[StatusChange]) -> list[dict[str, Any]]:
    """``status_history`` rows of these status changes."""
    return [
        {
            "message_id": c.message_id,
            "username": c.username,
            "channel": c.channel,
            "status": c.status.value,
            "at": c.at,
            "detail": c.detail,
        }
        for c in changes
    ]
