"""Read cursors (API v2): a READ recorded for a delivery moves its reader's cursor up to it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from chat4all.adapters.sql.schema import conversation_members
from chat4all.domain.models import Message, StatusChange
from chat4all.domain.status import DeliveryStatus

_m = conversation_members
# built once, executed with parameters (see adapters/sql/messages.py)
_ADVANCE = (
    sa.update(_m)
    .where(_m.c.conversation_id == sa.bindparam("cid"), _m.c.username == sa.bindparam("u"), _m.c.read_up_to < sa.bindparam("seq"))
    .values(read_up_to=sa.bindparam("seq"), changed_at=sa.bindparam("now"))
)


def message_kind(payload: dict[str, Any]) -> str:
    """A system message (a change of the conversation) carries a payload of type ``system``."""
    return "system" if payload.get("type") == "system" else "user"


async def advance_read_cursors(
    conn: Any, moved: Sequence[tuple[Message, Sequence[StatusChange]]], *, at: datetime
) -> None:
    """In the transaction that recorded the READs: each reader's cursor goes forward (never back)
    to the highest sequence number they read in each conversation."""
    highest: dict[tuple[str, str], int] = {}
    for message, changes in moved:
        for change in changes:
            if change.status is DeliveryStatus.READ:
                key = (message.conversation_id, change.username)
                highest[key] = max(highest.get(key, 0), message.sequence_number)
    if not highest:
        return
    await conn.execute(_ADVANCE, [{"cid": c, "u": u, "seq": seq, "now": at} for (c, u), seq in sorted(highest.items())])
