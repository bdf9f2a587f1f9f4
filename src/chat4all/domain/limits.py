"""Rate limits: what a rule is, what a check answers, and the arithmetic both adapters share.

A rule allows ``limit`` units per ``window_s``, counted by GCRA (the generic cell rate
algorithm): one stored number per key, the theoretical arrival time (TAT). Each unit moves the
TAT on by ``window_s / limit``; a request is refused while the TAT would end more than one
window ahead of now. That is a sliding window with no boundary bursts, and a refused request
costs nothing. ``RateLimiter`` adapters (``ports.RateLimiter``) apply several rules at once,
all or nothing: if one refuses, none is charged.

Failures (wrong passwords) have a rule of their own: the first ``free`` in a row are free, each
further one locks the key for ``base_s · 2ⁿ`` up to ``max_s``; a success clears the streak, and a
streak with no new failure for ``forget_s`` is forgotten.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chat4all.domain.errors import Chat4AllError


@dataclass(frozen=True, slots=True)
class Limit:
    """``limit`` units per ``window_s`` seconds for ``key``; this request costs ``cost`` units."""

    key: str
    limit: int
    window_s: float
    cost: int = 1


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int  # units still available now (after this request, if it was allowed)
    reset_s: float  # seconds until the rule is back to its full allowance
    retry_after_s: float  # 0 when allowed; otherwise when the same request would pass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Failures of ``key``: ``free`` in a row cost nothing, then locks of base·2ⁿ up to max."""

    key: str
    free: int
    base_s: float
    max_s: float
    forget_s: float

    def lock_after(self, failures: int) -> float:
        """Seconds locked after this many failures in a row."""
        if failures <= self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2 ** min(failures - self.free - 1, 62))


class RateLimited(Chat4AllError):
    """429 with Retry-After and RateLimit-* headers (api/errors.py)."""

    code = "rate_limited"

    def __init__(self, message: str, decision: Decision, *, details: object = None) -> None:
        super().__init__(message, details=details)
        self.decision = decision

    def headers(self) -> dict[str, str]:
        d = self.decision
        return {
            "Retry-After": str(max(1, math.ceil(d.retry_after_s))),
            "RateLimit-Limit": str(d.limit),
            "RateLimit-Remaining": str(max(0, d.remaining)),
            "RateLimit-Reset": str(max(1, math.ceil(d.reset_s))),
        }


def locked_decision(limit: int, seconds: float) -> Decision:
    """A lockout (back-off after failures) told in the same terms as a refused rule."""
    return Decision(allowed=False, limit=limit, remaining=0, reset_s=seconds, retry_after_s=seconds)


def gcra(tat_ms: float | None, now_ms: float, rule: Limit) -> tuple[Decision, float]:
    """The decision for ``rule`` at ``now_ms`` given the stored TAT, and the TAT to store if it
    is charged. The Redis adapter does the same sums in Lua (``adapters/redis_limits.py``)."""
    window = rule.window_s * 1000.0
    interval = window / rule.limit
    tat = max(tat_ms if tat_ms is not None else now_ms, now_ms)
    new_tat = tat + rule.cost * interval
    allow_at = new_tat - window
    if allow_at <= now_ms:
        remaining = math.floor((now_ms - allow_at) / interval)
        return Decision(True, rule.limit, remaining, (new_tat - now_ms) / 1000.0, 0.0), new_tat
    remaining = max(0, math.floor((now_ms - (tat - window)) / interval))
    retry = allow_at - now_ms if rule.cost <= rule.limit else window
    return Decision(False, rule.limit, remaining, (tat - now_ms) / 1000.0, retry / 1000.0), tat


def verdict(decisions: list[Decision]) -> Decision:
    """One answer for several rules: the refusal that lasts longest, else the tightest pass."""
    refused = [d for d in decisions if not d.allowed]
    if refused:
        return max(refused, key=lambda d: d.retry_after_s)
    return min(decisions, key=lambda d: d.remaining)
