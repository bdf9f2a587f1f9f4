"""ConversationStore on SQL."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import conversation_members as members_t
from chat4all.adapters.sql.schema import conversations as conversations_t
from chat4all.domain.errors import Conflict
from chat4all.domain.models import Conversation


class SqlConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_conversation(self, conversation: Conversation, *, private_key: str | None) -> Conversation:
        c = conversation
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    sa.insert(conversations_t).values(
                        conversation_id=c.conversation_id,
                        type=c.type.value,
                        name=c.name,
                        created_by=c.created_by,
                        created_at=c.created_at,
                        metadata=c.metadata,
                        private_key=private_key,
                        topic=c.topic,
                        last_activity_at=c.created_at,
                        changed_at=c.created_at,
                    )
                )
                await conn.execute(
                    sa.insert(members_t),
                    [
                        {
                            "conversation_id": c.conversation_id,
                            "username": m,
                            "created_at": c.created_at,
                            "role": c.roles.get(m, "member"),
                            "changed_at": c.created_at,
                        }
                        for m in c.members
                    ],
                )
            return c
        except IntegrityError as exc:
            if private_key is None:
                raise Conflict("a conversation with this id exists") from exc
        existing = await self._get_private(private_key)
        if existing is None:  # pragma: no cover - the row that conflicted was deleted meanwhile
            raise Conflict("the conversation could not be created, try again")
        return existing

    async def get_conversation(self, conversation_id: str) -> Conversation | None:
        found = await self._load(conversations_t.c.conversation_id == conversation_id)
        return found[0] if found else None

    async def get_conversations(self, conversation_ids: Sequence[str]) -> dict[str, Conversation]:
        if not conversation_ids:
            return {}
        return {c.conversation_id: c for c in await self.load_many(list(dict.fromkeys(conversation_ids)))}

    async def load_many(self, conversation_ids: Sequence[str]) -> list[Conversation]:
        """Several at once, whoever their members are now (API v2)."""
        return await self._load(self._db.one_of(conversations_t.c.conversation_id, conversation_ids))

    async def _get_private(self, private_key: str) -> Conversation | None:
        found = await self._load(conversations_t.c.private_key == private_key)
        return found[0] if found else None

    async def list_conversations(
        self, username: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Conversation]:
        c = conversations_t
        mine = sa.select(members_t.c.conversation_id).where(
            members_t.c.username == username, members_t.c.left_at.is_(None)
        )
        condition: sa.ColumnElement[bool] = c.c.conversation_id.in_(mine)
        if after is not None:
            created_at, conversation_id = after
            condition = sa.and_(
                condition,
                sa.or_(
                    c.c.created_at < created_at,
                    sa.and_(c.c.created_at == created_at, c.c.conversation_id < conversation_id),
                ),
            )
        return await self._load(condition, limit=limit)

    async def _load(self, condition: sa.ColumnElement[bool], *, limit: int | None = None) -> list[Conversation]:
        c = conversations_t
        query = (
            sa.select(
                c.c.conversation_id, c.c.type, c.c.name, c.c.created_by, c.c.created_at, c.c.metadata, c.c.topic
            )
            .where(condition)
            .order_by(c.c.created_at.desc(), c.c.conversation_id.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
            if not rows:
                return []
            ids = [r.conversation_id for r in rows]
            member_rows = await conn.execute(
                sa.select(members_t.c.conversation_id, members_t.c.username, members_t.c.role, members_t.c.left_at)
                .where(members_t.c.conversation_id.in_(ids))
                .order_by(members_t.c.username)
            )
            members: dict[str, list[sa.Row]] = defaultdict(list)
            for m in member_rows:
                members[m.conversation_id].append(m)
        return [_conversation(r, members[r.conversation_id]) for r in rows]


def _conversation(row: sa.Row, member_rows: Sequence[sa.Row]) -> Conversation:
    members = [m.username for m in member_rows if m.left_at is None]
    return Conversation(
        topic=row.topic,
        # only the roles above "member" (every other member is one)
        roles={m.username: m.role for m in member_rows if m.left_at is None and m.role != "member"},
        former=tuple(m.username for m in member_rows if m.left_at is not None),
        conversation_id=row.conversation_id,
        type=row.type,
        name=row.name,
        members=tuple(members),
        created_by=row.created_by,
        created_at=row.created_at,
        metadata=row.metadata or {},
    )
