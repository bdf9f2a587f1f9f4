"""FileStore contract (R5.4): file metadata, its one-way status, abandoned uploads, and who may
download a file (the members of every conversation it was sent in). SQL on each database, and
the in-memory fake."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.files import SqlFileStore
from chat4all.domain.files import FileRecord, FileStatus
from chat4all.ports import ConversationStore, MessageStore
from tests.contract.test_message_store import CONV_A, CONV_B, T0, msg, open_conversation, to
from tests.fakes.world import FakeWorld

pytestmark = pytest.mark.fakes

SHA = "ab" * 32


@pytest.fixture
def files(database: Database | None, fakes: FakeWorld) -> Any:
    return fakes.files if database is None else SqlFileStore(database)


def record(owner: str = "alice", *, at: datetime = T0, size: int = 10) -> FileRecord:
    file_id = str(uuid.uuid4())
    return FileRecord(
        file_id=file_id,
        owner=owner,
        filename="report.pdf",
        size=size,
        content_type="application/pdf",
        part_size=5,
        part_count=2,
        storage_key=f"files/{file_id}",
        upload_id="upload-1",
        sha256=None,
        status=FileStatus.UPLOADING,
        created_at=at,
    )


async def test_a_created_file_reads_back_unchanged_and_an_unknown_one_is_none(files: Any) -> None:
    created = record()
    await files.create_file(created)

    assert await files.get_file(created.file_id) == created
    assert await files.get_file(str(uuid.uuid4())) is None


async def test_an_upload_completes_once_with_its_checksum_and_forgets_its_upload_id(files: Any) -> None:
    created = record()
    await files.create_file(created)
    done_at = T0 + timedelta(minutes=1)

    assert await files.finish_file(created.file_id, status=FileStatus.COMPLETED, at=done_at, sha256=SHA) is True
    assert await files.finish_file(created.file_id, status=FileStatus.FAILED, at=done_at, error="late") is False

    found = await files.get_file(created.file_id)
    assert (found.status, found.sha256, found.completed_at, found.upload_id, found.error) == (
        FileStatus.COMPLETED, SHA, done_at, None, None
    )


async def test_a_failed_upload_keeps_its_reason_and_never_completes(files: Any) -> None:
    created = record()
    await files.create_file(created)

    assert await files.finish_file(created.file_id, status=FileStatus.FAILED, at=T0, error="checksum mismatch")
    assert not await files.finish_file(created.file_id, status=FileStatus.COMPLETED, at=T0, sha256=SHA)

    found = await files.get_file(created.file_id)
    assert (found.status, found.error, found.sha256, found.completed_at) == (
        FileStatus.FAILED, "checksum mismatch", None, None
    )


async def test_stale_uploads_are_the_unfinished_ones_started_before_the_cutoff_oldest_first(files: Any) -> None:
    oldest, older, recent, finished = (
        record(at=T0), record(at=T0 + timedelta(minutes=1)), record(at=T0 + timedelta(hours=2)), record(at=T0)
    )
    for r in (recent, older, finished, oldest):
        await files.create_file(r)
    await files.finish_file(finished.file_id, status=FileStatus.COMPLETED, at=T0, sha256=SHA)
    cutoff = T0 + timedelta(hours=1)

    stale = await files.stale_uploads(created_before=cutoff, limit=10)

    assert [r.file_id for r in stale] == [oldest.file_id, older.file_id]
    assert [r.file_id for r in await files.stale_uploads(created_before=cutoff, limit=1)] == [oldest.file_id]
    assert await files.stale_uploads(created_before=T0, limit=10) == []


async def test_the_members_of_a_conversation_a_file_was_sent_in_may_download_it(
    files: Any, conversation_store: ConversationStore, message_store: MessageStore
) -> None:
    shared, unsent = record(), record()
    await files.create_file(shared)
    await files.create_file(unsent)
    await open_conversation(conversation_store, CONV_A, "alice", "bob")
    await open_conversation(conversation_store, CONV_B, "alice", "carol")
    file_message = replace(msg(CONV_A, "alice", to("bob")), payload={"type": "file", "file_id": shared.file_id})
    await message_store.persist_batch([file_message], at=T0)

    assert await files.can_download(shared.file_id, "alice")
    assert await files.can_download(shared.file_id, "bob")
    assert not await files.can_download(shared.file_id, "carol")  # a member of another conversation
    assert not await files.can_download(unsent.file_id, "alice")  # never sent: only its owner's record

    again = replace(msg(CONV_B, "alice", to("carol")), payload={"type": "file", "file_id": shared.file_id})
    await message_store.persist_batch([again], at=T0)

    assert await files.can_download(shared.file_id, "carol")
