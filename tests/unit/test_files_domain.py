"""Pure file rules (R5): how a file is cut into parts, what a client may declare, FileEvent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from chat4all.domain.events import FileEvent
from chat4all.domain.files import (
    GiB,
    MiB,
    content_disposition,
    is_valid_content_type,
    is_valid_filename,
    normalize_sha256,
    part_length,
    plan_parts,
)


def test_a_small_file_is_one_part_and_a_big_one_keeps_the_configured_size() -> None:
    assert plan_parts(1, part_size=8 * MiB) == (8 * MiB, 1)
    assert plan_parts(8 * MiB, part_size=8 * MiB) == (8 * MiB, 1)
    assert plan_parts(8 * MiB + 1, part_size=8 * MiB) == (8 * MiB, 2)
    assert plan_parts(1_800_000_000, part_size=8 * MiB) == (8 * MiB, 215)


def test_the_part_size_grows_to_whole_mib_when_parts_would_exceed_the_limit() -> None:
    part_size, count = plan_parts(2 * GiB, part_size=64 * 1024)
    assert part_size % MiB == 0 and count <= 10_000
    assert plan_parts(100 * MiB, part_size=MiB, max_parts=10) == (10 * MiB, 10)
    with pytest.raises(ValueError):
        plan_parts(0, part_size=MiB)


def test_every_part_but_the_last_has_the_part_size() -> None:
    size = 2 * 5 * MiB + 123
    assert [part_length(size, 5 * MiB, n) for n in (1, 2, 3)] == [5 * MiB, 5 * MiB, 123]
    assert part_length(10 * MiB, 5 * MiB, 2) == 5 * MiB
    for wrong in (0, 4):
        with pytest.raises(ValueError):
            part_length(size, 5 * MiB, wrong)


def test_what_a_client_may_declare() -> None:
    digest = "ab" * 32
    assert normalize_sha256(digest.upper()) == digest
    assert normalize_sha256("ab" * 31) is None and normalize_sha256("zz" * 32) is None
    assert is_valid_filename("holiday é.mp4") and is_valid_filename("a" * 255)
    for bad in ("", "a" * 256, "../x", "a/b", "a\\b", "a\nb", "..", "a\x00"):
        assert not is_valid_filename(bad), bad
    assert is_valid_content_type("video/mp4") and is_valid_content_type("text/plain; charset=utf-8")
    for bad in ("video", "not a type", "a/b\r\nX-Evil: 1"):
        assert not is_valid_content_type(bad), bad


def test_the_download_name_survives_any_characters() -> None:
    header = content_disposition('sum"mer é.mp4')
    assert header == "attachment; filename=\"sum_mer _.mp4\"; filename*=UTF-8''sum%22mer%20%C3%A9.mp4"


def test_a_file_event_round_trips_and_refuses_unknown_fields() -> None:
    event = FileEvent(
        file_id="f1",
        owner="alice",
        filename="a.bin",
        size=3,
        content_type="application/octet-stream",
        sha256="00" * 32,
        at=datetime(2026, 11, 25, tzinfo=UTC),
        traceparent=None,
    )
    decoded = FileEvent.decode(event.encode())
    assert decoded == event and decoded.type == "file.completed" and decoded.v == 1
    assert event.key() == "f1" and FileEvent.topic == "file.events"
    with pytest.raises(ValidationError):
        FileEvent.model_validate({**event.model_dump(mode="json"), "extra": 1})
