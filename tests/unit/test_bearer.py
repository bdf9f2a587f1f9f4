"""One Bearer parser for REST, the send fast path and the WebSocket handshake."""

from __future__ import annotations

import pytest

from chat4all.api.bearer import bearer_token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer  abc ", "abc"),
        (b"BEARER abc", "abc"),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | bytes | None, token: str | None) -> None:
    assert bearer_token(header) == token
