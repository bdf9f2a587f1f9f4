"""FileService and UploadCleanup on fakes: URL lifetimes and abandoned uploads follow the clock."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from chat4all.domain.errors import Conflict, InvalidInput, NotFound
from chat4all.domain.events import FileEvent
from chat4all.domain.files import FileStatus
from chat4all.services.files import FileService, UploadCleanup
from tests.fakes.clock import FakeClock
from tests.fakes.log import FakeEventLog
from tests.fakes.world import FakeWorld

UPLOAD_TTL_S = 900
DOWNLOAD_TTL_S = 3600
DATA = b"0123456789" * 3  # three parts of 10 bytes


@pytest.fixture
def files(world: FakeWorld, log: FakeEventLog, clock: FakeClock) -> FileService:
    return FileService(
        files=world.files,
        blobs=world.blobs,
        log=log,
        max_size=1024,
        part_size=10,
        upload_url_ttl_s=UPLOAD_TTL_S,
        download_url_ttl_s=DOWNLOAD_TTL_S,
        clock=clock,
    )


async def test_an_upload_is_planned_in_parts_whose_urls_expire_on_the_clock(files: FileService, clock: FakeClock) -> None:
    ticket = await files.initiate(owner="alice", filename="a.bin", size=len(DATA))

    assert [p.part_number for p in ticket.parts] == [1, 2, 3]
    assert ticket.expires_at == clock.now + timedelta(seconds=UPLOAD_TTL_S)
    assert ticket.file.created_at == clock.now and ticket.file.status is FileStatus.UPLOADING


async def test_a_completed_upload_is_verified_announced_and_downloadable_until_its_url_expires(
    files: FileService, world: FakeWorld, log: FakeEventLog, clock: FakeClock
) -> None:
    ticket = await files.initiate(owner="alice", filename="a.bin", size=len(DATA))
    for n in (1, 2, 3):
        world.blobs.put_part(ticket.file.upload_id, n, DATA[(n - 1) * 10 : n * 10])
    clock.advance(5)

    view = await files.complete(caller="alice", file_id=ticket.file.file_id, sha256=hashlib.sha256(DATA).hexdigest())

    assert view.file.status is FileStatus.COMPLETED and view.file.completed_at == clock.now
    assert view.download_expires_at == clock.now + timedelta(seconds=DOWNLOAD_TTL_S)
    [event] = [FileEvent.decode(r.value) for r in log.records(FileEvent.topic)]
    assert event.file_id == ticket.file.file_id


async def test_a_checksum_mismatch_fails_the_file_for_good_and_deletes_the_bytes(
    files: FileService, world: FakeWorld
) -> None:
    ticket = await files.initiate(owner="alice", filename="a.bin", size=10)
    world.blobs.put_part(ticket.file.upload_id, 1, b"x" * 10)

    with pytest.raises(InvalidInput) as mismatch:
        await files.complete(caller="alice", file_id=ticket.file.file_id, sha256="0" * 64)
    assert mismatch.value.code == "checksum_mismatch"
    assert ticket.file.storage_key in world.blobs.deleted
    with pytest.raises(Conflict):
        await files.complete(caller="alice", file_id=ticket.file.file_id, sha256=hashlib.sha256(b"x" * 10).hexdigest())


async def test_an_upload_left_unfinished_past_the_max_age_is_cleaned_up_and_not_before(
    files: FileService, world: FakeWorld, clock: FakeClock
) -> None:
    cleanup = UploadCleanup(files=world.files, blobs=world.blobs, max_age_s=3600, clock=clock)
    ticket = await files.initiate(owner="alice", filename="a.bin", size=10)

    clock.advance(3599)
    assert await cleanup.run_once() == 0

    clock.advance(2)
    assert await cleanup.run_once() == 1
    record = await world.files.get_file(ticket.file.file_id)
    assert record.status is FileStatus.FAILED and record.error.startswith("upload abandoned")
    assert ticket.file.upload_id not in world.blobs.uploads  # its parts are gone from the blob store


async def test_someone_elses_file_is_not_found(files: FileService) -> None:
    ticket = await files.initiate(owner="alice", filename="a.bin", size=10)

    with pytest.raises(NotFound):
        await files.get(ticket.file.file_id, viewer="mallory")
