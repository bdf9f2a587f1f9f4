"""Identifiers and time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

# the largest integer a BIGINT column (and SQLite's INTEGER) holds: the bound of every integer input
MAX_INT64 = 2**63 - 1


def new_id() -> str:
    return str(uuid.uuid4())


def parse_uuid(value: str) -> str:
    """Canonical lowercase form of a UUID; ValueError if it is not one."""
    return str(uuid.UUID(value))


def utcnow() -> datetime:
    return datetime.now(UTC)
