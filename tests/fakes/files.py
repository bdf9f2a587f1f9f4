"""Files in memory: their metadata (with the shares a ``FakeMessageStore`` records) and their bytes.

``FakeBlobStore`` hands out ``fake://`` URLs: no HTTP server serves them, so a test stores a
part with ``put_part`` where a client would PUT it (the blob store contract, which moves the
bytes over HTTP, runs on the real adapters only).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from chat4all.domain.errors import NotFound
from chat4all.domain.files import FileRecord, FileStatus
from chat4all.ports import StoredPart
from tests.fakes.messaging import FakeMessageStore


class FakeFileStore:
    def __init__(self, messages: FakeMessageStore | None = None) -> None:
        self._messages = messages or FakeMessageStore()
        self.records: dict[str, FileRecord] = {}

    async def create_file(self, record: FileRecord) -> None:
        self.records[record.file_id] = record

    async def get_file(self, file_id: str) -> FileRecord | None:
        return self.records.get(file_id)

    async def finish_file(
        self, file_id: str, *, status: FileStatus, at: datetime, sha256: str | None = None, error: str | None = None
    ) -> bool:
        record = self.records.get(file_id)
        if record is None or record.status is not FileStatus.UPLOADING:
            return False
        changes: dict[str, Any] = {"status": status, "upload_id": None, "error": error}
        if status is FileStatus.COMPLETED:
            changes.update(sha256=sha256, completed_at=at)
        self.records[file_id] = record.model_copy(update=changes)
        return True

    async def stale_uploads(self, *, created_before: datetime, limit: int) -> list[FileRecord]:
        stale = [r for r in self.records.values() if r.status is FileStatus.UPLOADING and r.created_at < created_before]
        return sorted(stale, key=lambda r: r.created_at)[:limit]

    async def can_download(self, file_id: str, username: str) -> bool:
        conversations = self._messages.conversations.conversations
        return any(
            f == file_id and c in conversations and username in conversations[c].members
            for f, c in self._messages.shares
        )


class FakeBlobStore:
    min_part_size = 1

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}  # upload id -> part number -> bytes
        self.deleted: list[str] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def ping(self) -> None:
        pass

    async def create_upload(self, key: str) -> str:
        upload_id = secrets.token_hex(8)
        self.uploads[upload_id] = {}
        return upload_id

    async def part_url(self, key: str, upload_id: str, part_number: int, *, size: int, expires_at: datetime) -> str:
        return f"fake://uploads/{upload_id}/parts/{part_number}?size={size}&expires={int(expires_at.timestamp())}"

    def put_part(self, upload_id: str, part_number: int, body: bytes) -> None:
        """What a client's PUT to ``part_url`` does."""
        self.uploads[upload_id][part_number] = body

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        parts = self._upload(upload_id)
        return [StoredPart(n, len(parts[n]), hashlib.md5(parts[n]).hexdigest()) for n in sorted(parts)]

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        stored = self._upload(upload_id)
        self.objects[key] = b"".join(stored[p.part_number] for p in parts)
        del self.uploads[upload_id]

    async def abort_upload(self, key: str, upload_id: str) -> None:
        self.uploads.pop(upload_id, None)

    async def digest(self, key: str) -> tuple[str, int]:
        if key not in self.objects:
            raise NotFound("no such object")
        return hashlib.sha256(self.objects[key]).hexdigest(), len(self.objects[key])

    async def download_url(self, key: str, *, filename: str, content_type: str, expires_at: datetime) -> str:
        return f"fake://objects/{key}?expires={int(expires_at.timestamp())}"

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)
        self.deleted.append(key)

    def _upload(self, upload_id: str) -> dict[int, bytes]:
        if upload_id not in self.uploads:
            raise NotFound("no such upload")
        return self.uploads[upload_id]
