"""API v2's message view, and the inbox's cursor and sync token: tombstones show no content,
and every malformed cursor or token is invalid input, never a crash."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import orjson
import pytest

from chat4all.domain.errors import InvalidInput
from chat4all.domain.models import Message
from chat4all.services.inbox import SYNC_MARGIN, _decode_cursor, _decode_token, _encode_token

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _message(**fields: object) -> Message:
    base = dict(
        message_id="m", conversation_id="c", sequence_number=3, sender="alice", recipients=("bob",),
        channels=("internal",), payload={"type": "text", "text": "hi"}, metadata={"k": 1}, created_at=T0,
    )
    return Message(**{**base, **fields})  # type: ignore[arg-type]


def test_a_tombstone_keeps_its_place_and_shows_no_content() -> None:
    from chat4all.domain.views import v2_message

    view = v2_message(_message(deleted=True, payload={}, metadata={}))
    assert (view["sequence_number"], view["deleted"], view["payload"], view["metadata"]) == (3, True, None, {})
    edited = v2_message(_message(edited_at=T0))
    assert edited["edited_at"] == T0.isoformat() and edited["kind"] == "user"
    system = v2_message(_message(kind="system", payload={"type": "system", "event": "renamed", "actor": "alice", "name": "x"}))
    assert system["kind"] == "system" and system["payload"]["event"] == "renamed"


def test_a_sync_token_reads_back_less_the_margin() -> None:
    assert _decode_token(_encode_token(T0)) == T0 - SYNC_MARGIN


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "%%%", _b64([1, 2]), _b64({"t": "yesterday"}), _b64({"t": "2026-11-30T08:00:00"}),
     _b64({"t": "0001-01-01T00:00:00+00:00"}), _b64({"x": 1}), _b64({"t": 5})],
)
def test_a_malformed_sync_token_is_invalid_input(token: str) -> None:
    with pytest.raises(InvalidInput):
        _decode_token(token)


@pytest.mark.parametrize("cursor", ["garbage", _b64({"t": 1}), _b64(["2026-11-30T08:00:00", "c"]), _b64([1, 2, 3]), _b64([None, "c"])])
def test_a_malformed_inbox_cursor_is_invalid_input(cursor: str) -> None:
    with pytest.raises(InvalidInput):
        _decode_cursor(cursor)
