"""Files (R5): initiate a multipart upload, resume it, complete it with a verified SHA-256,
describe it with a download URL, and let file messages refer to it.

The bytes never pass through here: clients PUT parts to the blob store's URLs and download
from its URLs. Completing streams the stored object once to check its SHA-256 (in a worker
thread). A file is visible to its owner and to the members of every conversation it was sent
to (the router records those when it stores a file message).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Conflict, InvalidInput, NotFound, PayloadTooLarge
from chat4all.domain.events import FileEvent
from chat4all.domain.files import (
    DEFAULT_CONTENT_TYPE,
    FileRecord,
    FileStatus,
    is_valid_content_type,
    is_valid_filename,
    normalize_sha256,
    plan_parts,
)
from chat4all.domain.ids import new_id, parse_uuid
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import current_traceparent
from chat4all.ports import BlobStore, EventLog, FileStore, StoredPart

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PartUrl:
    part_number: int
    url: str


@dataclass(frozen=True, slots=True)
class UploadTicket:
    file: FileRecord
    parts: list[PartUrl]
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UploadState:
    file: FileRecord
    uploaded: list[StoredPart]
    missing: list[PartUrl]
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class FileView:
    """A file's metadata and, once completed, a download URL that expires."""

    file: FileRecord
    download_url: str | None
    download_expires_at: datetime | None


class FileService:
    def __init__(
        self,
        *,
        files: FileStore,
        blobs: BlobStore,
        log: EventLog,
        max_size: int,
        part_size: int,
        upload_url_ttl_s: float,
        download_url_ttl_s: float = 3600,
        key_prefix: str = "",
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._files = files
        self._blobs = blobs
        self._log = log
        self._max_size = max_size
        # the blob store may need larger parts than configured (S3: 5 MiB)
        self._part_size = max(part_size, blobs.min_part_size)
        self._upload_ttl = timedelta(seconds=upload_url_ttl_s)
        self._download_ttl = timedelta(seconds=download_url_ttl_s)
        self._key_prefix = key_prefix
        self._completing: dict[str, _Turn] = {}

    # uploading -------------------------------------------------------------------------------

    async def initiate(
        self, *, owner: str, filename: str, size: int, content_type: str | None = None, sha256: str | None = None
    ) -> UploadTicket:
        if size < 1:
            raise InvalidInput("size must be at least 1 byte")
        if size > self._max_size:
            raise PayloadTooLarge(
                f"files are limited to {self._max_size} bytes",
                code="file_too_large",
                details={"max_size": self._max_size},
            )
        if not is_valid_filename(filename):
            raise InvalidInput("filename must be 1-255 characters, without path separators or control characters")
        content_type = content_type or DEFAULT_CONTENT_TYPE
        if not is_valid_content_type(content_type):
            raise InvalidInput("content_type must be a media type such as 'video/mp4'")
        declared = _sha256(sha256) if sha256 is not None else None
        part_size, part_count = plan_parts(size, part_size=self._part_size)

        file_id = new_id()
        key = f"{self._key_prefix}files/{file_id}"
        upload_id = await self._blobs.create_upload(key)
        record = FileRecord(
            file_id=file_id,
            owner=owner,
            filename=filename,
            size=size,
            content_type=content_type,
            part_size=part_size,
            part_count=part_count,
            storage_key=key,
            upload_id=upload_id,
            sha256=declared,
            status=FileStatus.UPLOADING,
            created_at=self._clock(),
        )
        try:
            await self._files.create_file(record)
        except BaseException:
            await self._blobs.abort_upload(key, upload_id)
            raise
        expires_at = self._clock() + self._upload_ttl
        parts = await self._part_urls(record, range(1, part_count + 1), expires_at)
        return UploadTicket(file=record, parts=parts, expires_at=expires_at)

    async def upload_state(self, file_id: str, *, viewer: str) -> UploadState:
        """What is stored and fresh URLs for the rest, to resume an interrupted upload (R5.2)."""
        record = await self._owned(file_id, viewer)
        if record.status is FileStatus.COMPLETED:
            done = [StoredPart(n, record.part_length(n)) for n in range(1, record.part_count + 1)]
            return UploadState(file=record, uploaded=done, missing=[], expires_at=None)
        if record.status is FileStatus.FAILED or record.upload_id is None:
            return UploadState(file=record, uploaded=[], missing=[], expires_at=None)
        try:
            stored = await self._blobs.list_parts(record.storage_key, record.upload_id)
        except NotFound:
            return await self._after_vanished_upload(record, viewer)
        whole = _whole_parts(record, stored)
        expires_at = self._clock() + self._upload_ttl
        missing = [n for n in range(1, record.part_count + 1) if n not in whole]
        return UploadState(
            file=record,
            uploaded=[whole[n] for n in sorted(whole)],
            missing=await self._part_urls(record, missing, expires_at),
            expires_at=expires_at,
        )

    async def complete(self, *, caller: str, file_id: str, sha256: str) -> FileView:
        """Joins the parts, streams the stored bytes through SHA-256 and compares (R5.3). A
        mismatch fails the file for good (422 ``checksum_mismatch``); the bytes are deleted."""
        claimed = _sha256(sha256)
        record = await self._owned(file_id, caller)
        # one completion at a time per file in this process (other processes: guarded updates)
        entry = self._completing.setdefault(record.file_id, _Turn())
        entry.users += 1
        try:
            async with entry.lock:
                return await self._complete(await self._owned(file_id, caller), claimed)
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._completing[record.file_id]

    async def _complete(self, record: FileRecord, claimed: str) -> FileView:
        if record.status is FileStatus.COMPLETED:
            if record.sha256 != claimed:  # a repeat with another digest: the stored bytes are not those
                raise _mismatch(expected=claimed, actual=record.sha256)
            return await self._view(record)
        if record.status is FileStatus.FAILED or record.upload_id is None:
            raise Conflict(f"this upload has failed ({record.error}); start a new one", code="upload_failed")
        if record.sha256 is not None and record.sha256 != claimed:
            raise InvalidInput("sha256 differs from the one declared when the upload was initiated")
        try:
            stored = await self._blobs.list_parts(record.storage_key, record.upload_id)
        except NotFound:
            stored = None  # joined already by an earlier attempt that did not finish: verify it
        if stored is not None:
            whole = _whole_parts(record, stored)
            missing = [n for n in range(1, record.part_count + 1) if n not in whole]
            if missing:
                raise Conflict(
                    f"{len(missing)} of {record.part_count} parts are not uploaded yet",
                    code="upload_incomplete",
                    details={"missing_parts": missing[:100]},
                )
            await self._blobs.complete_upload(record.storage_key, record.upload_id, [whole[n] for n in sorted(whole)])
        try:
            actual, size = await self._blobs.digest(record.storage_key)
        except NotFound:
            await self._fail(record, "the upload is no longer stored")
            raise Conflict("the upload is no longer stored; start a new one", code="upload_failed") from None
        if actual != claimed or size != record.size:
            await self._fail(record, "checksum mismatch")
            await self._blobs.delete(record.storage_key)
            raise _mismatch(expected=claimed, actual=actual, size=size)
        now = self._clock()
        if not await self._files.finish_file(record.file_id, status=FileStatus.COMPLETED, at=now, sha256=actual):
            fresh = await self._reload(record)  # another process finished it, or cleaned it up
            if fresh.status is FileStatus.COMPLETED:
                return await self._view(fresh)
            raise Conflict(f"this upload has failed ({fresh.error}); start a new one", code="upload_failed")
        done = record.model_copy(
            update={"status": FileStatus.COMPLETED, "sha256": actual, "completed_at": now, "upload_id": None}
        )
        await self._announce(done)
        log.info("file completed", file_id=record.file_id, size=record.size, parts=record.part_count)
        return await self._view(done)

    # reading ---------------------------------------------------------------------------------

    async def get(self, file_id: str, *, viewer: str) -> FileView:
        """Owner, or a member of a conversation the file was sent to; anyone else: 404."""
        record = await self._find(file_id)
        if record.owner != viewer and not await self._files.can_download(record.file_id, viewer):
            raise NotFound("no such file")
        return await self._view(record)

    async def attachable(self, file_id: str, *, sender: str) -> dict[str, Any]:
        """The metadata a file message carries; 422 ``file_not_ready`` unless the file is
        completed and the sender's own (R5.5)."""
        try:
            record = await self._find(file_id)
        except NotFound:
            record = None
        if record is None or record.owner != sender or record.status is not FileStatus.COMPLETED:
            raise InvalidInput("no completed file of yours with this file_id", code="file_not_ready")
        return {
            "file_id": record.file_id,
            "filename": record.filename,
            "size": record.size,
            "content_type": record.content_type,
            "sha256": record.sha256,
        }

    # internals -------------------------------------------------------------------------------

    async def _find(self, file_id: str) -> FileRecord:
        try:
            file_id = parse_uuid(file_id)
        except ValueError:
            raise NotFound("no such file") from None
        record = await self._files.get_file(file_id)
        if record is None:
            raise NotFound("no such file")
        return record

    async def _owned(self, file_id: str, caller: str) -> FileRecord:
        record = await self._find(file_id)
        if record.owner != caller:
            raise NotFound("no such file")
        return record

    async def _reload(self, record: FileRecord) -> FileRecord:
        return await self._find(record.file_id)

    async def _view(self, record: FileRecord) -> FileView:
        if record.status is not FileStatus.COMPLETED:
            return FileView(file=record, download_url=None, download_expires_at=None)
        expires_at = self._clock() + self._download_ttl
        url = await self._blobs.download_url(
            record.storage_key, filename=record.filename, content_type=record.content_type, expires_at=expires_at
        )
        return FileView(file=record, download_url=url, download_expires_at=expires_at)

    async def _part_urls(self, record: FileRecord, numbers: Sequence[int], expires_at: datetime) -> list[PartUrl]:
        assert record.upload_id is not None
        return [
            PartUrl(
                n,
                await self._blobs.part_url(
                    record.storage_key, record.upload_id, n, size=record.part_length(n), expires_at=expires_at
                ),
            )
            for n in numbers
        ]

    async def _after_vanished_upload(self, record: FileRecord, viewer: str) -> UploadState:
        """The blob store no longer knows the upload: it was completed or cleaned up meanwhile."""
        fresh = await self._reload(record)
        if fresh.status is not FileStatus.UPLOADING:
            return await self.upload_state(fresh.file_id, viewer=viewer)
        return UploadState(file=fresh, uploaded=[], missing=[], expires_at=None)

    async def _fail(self, record: FileRecord, reason: str) -> None:
        await self._files.finish_file(record.file_id, status=FileStatus.FAILED, at=self._clock(), error=reason)
        log.info("file failed", file_id=record.file_id, reason=reason)

    async def _announce(self, record: FileRecord) -> None:
        assert record.sha256 is not None and record.completed_at is not None
        event = FileEvent(
            file_id=record.file_id,
            owner=record.owner,
            filename=record.filename,
            size=record.size,
            content_type=record.content_type,
            sha256=record.sha256,
            at=record.completed_at,
            traceparent=current_traceparent.get(),
        )
        await self._log.append(FileEvent.topic, event.key(), event.encode())


class _Turn:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


def _whole_parts(record: FileRecord, stored: Sequence[StoredPart]) -> dict[int, StoredPart]:
    """The stored parts that have exactly their expected size, by number."""
    return {
        p.part_number: p
        for p in stored
        if 1 <= p.part_number <= record.part_count and p.size == record.part_length(p.part_number)
    }


def _sha256(value: str) -> str:
    digest = normalize_sha256(value)
    if digest is None:
        raise InvalidInput("sha256 must be 64 hexadecimal digits")
    return digest


def _mismatch(*, expected: str, actual: str | None, size: int | None = None) -> InvalidInput:
    details: dict[str, Any] = {"expected": expected, "actual": actual}
    if size is not None:
        details["stored_size"] = size
    return InvalidInput(
        "the stored bytes do not have the SHA-256 you declared; the file is not usable",
        code="checksum_mismatch",
        details=details,
    )


class UploadCleanup:
    """Abandons uploads still incomplete after ``max_age_s``: their parts are dropped from the
    blob store and the file is marked failed. Safe to run from several processes at once."""

    def __init__(
        self, *, files: FileStore, blobs: BlobStore, max_age_s: float, batch: int = 100, clock: Clock = system_clock
    ) -> None:
        self._clock = clock
        self._files = files
        self._blobs = blobs
        self._max_age = timedelta(seconds=max_age_s)
        self._batch = batch

    async def run_once(self, *, now: datetime | None = None) -> int:
        cutoff = (now or self._clock()) - self._max_age
        cleaned = 0
        while True:
            stale = await self._files.stale_uploads(created_before=cutoff, limit=self._batch)
            for record in stale:
                if record.upload_id is not None:
                    await self._blobs.abort_upload(record.storage_key, record.upload_id)
                if await self._files.finish_file(
                    record.file_id,
                    status=FileStatus.FAILED,
                    at=self._clock(),
                    error="upload abandoned: not completed in time",
                ):
                    cleaned += 1
            if len(stale) < self._batch:
                break
        if cleaned:
            log.info("abandoned uploads cleaned up", count=cleaned)
        return cleaned
