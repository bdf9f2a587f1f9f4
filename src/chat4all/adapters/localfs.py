"""BlobStore on the local disk, for the embedded profile.

Layout under ``root``: ``uploads/<upload_id>/<part_number>`` holds the parts of an unfinished
upload (a part appears under its number only once all its bytes are on disk), ``objects/<key>``
the finished files. Clients reach both through URLs the app itself serves
(``adapters/localfs_http.py``, mounted by the composition root), signed with HMAC-SHA256 and expiring, so they work without a token
and cannot be altered: the signature covers the method, the upload and part (or the key), the
exact part size, the download name and type, and the expiry.

Every byte is streamed: a part is written in chunks of at most ``WRITE_CHUNK`` as it arrives,
parts are joined with ``copy_file_range`` (in the kernel), and digests read 1 MiB at a time,
all of it in worker threads so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from chat4all.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from chat4all.domain.files import MiB
from chat4all.ports import StoredPart

# the ASGI app that serves these URLs (adapters/localfs_http.py) is mounted under this prefix
URL_PREFIX = "/v1/blobs"
WRITE_CHUNK = MiB
READ_CHUNK = MiB

_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")


def signing_key(secret: str) -> bytes:
    """The HMAC key for blob URLs, derived from a deployment secret (e.g. the JWT secret)."""
    return hmac.new(secret.encode(), b"chat4all blob urls v1", hashlib.sha256).digest()


class LocalBlobStore:
    min_part_size = 1  # the disk has no minimum; Settings decide the part size

    def __init__(self, root: Path, *, base_url: str, key: bytes) -> None:
        self.root = root
        self._uploads = root / "uploads"
        self._objects = root / "objects"
        self._base_url = base_url.rstrip("/")
        self._key = key

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._objects.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing is held open between calls."""

    async def ping(self) -> None:
        if not (self._objects.is_dir() and os.access(self._objects, os.W_OK)):
            raise Unavailable(f"the file directory {self.root} is not writable")

    # the port --------------------------------------------------------------------------------

    async def create_upload(self, key: str) -> str:
        self._object_path(key)  # refuses a key that is not a safe relative path
        upload_id = secrets.token_hex(16)
        await asyncio.to_thread(self._upload_dir(upload_id).mkdir, parents=True)
        return upload_id

    async def part_url(self, key: str, upload_id: str, part_number: int, *, size: int, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        signature = self._sign("PUT", upload_id, str(part_number), str(size), str(expires))
        query = urlencode({"size": size, "expires": expires, "sig": signature})
        return f"{self._base_url}{URL_PREFIX}/uploads/{upload_id}/parts/{part_number}?{query}"

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        return await asyncio.to_thread(self._list_parts, self._existing_upload(upload_id))

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        directory = self._existing_upload(upload_id)
        await asyncio.to_thread(self._join, directory, parts, self._object_path(key))
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def abort_upload(self, key: str, upload_id: str) -> None:
        if _UPLOAD_ID.match(upload_id):
            await asyncio.to_thread(shutil.rmtree, self._upload_dir(upload_id), True)

    async def digest(self, key: str) -> tuple[str, int]:
        path = self._object_path(key)
        try:
            return await asyncio.to_thread(_sha256_of, path)
        except FileNotFoundError:
            raise NotFound("no such object") from None

    async def download_url(self, key: str, *, filename: str, content_type: str, expires_at: datetime) -> str:
        self._object_path(key)
        expires = int(expires_at.timestamp())
        signature = self._sign("GET", key, str(expires), filename, content_type)
        query = urlencode({"expires": expires, "name": filename, "type": content_type, "sig": signature})
        return f"{self._base_url}{URL_PREFIX}/objects/{quote(key)}?{query}"

    async def delete(self, key: str) -> None:
        path = self._object_path(key)
        await asyncio.to_thread(path.unlink, True)

    # what the signed-URL routes call ---------------------------------------------------------

    def check_part_url(
        self, upload_id: str, part_number: int, *, size: str | None, expires: str | None, sig: str | None
    ) -> int:
        """The part size the URL allows; Forbidden if the URL was altered or has expired."""
        self._check(("PUT", upload_id, str(part_number), size or "", expires or ""), expires, sig)
        return int(size or "0")

    def check_download_url(
        self, key: str, *, expires: str | None, name: str | None, type: str | None, sig: str | None
    ) -> Path:
        """The file to serve; Forbidden if the URL was altered or has expired, NotFound if gone."""
        self._check(("GET", key, expires or "", name or "", type or ""), expires, sig)
        path = self._object_path(key)
        if not path.is_file():
            raise NotFound("no such file")
        return path

    async def write_part(
        self, upload_id: str, part_number: int, *, size: int, chunks: AsyncIterator[bytes]
    ) -> StoredPart:
        """Streams one part to disk. Exactly ``size`` bytes, or nothing is kept: a longer body is
        refused as soon as it passes the size (413), a shorter one at its end (422), and an
        interrupted one is dropped, so a part is either whole or missing."""
        directory = self._existing_upload(upload_id)
        target = directory / str(part_number)
        partial = directory / f".{part_number}.{secrets.token_hex(4)}.partial"
        try:
            file = await asyncio.to_thread(open, partial, "wb")
        except FileNotFoundError:
            raise NotFound("no such upload (finished, aborted or expired)") from None
        try:
            received = await _stream_to(file, chunks, limit=size, part_number=part_number)
            if received != size:
                raise InvalidInput(
                    f"part {part_number} must be exactly {size} bytes; {received} arrived",
                    code="part_size_mismatch",
                    details={"part_number": part_number, "expected": size, "received": received},
                )
            await asyncio.to_thread(_finish, file)
            await asyncio.to_thread(os.replace, partial, target)
        except BaseException:
            await asyncio.to_thread(_discard, file, partial)
            raise
        return StoredPart(part_number=part_number, size=size)

    # internals -------------------------------------------------------------------------------

    def _sign(self, *fields: str) -> str:
        return hmac.new(self._key, "\n".join(fields).encode(), hashlib.sha256).hexdigest()

    def _check(self, fields: tuple[str, ...], expires: str | None, sig: str | None) -> None:
        if not sig or not hmac.compare_digest(self._sign(*fields), sig):
            raise Forbidden("this URL is not valid: its signature does not match", code="invalid_signature")
        if not expires or not expires.isdigit() or int(expires) < time.time():
            raise Forbidden("this URL has expired; ask the API for a fresh one", code="url_expired")

    def _upload_dir(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.match(upload_id):
            raise NotFound("no such upload")
        return self._uploads / upload_id

    def _existing_upload(self, upload_id: str) -> Path:
        directory = self._upload_dir(upload_id)
        if not directory.is_dir():
            raise NotFound("no such upload (finished, aborted or expired)")
        return directory

    def _object_path(self, key: str) -> Path:
        segments = key.split("/")
        if not key or not all(_KEY_SEGMENT.match(s) for s in segments):
            raise NotFound("no such object")
        return self._objects.joinpath(*segments)

    @staticmethod
    def _list_parts(directory: Path) -> list[StoredPart]:
        parts = []
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.isdigit():
                    parts.append(StoredPart(part_number=int(entry.name), size=entry.stat().st_size))
        return sorted(parts, key=lambda p: p.part_number)

    @staticmethod
    def _join(directory: Path, parts: Sequence[StoredPart], target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            with open(partial, "wb") as out:
                for part in parts:
                    source = directory / str(part.part_number)
                    try:
                        with open(source, "rb") as src:
                            length = os.fstat(src.fileno()).st_size
                            if length != part.size:
                                raise Conflict(f"part {part.part_number} has {length} bytes, not {part.size}")
                            _copy(src.fileno(), out.fileno(), length)
                    except FileNotFoundError:
                        raise Conflict(f"part {part.part_number} is not stored") from None
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


async def _stream_to(file: BinaryIO, chunks: AsyncIterator[bytes], *, limit: int, part_number: int) -> int:
    """Writes the chunks in blocks of WRITE_CHUNK (in a thread); refuses more than ``limit``."""
    received = 0
    block = bytearray()
    async for chunk in chunks:
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(
                f"part {part_number} is larger than its {limit} bytes",
                code="part_too_large",
                details={"part_number": part_number, "expected": limit},
            )
        block += chunk
        if len(block) >= WRITE_CHUNK:
            full, block = block, bytearray()
            await asyncio.to_thread(file.write, full)
    if block:
        await asyncio.to_thread(file.write, block)
    return received


def _finish(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _discard(file: BinaryIO, path: Path) -> None:
    file.close()
    path.unlink(missing_ok=True)


def _copy(src: int, dst: int, length: int) -> None:
    """Appends ``length`` bytes of ``src`` to ``dst`` in the kernel (no user-space buffer)."""
    remaining = length
    while remaining:
        try:
            copied = os.copy_file_range(src, dst, min(remaining, 1 << 30))
        except OSError:  # e.g. across filesystems on old kernels: fall back to sendfile/reads
            copied = 0
        if copied == 0:
            chunk = os.read(src, min(remaining, READ_CHUNK))
            if not chunk:
                raise Conflict("a part is shorter than it was")
            os.write(dst, chunk)
            copied = len(chunk)
        remaining -= copied


def _sha256_of(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    buffer = bytearray(READ_CHUNK)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
            size += n
    return digest.hexdigest(), size
