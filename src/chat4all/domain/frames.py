"""The JSON shapes a client sees for a message and a status change, encoded once.

The router encodes a message frame once and the same bytes go to every socket of every
recipient; nothing on the way re-encodes it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from chat4all.domain.models import Message, StatusChange


class Frame(NamedTuple):
    """A ready-to-send WebSocket text frame; ``message_id`` lets a socket drop a repeat.
    ``v2_only``: a frame only ``/v2/ws`` sockets receive (v1's sockets keep v1's traffic)."""

    message_id: str | None
    data: bytes
    v2_only: bool = False


def message_view(m: Message) -> dict[str, Any]:
    return {
        "message_id": m.message_id,
        "conversation_id": m.conversation_id,
        "sequence_number": m.sequence_number,
        "from": m.sender,
        "to": list(m.recipients),
        "channels": list(m.channels),
        "payload": m.payload,
        "metadata": m.metadata,
        "created_at": m.created_at.isoformat(),
    }


def message_frame(m: Message) -> Frame:
    return Frame(m.message_id, orjson.dumps({"type": "message", "message": message_view(m)}))


def own_message_frame(m: Message) -> Frame:
    """What the sender's own v2 sockets (every device) receive for a message it sent."""
    return Frame(None, orjson.dumps({"type": "message", "own": True, "message": message_view(m)}), True)


def v2_copy(frame: Frame) -> Frame:
    """The same bytes, for v2 sockets only (nothing is encoded again)."""
    return Frame(frame.message_id, frame.data, True)


def status_frame(change: StatusChange) -> Frame:
    body = {
        "message_id": change.message_id,
        "username": change.username,
        "channel": change.channel,
        "status": change.status.value,
        "at": change.at.isoformat(),
    }
    if change.detail:
        body["detail"] = change.detail
    return Frame(None, orjson.dumps({"type": "status", "status": body}))


def control_frame(kind: str, **fields: Any) -> Frame:
    return Frame(None, orjson.dumps({"type": kind, **fields}))
