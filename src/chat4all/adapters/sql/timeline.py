"""TimelineStore on SQL (API v2): pages both ways, edits with their versions, tombstones."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.rows import MESSAGE_COLUMNS as _MESSAGE_COLUMNS
from chat4all.adapters.sql.rows import message_from_row as _message
from chat4all.adapters.sql.schema import conversations, deliveries, message_versions, messages
from chat4all.domain.errors import Conflict, NotFound
from chat4all.domain.models import INTERNAL, Message
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import MessageVersion


def _visible_to(viewer: str) -> sa.ColumnElement[bool]:
    addressed = (
        sa.select(deliveries.c.message_id)
        .where(deliveries.c.message_id == messages.c.message_id, deliveries.c.username == viewer)
        .exists()
    )
    return sa.or_(messages.c.sender == viewer, addressed)


class SqlTimelineStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def page(
        self, conversation_id: str, *, viewer: str, before: int | None, after: int | None, limit: int
    ) -> list[Message]:
        seq = messages.c.sequence_number
        condition = sa.and_(messages.c.conversation_id == conversation_id, _visible_to(viewer))
        if after is not None:
            query = sa.select(*_MESSAGE_COLUMNS).where(condition, seq > after).order_by(seq).limit(limit)
        else:
            if before is not None:
                condition = sa.and_(condition, seq < before)
            query = sa.select(*_MESSAGE_COLUMNS).where(condition).order_by(seq.desc()).limit(limit)
        async with self._db.read() as conn:
            found = [_message(r) for r in await conn.execute(query)]
        return found if after is not None else found[::-1]

    async def has_visible(self, conversation_id: str, *, viewer: str, below: int | None, above: int | None) -> bool:
        seq = messages.c.sequence_number
        condition = sa.and_(messages.c.conversation_id == conversation_id, _visible_to(viewer))
        if below is not None:
            condition = sa.and_(condition, seq < below)
        if above is not None:
            condition = sa.and_(condition, seq > above)
        async with self._db.read() as conn:
            return (await conn.execute(sa.select(messages.c.message_id).where(condition).limit(1))).first() is not None

    async def last_messages(self, viewer: str, conversation_ids: Sequence[str]) -> dict[str, Message]:
        found: dict[str, Message] = {}
        async with self._db.read() as conn:
            for conversation_id in conversation_ids:
                row = (
                    await conn.execute(
                        sa.select(*_MESSAGE_COLUMNS)
                        .where(messages.c.conversation_id == conversation_id, _visible_to(viewer))
                        .order_by(messages.c.sequence_number.desc())
                        .limit(1)
                    )
                ).first()
                if row is not None:
                    found[conversation_id] = _message(row)
        return found

    async def unread_ids(self, conversation_id: str, username: str, *, up_to: int, limit: int) -> list[str]:
        d = deliveries
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(d.c.message_id)
                .where(
                    d.c.conversation_id == conversation_id,
                    d.c.username == username,
                    d.c.channel == INTERNAL,
                    d.c.sequence_number <= up_to,
                    d.c.status != DeliveryStatus.READ.value,
                    d.c.status != DeliveryStatus.FAILED.value,
                )
                .order_by(d.c.sequence_number)
                .limit(limit)
            )
            return [r.message_id for r in rows]

    async def edit(
        self, message_id: str, *, payload: dict[str, Any] | None, metadata: dict[str, Any] | None, at: datetime
    ) -> Message:
        v = message_versions
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(*_MESSAGE_COLUMNS).where(messages.c.message_id == message_id).with_for_update()
                )
            ).first()
            if row is None:
                raise NotFound("no such message")
            current = _message(row)
            if current.deleted:
                raise Conflict("the message was deleted")
            latest = (
                await conn.execute(sa.select(sa.func.max(v.c.version)).where(v.c.message_id == message_id))
            ).scalar_one_or_none() or 0
            new_payload = current.payload if payload is None else payload
            new_metadata = current.metadata if metadata is None else metadata
            rows = []
            if latest == 0:  # the first edit: the message as sent is version 1
                rows.append(
                    {"message_id": message_id, "version": 1, "payload": current.payload, "metadata": current.metadata, "at": current.created_at}
                )
                latest = 1
            rows.append({"message_id": message_id, "version": latest + 1, "payload": new_payload, "metadata": new_metadata, "at": at})
            await conn.execute(sa.insert(v), rows)
            await conn.execute(
                sa.update(messages)
                .where(messages.c.message_id == message_id)
                .values(payload=new_payload, metadata=new_metadata, edited_at=at)
            )
            await self._touch(conn, current.conversation_id, at)
        return current.model_copy(update={"payload": new_payload, "metadata": new_metadata, "edited_at": at})

    async def delete(self, message_id: str, *, at: datetime) -> Message | None:
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(*_MESSAGE_COLUMNS).where(messages.c.message_id == message_id).with_for_update()
                )
            ).first()
            if row is None:
                raise NotFound("no such message")
            current = _message(row)
            if current.deleted:
                return None
            await conn.execute(
                sa.update(messages)
                .where(messages.c.message_id == message_id)
                .values(payload={}, metadata={}, deleted_at=at)
            )
            await conn.execute(sa.delete(message_versions).where(message_versions.c.message_id == message_id))
            await self._touch(conn, current.conversation_id, at)
        return current.model_copy(update={"payload": {}, "metadata": {}, "deleted": True})

    @staticmethod
    async def _touch(conn: Any, conversation_id: str, at: datetime) -> None:
        await conn.execute(
            sa.update(conversations).where(conversations.c.conversation_id == conversation_id).values(changed_at=at)
        )

    async def versions(self, message_id: str) -> list[MessageVersion]:
        v = message_versions
        async with self._db.read() as conn:
            rows = await conn.execute(
                sa.select(v.c.version, v.c.payload, v.c.metadata, v.c.at).where(v.c.message_id == message_id).order_by(v.c.version)
            )
            return [MessageVersion(version=r.version, payload=r.payload, metadata=r.metadata, at=r.at) for r in rows]
