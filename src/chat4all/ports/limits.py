"""Abuse limits: counting requests against limits (domain/limits.py)."""

from __future__ import annotations

from typing import Protocol

from chat4all.domain.limits import Backoff, Decision, Limit


class RateLimiter(Protocol):
    """Counts requests against limits (domain/limits.py): in memory in one process, in Redis
    when several share the counts. Keys are opaque; callers choose them ("send:alice")."""

    async def hit(self, *rules: Limit) -> Decision:
        """Charges every rule, or none if one refuses; the verdict over all of them."""

    async def fail(self, backoff: Backoff) -> float:
        """Records one more failure in a row; the seconds the key is now locked (0: still free)."""

    async def locked_for(self, key: str) -> float:
        """Seconds left of the key's lock after failures (0 when not locked)."""

    async def clear(self, key: str) -> None:
        """Forgets the key's failures (a success)."""
