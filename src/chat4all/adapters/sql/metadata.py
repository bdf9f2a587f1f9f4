"""MetadataStore on SQL: users, channel mappings, refresh-token families."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import channel_claims, channel_mappings, refresh_tokens, users
from chat4all.domain.errors import Conflict, UsernameTaken
from chat4all.domain.identities import ChannelClaim
from chat4all.domain.ids import utcnow
from chat4all.domain.models import User
from chat4all.ports import RefreshSpend


class SqlMetadataStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_user(self, user: User) -> None:
        try:
            async with self._db.write() as conn:
                await conn.execute(sa.insert(users).values(**user.model_dump()))
        except IntegrityError as exc:
            raise UsernameTaken(f"the username {user.username!r} is taken") from exc

    async def get_user(self, username: str) -> User | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.username == username))).first()
        return User(**row._mapping) if row else None

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]:
        if not usernames:
            return set()
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(users.c.username).where(users.c.username.in_(set(usernames))))
        return {r.username for r in rows}

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        t = channel_mappings
        try:
            async with self._db.write() as conn:
                updated = await conn.execute(
                    sa.update(t)
                    .where(t.c.username == username, t.c.channel == channel)
                    .values(external_id=external_id, updated_at=utcnow())
                )
                if updated.rowcount == 0:
                    await conn.execute(
                        sa.insert(t).values(
                            username=username, channel=channel, external_id=external_id, updated_at=utcnow()
                        )
                    )
        except IntegrityError as exc:
            raise Conflict(f"this {channel} identity is already mapped to another user") from exc

    async def delete_channel(self, username: str, channel: str) -> bool:
        t = channel_mappings
        async with self._db.write() as conn:
            result = await conn.execute(sa.delete(t).where(t.c.username == username, t.c.channel == channel))
        return result.rowcount > 0

    async def get_channels(self, username: str) -> dict[str, str]:
        t = channel_mappings
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(t.c.channel, t.c.external_id).where(t.c.username == username))
        return {r.channel: r.external_id for r in rows}

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None:
        t = channel_mappings
        async with self._db.read() as conn:
            return await conn.scalar(
                sa.select(t.c.username).where(t.c.channel == channel, t.c.external_id == external_id)
            )

    async def add_channel_claim(self, claim: ChannelClaim) -> None:
        t = channel_claims
        key = (t.c.channel == claim.channel, t.c.external_id == claim.external_id, t.c.username == claim.username)
        async with self._db.write() as conn:  # one claim per (identity, user): a new code replaces the old
            await conn.execute(sa.delete(t).where(*key))
            await conn.execute(
                sa.insert(t).values(
                    channel=claim.channel,
                    external_id=claim.external_id,
                    username=claim.username,
                    code=claim.code,
                    expires_at=claim.expires_at,
                )
            )

    async def channel_claims(self, channel: str, external_id: str) -> list[ChannelClaim]:
        t = channel_claims
        async with self._db.read() as conn:
            rows = await conn.execute(sa.select(t).where(t.c.channel == channel, t.c.external_id == external_id))
        return [ChannelClaim(**r._mapping) for r in rows]

    async def drop_channel_claims(self, channel: str, external_id: str) -> None:
        t = channel_claims
        async with self._db.write() as conn:
            await conn.execute(sa.delete(t).where(t.c.channel == channel, t.c.external_id == external_id))

    async def add_refresh_token(
        self, *, token_id: str, family_id: str, username: str, expires_at: datetime
    ) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(refresh_tokens).values(
                    token_id=token_id, family_id=family_id, username=username, expires_at=expires_at
                )
            )

    async def spend_refresh_token(self, token_id: str) -> RefreshSpend:
        t = refresh_tokens
        now = utcnow()
        async with self._db.write() as conn:
            row = (await conn.execute(sa.select(t).where(t.c.token_id == token_id))).first()
            if row is None:
                return RefreshSpend("unknown")
            if row.revoked:
                return RefreshSpend("revoked", row.username, row.family_id, row.used_at)
            # the guard on used_at makes the spend atomic even if two requests race
            spent = await conn.execute(
                sa.update(t).where(t.c.token_id == token_id, t.c.used_at.is_(None)).values(used_at=now)
            )
            if spent.rowcount == 1:
                return RefreshSpend("ok", row.username, row.family_id, now)
            used_at = row.used_at or await conn.scalar(sa.select(t.c.used_at).where(t.c.token_id == token_id))
            return RefreshSpend("reused", row.username, row.family_id, used_at)

    async def revoke_refresh_family(self, family_id: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.update(refresh_tokens).where(refresh_tokens.c.family_id == family_id).values(revoked=True)
            )

    async def revoked_refresh_families(self, family_ids: Sequence[str]) -> set[str]:
        if not family_ids:
            return set()
        t = refresh_tokens
        query = sa.select(t.c.family_id).distinct().where(self._db.one_of(t.c.family_id, list(family_ids)), t.c.revoked.is_(True))
        async with self._db.read() as conn:
            return set((await conn.scalars(query)).all())

    async def revoke_user_refresh_families(self, username: str) -> None:
        t = refresh_tokens
        async with self._db.write() as conn:
            await conn.execute(sa.update(t).where(t.c.username == username, t.c.revoked.is_(False)).values(revoked=True))

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        async with self._db.write() as conn:
            await conn.execute(sa.update(users).where(users.c.username == username).values(password_hash=password_hash))
