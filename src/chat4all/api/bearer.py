"""The one parser of ``Authorization: Bearer <token>``, for REST (``api/deps.py``), the send
fast path (``api/fast_send.py``) and the WebSocket handshake (``api/ws.py``)."""

from __future__ import annotations


def bearer_token(header: str | bytes | None) -> str | None:
    """The token of a Bearer authorization header (scheme case-insensitive, spaces around the
    token ignored); None when there is none."""
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = text.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
