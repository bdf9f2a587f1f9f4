"""MembershipStore on SQL (API v2): roles, former members, name and topic, read cursors, the inbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import conversation_members as members_t
from chat4all.adapters.sql.schema import conversations as conversations_t
from chat4all.adapters.sql.schema import deliveries, messages
from chat4all.ports import InboxEntry

DETAILS = ("name", "topic")


class SqlMembershipStore:
    def __init__(self, db: Database, conversations: SqlConversationStore) -> None:
        self._db = db
        self._conversations = conversations

    async def update_details(self, conversation_id: str, changes: dict[str, str | None], *, at: datetime) -> None:
        values = {k: v for k, v in changes.items() if k in DETAILS}
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(conversations_t)
                .where(conversations_t.c.conversation_id == conversation_id)
                .values(**values, changed_at=at)
            )

    async def add_members(self, conversation_id: str, usernames: Sequence[str], *, at: datetime) -> list[str]:
        m = members_t
        async with self._db.write() as conn:
            rows = {
                r.username: r.left_at
                for r in await conn.execute(
                    sa.select(m.c.username, m.c.left_at).where(
                        m.c.conversation_id == conversation_id, self._db.one_of(m.c.username, usernames)
                    )
                )
            }
            new = [u for u in dict.fromkeys(usernames) if u not in rows]
            back = [u for u in dict.fromkeys(usernames) if u in rows and rows[u] is not None]
            if new:
                await conn.execute(
                    sa.insert(m),
                    [
                        {"conversation_id": conversation_id, "username": u, "created_at": at, "role": "member", "changed_at": at}
                        for u in new
                    ],
                )
            if back:
                await conn.execute(
                    sa.update(m)
                    .where(m.c.conversation_id == conversation_id, self._db.one_of(m.c.username, back))
                    .values(left_at=None, role="member", changed_at=at)
                )
            if new or back:
                await self._touch(conn, conversation_id, at)
        return [u for u in usernames if u in set(new) | set(back)]

    async def remove_member(self, conversation_id: str, username: str, *, at: datetime) -> tuple[bool, str | None]:
        m = members_t
        async with self._db.write() as conn:
            # the conversation row first, as the router does: changes of one conversation queue up
            await conn.execute(
                sa.select(conversations_t.c.conversation_id)
                .where(conversations_t.c.conversation_id == conversation_id)
                .with_for_update()
            )
            role = (
                await conn.execute(
                    sa.select(m.c.role).where(
                        m.c.conversation_id == conversation_id, m.c.username == username, m.c.left_at.is_(None)
                    )
                )
            ).scalar_one_or_none()
            if role is None:
                return False, None
            await conn.execute(
                sa.update(m)
                .where(m.c.conversation_id == conversation_id, m.c.username == username)
                .values(left_at=at, changed_at=at, role="member")
            )
            successor = None
            if role == "owner":
                successor = (
                    await conn.execute(
                        sa.select(m.c.username)
                        .where(m.c.conversation_id == conversation_id, m.c.left_at.is_(None))
                        .order_by(sa.case((m.c.role == "admin", 0), else_=1), m.c.created_at, m.c.username)
                        .limit(1)
                    )
                ).scalar_one_or_none()
                if successor is not None:
                    await conn.execute(
                        sa.update(m)
                        .where(m.c.conversation_id == conversation_id, m.c.username == successor)
                        .values(role="owner", changed_at=at)
                    )
            await self._touch(conn, conversation_id, at)
            return True, successor

    async def set_roles(self, conversation_id: str, roles: dict[str, str], *, at: datetime) -> None:
        m = members_t
        async with self._db.write() as conn:
            for username, role in roles.items():
                await conn.execute(
                    sa.update(m)
                    .where(m.c.conversation_id == conversation_id, m.c.username == username, m.c.left_at.is_(None))
                    .values(role=role, changed_at=at)
                )
            await self._touch(conn, conversation_id, at)

    @staticmethod
    async def _touch(conn: AsyncConnection, conversation_id: str, at: datetime) -> None:
        await conn.execute(
            sa.update(conversations_t).where(conversations_t.c.conversation_id == conversation_id).values(changed_at=at)
        )

    async def entry(self, conversation_id: str, username: str) -> InboxEntry | None:
        found = await self._entries(
            sa.and_(members_t.c.conversation_id == conversation_id, members_t.c.username == username), limit=1
        )
        return found[0] if found else None

    async def entries(self, conversation_id: str, usernames: Sequence[str]) -> list[InboxEntry]:
        if not usernames:
            return []
        return await self._entries(
            sa.and_(members_t.c.conversation_id == conversation_id, self._db.one_of(members_t.c.username, usernames)),
            limit=len(usernames),
        )

    async def unread_for_members(self, conversation_id: str, usernames: Sequence[str]) -> dict[str, int]:
        if not usernames:
            return {}
        d, m, cm = deliveries, messages, members_t
        query = (
            sa.select(d.c.username, sa.func.count(sa.distinct(d.c.message_id)))
            .select_from(
                d.join(m, m.c.message_id == d.c.message_id).join(
                    cm, sa.and_(cm.c.conversation_id == d.c.conversation_id, cm.c.username == d.c.username)
                )
            )
            .where(
                d.c.conversation_id == conversation_id,
                self._db.one_of(d.c.username, usernames),
                d.c.sequence_number > cm.c.read_up_to,
                m.c.sender != d.c.username,
                m.c.kind == "user",
                m.c.deleted_at.is_(None),
            )
            .group_by(d.c.username)
        )
        async with self._db.read() as conn:
            counted = {r[0]: r[1] for r in await conn.execute(query)}
        return {u: counted.get(u, 0) for u in usernames}

    async def inbox(
        self,
        username: str,
        *,
        limit: int,
        after: tuple[datetime, str] | None,
        changed_since: datetime | None,
    ) -> list[InboxEntry]:
        c, m = conversations_t, members_t
        activity = sa.func.coalesce(c.c.last_activity_at, c.c.created_at)
        if changed_since is None:
            condition = sa.and_(m.c.username == username, m.c.left_at.is_(None))
        else:
            condition = sa.and_(
                m.c.username == username,
                sa.or_(
                    sa.and_(
                        m.c.left_at.is_(None),
                        sa.or_(c.c.changed_at > changed_since, m.c.changed_at > changed_since),
                    ),
                    m.c.left_at > changed_since,
                ),
            )
        if after is not None:
            at, conversation_id = after
            condition = sa.and_(
                condition,
                sa.or_(activity < at, sa.and_(activity == at, c.c.conversation_id < conversation_id)),
            )
        return await self._entries(condition, limit=limit)

    async def _entries(self, condition: sa.ColumnElement[bool], *, limit: int) -> list[InboxEntry]:
        c, m = conversations_t, members_t
        activity = sa.func.coalesce(c.c.last_activity_at, c.c.created_at).label("activity")
        query = (
            sa.select(c.c.conversation_id, c.c.last_seq, activity, m.c.username, m.c.read_up_to, m.c.left_at)
            .select_from(m.join(c, c.c.conversation_id == m.c.conversation_id))
            .where(condition)
            .order_by(activity.desc(), c.c.conversation_id.desc())
            .limit(limit)
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        if not rows:
            return []
        loaded = {
            x.conversation_id: x
            for x in await self._conversations.load_many([r.conversation_id for r in rows])
        }
        return [
            InboxEntry(
                conversation=loaded[r.conversation_id],
                username=r.username,
                membership="member" if r.left_at is None else "left",
                read_up_to=r.read_up_to,
                last_seq=r.last_seq,
                last_activity_at=r.activity,
            )
            for r in rows
            if r.conversation_id in loaded
        ]

    async def move_read_cursor(self, conversation_id: str, username: str, up_to: int, *, at: datetime) -> int:
        c, m = conversations_t, members_t
        async with self._db.write() as conn:
            last_seq = (
                await conn.execute(sa.select(c.c.last_seq).where(c.c.conversation_id == conversation_id))
            ).scalar_one_or_none() or 0
            target = min(up_to, last_seq)
            await conn.execute(
                sa.update(m)
                .where(
                    m.c.conversation_id == conversation_id,
                    m.c.username == username,
                    m.c.left_at.is_(None),
                    m.c.read_up_to < target,
                )
                .values(read_up_to=target, changed_at=at)
            )
            current = (
                await conn.execute(
                    sa.select(m.c.read_up_to).where(m.c.conversation_id == conversation_id, m.c.username == username)
                )
            ).scalar_one_or_none()
        return current or 0

    async def unread_counts(self, username: str, cursors: dict[str, int]) -> dict[str, int]:
        counts: dict[str, int] = {}
        if not cursors:
            return counts
        addressed = (
            sa.select(deliveries.c.message_id)
            .where(deliveries.c.message_id == messages.c.message_id, deliveries.c.username == username)
            .exists()
        )
        async with self._db.read() as conn:
            for conversation_id, read_up_to in cursors.items():
                counts[conversation_id] = (
                    await conn.execute(
                        sa.select(sa.func.count())
                        .select_from(messages)
                        .where(
                            messages.c.conversation_id == conversation_id,
                            messages.c.sequence_number > read_up_to,
                            messages.c.sender != username,
                            messages.c.kind == "user",
                            messages.c.deleted_at.is_(None),
                            addressed,
                        )
                    )
                ).scalar_one()
        return counts
