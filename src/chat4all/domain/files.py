"""Files (R5): the record kept per upload, how a file is cut into parts, and checksum rules.

Pure rules, no I/O. The bytes live in a BlobStore; this module only decides sizes, names and
whether what the client declares is well formed.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_CONTENT_TYPE = "application/octet-stream"
# S3 refuses multipart uploads of more parts than this
MAX_PARTS = 10_000
MAX_FILENAME_CHARS = 255

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# type/subtype[; parameters], RFC 9110 tokens; generous but no control characters or spaces in the type
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[\x20-\x7e]*)?$")


class FileStatus(StrEnum):
    """uploading → completed | failed (checksum mismatch, or abandoned and cleaned up)."""

    UPLOADING = "uploading"
    COMPLETED = "completed"
    FAILED = "failed"


class FileRecord(BaseModel):
    """One uploaded (or uploading) file: what the metadata store keeps (R5.4)."""

    model_config = ConfigDict(frozen=True)

    file_id: str
    owner: str
    filename: str
    size: int
    content_type: str
    part_size: int
    part_count: int
    storage_key: str
    upload_id: str | None
    sha256: str | None
    status: FileStatus
    created_at: datetime
    error: str | None = None
    completed_at: datetime | None = None

    def part_length(self, part_number: int) -> int:
        """The exact size part ``part_number`` (1-based) must have."""
        return part_length(self.size, self.part_size, part_number)


def plan_parts(size: int, *, part_size: int, max_parts: int = MAX_PARTS) -> tuple[int, int]:
    """(part_size, part_count) for a file: the configured part size, raised (to a whole MiB) if
    the file would otherwise need more than ``max_parts``; one part for a small file."""
    if size <= 0:
        raise ValueError("size must be positive")
    if math.ceil(size / part_size) > max_parts:
        part_size = math.ceil(size / max_parts / MiB) * MiB
    return part_size, math.ceil(size / part_size)


def part_length(size: int, part_size: int, part_number: int) -> int:
    count = math.ceil(size / part_size)
    if not 1 <= part_number <= count:
        raise ValueError(f"part_number must be between 1 and {count}")
    return part_size if part_number < count else size - part_size * (count - 1)


def normalize_sha256(value: str) -> str | None:
    """The lowercase hex digest, or None if ``value`` is not 64 hex digits."""
    return value.lower() if _SHA256.match(value) else None


def is_valid_content_type(value: str) -> bool:
    return len(value) <= 255 and bool(_CONTENT_TYPE.match(value))


def is_valid_filename(value: str) -> bool:
    """1–255 characters, none of them a control character or a path separator."""
    if not 1 <= len(value) <= MAX_FILENAME_CHARS or value in (".", ".."):
        return False
    return not any(ch in "/\\" or unicodedata.category(ch).startswith("C") for ch in value)


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact UTF-8 one (RFC 6266 / 5987)."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# types a browser would render or run in the download's origin (stored XSS through an upload)
_ACTIVE_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "application/xslt+xml",
        "text/javascript",
        "application/javascript",
        "application/ecmascript",
        "text/ecmascript",
        "application/x-javascript",
        "text/vtt",
        "application/pdf",
        "application/x-shockwave-flash",
        "multipart/x-mixed-replace",
    }
)
SAFE_DOWNLOAD_TYPE = "application/octet-stream"
# for the local-disk downloads: even a type that slipped through runs nothing
DOWNLOAD_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "sandbox; default-src 'none'",
}


def served_type(content_type: str) -> str:
    """The type a download is served as: the uploader's, unless a browser would render it as an
    active document (HTML, SVG, XML, scripts, ...), which is served as a plain byte stream."""
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence in _ACTIVE_TYPES or essence.endswith("+xml") or essence.startswith("text/html"):
        return SAFE_DOWNLOAD_TYPE
    return content_type
