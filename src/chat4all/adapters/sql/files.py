"""FileStore on SQL: file metadata (R5.4) and the conversations each file was sent to (R5.5)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.schema import conversation_members, file_shares, files
from chat4all.domain.files import FileRecord, FileStatus

_COLUMNS = tuple(files.c[name] for name in FileRecord.model_fields)

# the router's, in its persist: built once, executed with parameters (see adapters/sql/messages.py)
_SHARES_OF = sa.select(file_shares.c.file_id, file_shares.c.conversation_id).where(
    file_shares.c.file_id.in_(sa.bindparam("file_ids", expanding=True))
)
_INSERT_SHARES = sa.insert(file_shares)


class SqlFileStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_file(self, record: FileRecord) -> None:
        async with self._db.write() as conn:
            await conn.execute(sa.insert(files).values(**record.model_dump(mode="python")))

    async def get_file(self, file_id: str) -> FileRecord | None:
        async with self._db.read() as conn:
            row = (await conn.execute(sa.select(*_COLUMNS).where(files.c.file_id == file_id))).first()
        return FileRecord.model_validate(row._mapping) if row else None

    async def finish_file(
        self, file_id: str, *, status: FileStatus, at: datetime, sha256: str | None = None, error: str | None = None
    ) -> bool:
        values: dict[str, Any] = {"status": status.value, "upload_id": None, "error": error}
        if status is FileStatus.COMPLETED:
            values.update(sha256=sha256, completed_at=at)
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.update(files)
                .where(files.c.file_id == file_id, files.c.status == FileStatus.UPLOADING.value)
                .values(**values)
            )
        return result.rowcount == 1

    async def stale_uploads(self, *, created_before: datetime, limit: int) -> list[FileRecord]:
        query = (
            sa.select(*_COLUMNS)
            .where(files.c.status == FileStatus.UPLOADING.value, files.c.created_at < created_before)
            .order_by(files.c.created_at)
            .limit(limit)
        )
        async with self._db.read() as conn:
            return [FileRecord.model_validate(r._mapping) for r in await conn.execute(query)]

    async def can_download(self, file_id: str, username: str) -> bool:
        query = (
            sa.select(sa.literal(1))
            .select_from(
                file_shares.join(
                    conversation_members, conversation_members.c.conversation_id == file_shares.c.conversation_id
                )
            )
            .where(
                file_shares.c.file_id == file_id,
                conversation_members.c.username == username,
                # a former member (API v2) keeps the files shared before they left, not those after
                sa.or_(
                    conversation_members.c.left_at.is_(None),
                    file_shares.c.created_at <= conversation_members.c.left_at,
                ),
            )
            .limit(1)
        )
        async with self._db.read() as conn:
            return (await conn.execute(query)).first() is not None


async def record_shares(conn: AsyncConnection, messages: Sequence[dict[str, Any]], *, at: datetime) -> None:
    """Inside the router's transaction: remembers the conversation of every file message, so that
    its members may download the file. Runs under the conversations' row locks, so checking
    what is there already and inserting the rest cannot race with another router."""
    pairs = {
        (m["payload"]["file_id"], m["conversation_id"])
        for m in messages
        if m["payload"].get("type") == "file" and isinstance(m["payload"].get("file_id"), str)
    }
    if not pairs:
        return
    existing = await conn.execute(_SHARES_OF, {"file_ids": list({f for f, _ in pairs})})
    missing = pairs - {(r.file_id, r.conversation_id) for r in existing}
    if missing:
        await conn.execute(
            _INSERT_SHARES, [{"file_id": f, "conversation_id": c, "created_at": at} for f, c in sorted(missing)]
        )
