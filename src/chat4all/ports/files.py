"""Files (R5): their bytes in a blob store, their metadata and shares in a file store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from chat4all.domain.files import FileRecord, FileStatus


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part the blob store holds for an unfinished multipart upload."""

    part_number: int
    size: int
    etag: str = ""


class BlobStore(Protocol):
    """Object storage for file bytes (S3 in production, the local disk in embedded).

    Clients move the bytes themselves through the URLs this hands out (plain HTTP, no token);
    the API process never holds a part or a file in memory.
    """

    # the smallest size a part other than the last may have (S3: 5 MiB)
    min_part_size: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def create_upload(self, key: str) -> str:
        """Starts a multipart upload of ``key``; returns its upload id."""

    async def part_url(self, key: str, upload_id: str, part_number: int, *, size: int, expires_at: datetime) -> str:
        """An absolute URL through which one PUT of exactly ``size`` bytes stores the part."""

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """The parts stored so far, by part number; NotFound if the upload is no more."""

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        """Joins the parts into the object ``key``; NotFound if the upload is no more."""

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Drops an unfinished upload and its parts; nothing happens if it is gone already."""

    async def digest(self, key: str) -> tuple[str, int]:
        """(SHA-256 hex, size) of the stored object, streamed; NotFound if there is none."""

    async def download_url(self, key: str, *, filename: str, content_type: str, expires_at: datetime) -> str:
        """An absolute URL that serves the object (with Range support) until ``expires_at``."""

    async def delete(self, key: str) -> None:
        """Removes the object; nothing happens if it is gone already."""


class FileStore(Protocol):
    """File metadata (R5.4) and which conversations each file was sent to."""

    async def create_file(self, record: FileRecord) -> None: ...

    async def get_file(self, file_id: str) -> FileRecord | None: ...

    async def finish_file(
        self, file_id: str, *, status: FileStatus, at: datetime, sha256: str | None = None, error: str | None = None
    ) -> bool:
        """Moves an uploading file to completed or failed; False if it was not uploading."""

    async def stale_uploads(self, *, created_before: datetime, limit: int) -> list[FileRecord]:
        """Files still uploading that were initiated before ``created_before``, oldest first."""

    async def can_download(self, file_id: str, username: str) -> bool:
        """True if the file was sent in a conversation ``username`` is a member of."""
