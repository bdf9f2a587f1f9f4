"""Message ids are random version 4 UUIDs in canonical form, as ``uuid.uuid4()`` makes them."""

from __future__ import annotations

import uuid

from chat4all.domain.ids import new_id, parse_uuid


def test_new_ids_are_canonical_random_version_4_uuids() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:1000]:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == value == parse_uuid(value)  # lowercase, hyphenated, 36 characters
