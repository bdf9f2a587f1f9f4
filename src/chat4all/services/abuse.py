"""Abuse limits: which requests count against which allowance (settings ``login_*``,
``register_*``, ``send_*``, ``groups_*``, ``conversations_lookup_*``), on a ``RateLimiter``.

Each refusal is ``RateLimited`` (429 with Retry-After and RateLimit-* headers). Keys name the
subject: ``login:addr:<ip>``, ``login:acct:<username>``, ``send:<username>`` ... so one user's
or one address's excess never spends another's allowance.
"""

from __future__ import annotations

from dataclasses import dataclass

from chat4all.domain.limits import Backoff, Limit, RateLimited, locked_decision
from chat4all.ports import RateLimiter

MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class AbuseRules:
    login_per_address_per_minute: int = 60
    login_per_account_per_minute: int = 30
    login_free_failures: int = 5
    login_backoff_base_s: float = 1.0
    login_backoff_max_s: float = 900.0
    login_failures_forget_s: float = 3600.0
    register_per_address_per_hour: int = 100
    send_messages_per_minute: int = 1200
    send_recipients_per_minute: int = 3_000
    groups_per_user_per_hour: int = 100
    conversations_lookup_per_minute: int = 30


class AbuseGuard:
    def __init__(self, limiter: RateLimiter, rules: AbuseRules) -> None:
        self._limiter = limiter
        self.rules = rules

    # login --------------------------------------------------------------------------------------

    def _account_backoff(self, username: str) -> Backoff:
        r = self.rules
        return Backoff(
            f"login-fail:acct:{username.lower()}",
            free=r.login_free_failures,
            base_s=r.login_backoff_base_s,
            max_s=r.login_backoff_max_s,
            forget_s=r.login_failures_forget_s,
        )

    def _address_backoff(self, address: str) -> Backoff:
        # an address is shared (an office, a carrier's NAT): more free failures than one account
        r = self.rules
        return Backoff(
            f"login-fail:addr:{address}",
            free=r.login_free_failures * 4,
            base_s=r.login_backoff_base_s,
            max_s=r.login_backoff_max_s,
            forget_s=r.login_failures_forget_s,
        )

    async def before_login(self, username: str, address: str) -> None:
        """Refuses an attempt from an address or at an account that is over its rate, or locked
        after failures — whatever the password: the right one during a lockout is refused too."""
        r = self.rules
        decision = await self._limiter.hit(
            Limit(f"login:addr:{address}", r.login_per_address_per_minute, MINUTE),
            Limit(f"login:acct:{username.lower()}", r.login_per_account_per_minute, MINUTE),
        )
        if not decision.allowed:
            raise RateLimited("too many login attempts; try again later", decision)
        locked = max(
            await self._limiter.locked_for(self._account_backoff(username).key),
            await self._limiter.locked_for(self._address_backoff(address).key),
        )
        if locked > 0:
            raise RateLimited(
                "too many failed logins; try again later",
                locked_decision(r.login_free_failures or 1, locked),
                details={"retry_after_s": round(locked, 3)},
            )

    async def login_failed(self, username: str, address: str) -> None:
        await self._limiter.fail(self._account_backoff(username))
        await self._limiter.fail(self._address_backoff(address))

    async def login_succeeded(self, username: str) -> None:
        await self._limiter.clear(self._account_backoff(username).key)

    async def register(self, address: str) -> None:
        decision = await self._limiter.hit(
            Limit(f"register:addr:{address}", self.rules.register_per_address_per_hour, HOUR)
        )
        if not decision.allowed:
            raise RateLimited("too many registrations from this address; try again later", decision)

    # messaging ----------------------------------------------------------------------------------

    async def send(self, sender: str, recipients: int) -> None:
        r = self.rules
        decision = await self._limiter.hit(
            Limit(f"send:{sender}", r.send_messages_per_minute, MINUTE),
            Limit(f"fanout:{sender}", r.send_recipients_per_minute, MINUTE, cost=max(1, recipients)),
        )
        if not decision.allowed:
            raise RateLimited(
                "you are sending too fast; slow down",
                decision,
                details={"messages_per_minute": r.send_messages_per_minute, "recipients_per_minute": r.send_recipients_per_minute},
            )

    async def create_group(self, creator: str) -> None:
        decision = await self._limiter.hit(Limit(f"groups:{creator}", self.rules.groups_per_user_per_hour, HOUR))
        if not decision.allowed:
            raise RateLimited("you have created too many groups; try again later", decision)

    async def named_unknown_users(self, creator: str) -> None:
        """A conversation naming users that do not exist: each such request spends the creator's
        lookup allowance, so usernames cannot be probed in bulk."""
        decision = await self._limiter.hit(
            Limit(f"lookup:{creator}", self.rules.conversations_lookup_per_minute, MINUTE)
        )
        if not decision.allowed:
            raise RateLimited("too many conversations naming unknown users; try again later", decision)
