"""W3C trace context for one request or one event: parsed, generated, and carried in a contextvar.

The ``traceparent`` goes into every event appended while handling a request, so the router's log
lines carry the trace_id of the HTTP request that accepted the message.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")

current_traceparent: ContextVar[str | None] = ContextVar("traceparent", default=None)


def new_traceparent(trace_id: str | None = None) -> str:
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def continue_trace(header: str | None) -> str:
    """A child traceparent of ``header`` if it is valid, else a fresh trace."""
    if header:
        match = _TRACEPARENT.match(header.strip().lower())
        if match and match.group(1) != "0" * 32 and match.group(2) != "0" * 16:
            return new_traceparent(match.group(1))
    return new_traceparent()


def trace_id_of(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    match = _TRACEPARENT.match(traceparent)
    return match.group(1) if match else None


def current_trace_id() -> str | None:
    return trace_id_of(current_traceparent.get())
