"""What API v2 shows: a message (kind, edits, tombstones), a conversation summary, and the frames
of conversation changes (docs/api-v2.md). Encoded once per recipient set, like the v1 frames."""

from __future__ import annotations

from typing import Any

import orjson

from chat4all.domain.frames import Frame
from chat4all.domain.models import Conversation, Message

ROLE_ORDER = {"owner": 0, "admin": 1, "member": 2}


def v2_message(m: Message) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "conversation_id": m.conversation_id,
        "sequence_number": m.sequence_number,
        "kind": m.kind,
        "from": m.sender,
        "to": list(m.recipients),
        "channels": list(m.channels),
        "payload": None if m.deleted else m.payload,
        "metadata": {} if m.deleted else m.metadata,
        "created_at": m.created_at.isoformat(),
        "edited_at": m.edited_at.isoformat() if m.edited_at else None,
        "deleted": m.deleted,
    }


def members_view(c: Conversation) -> list[dict[str, str]]:
    return [{"username": u, "role": c.role_of(u) or "member"} for u in c.members]


def message_updated_frame(m: Message) -> Frame:
    return Frame(None, orjson.dumps({"type": "message_updated", "message": v2_message(m)}))


def read_cursor_frame(conversation_id: str, up_to_sequence: int, unread_count: int) -> Frame:
    body = {
        "type": "read_cursor",
        "conversation_id": conversation_id,
        "up_to_sequence": up_to_sequence,
        "unread_count": unread_count,
    }
    return Frame(None, orjson.dumps(body))


def conversation_frame(event: str, summary: dict[str, Any]) -> Frame:
    return Frame(None, orjson.dumps({"type": "conversation", "event": event, "conversation": summary}))
