"""Registration, login, token refresh with single-use rotation, sessions and their revocation,
and access-token checks (R1, R8.3; issue 14).

A *session* is a refresh-token family: the login that started it and every rotation since.
Access tokens name their family (claim ``fam``). Revoking a family (logout, reuse of a spent
refresh token, a password change) is written to the metadata store, which every process shares;
each process checks a family's state at most every ``revocation_check_s`` seconds, so a revoked
session's access tokens stop working everywhere within that time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bcrypt
import jwt

from chat4all.batching import GroupCommit
from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Forbidden, InvalidInput, Unauthenticated
from chat4all.domain.ids import new_id
from chat4all.domain.models import User, is_valid_username
from chat4all.ports import MetadataStore
from chat4all.services.abuse import AbuseGuard

_ALGORITHM = "HS256"
_CACHE_SIZE = 50_000
_SWEEP_MAX = 5_000  # families read along with those due, at most, in one store read
# the successor of a spent refresh token, and its access token, are named after it: a retried
# refresh within the grace window gets the very same pair back
_SUCCESSOR = uuid.UUID("6f1d8f0e-3c1a-4d8e-9a57-2b1f3f0c9e41")


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Session:
    """Who an access token speaks for, which session it belongs to and until when."""

    username: str
    family_id: str | None  # None for tokens issued before sessions were tracked
    expires_at: float  # unix time


def _prehash(password: str) -> bytes:
    # bcrypt reads at most 72 bytes; hashing first lets every one of the 128 allowed characters count
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


def _check_password_rules(password: str) -> None:
    if not 8 <= len(password) <= 128:
        raise InvalidInput("password must be 8-128 characters")


class AuthService:
    def __init__(
        self,
        *,
        metadata: MetadataStore,
        secret: str,
        access_ttl_s: int,
        refresh_ttl_s: int,
        bcrypt_rounds: int,
        revocation_check_s: float = 2.0,
        refresh_reuse_grace_s: float = 10.0,
        guard: AbuseGuard | None = None,
        clock: Clock = system_clock,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock  # token times and expiries
        self._monotonic = monotonic  # how long a revocation check is trusted
        self._metadata = metadata
        self._guard = guard
        self._secret = secret
        self._access_ttl = access_ttl_s
        self._refresh_ttl = refresh_ttl_s
        self._rounds = bcrypt_rounds
        self.revocation_check_s = revocation_check_s
        self._reuse_grace_s = refresh_reuse_grace_s
        self._verified: dict[str, Session] = {}  # access token → its checked claims
        self._families: dict[str, tuple[bool, float]] = {}  # family → (revoked, monotonic time checked)
        self._checking: dict[str, asyncio.Future[bool]] = {}  # one store read per family at a time
        self._swept_at = float("-inf")  # when a read last took along the families checked long ago
        # every family due for a check while a read is in flight goes in the next read: a node
        # serving thousands of sessions asks the store a few times per revocation_check_s, not
        # once per session
        self._revocation_reads: GroupCommit[str, bool] = GroupCommit(self._read_revocations, max_batch=1000)
        # compared against when the user does not exist, so that both paths cost the same
        self._dummy_hash = bcrypt.hashpw(_prehash("not-a-password"), bcrypt.gensalt(bcrypt_rounds))

    # accounts --------------------------------------------------------------------------------

    async def register(self, *, username: str, password: str, address: str = "") -> User:
        if not is_valid_username(username):
            raise InvalidInput("username must be 3-32 characters of a-z, 0-9, '.', '_' or '-'")
        _check_password_rules(password)
        if self._guard is not None:
            await self._guard.register(address)
        hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(password), bcrypt.gensalt(self._rounds))
        user = User(username=username, password_hash=hashed.decode(), created_at=self._clock())
        await self._metadata.create_user(user)
        return user

    async def login(self, *, username: str, password: str, address: str = "") -> TokenPair:
        if self._guard is not None:
            await self._guard.before_login(username, address)
        user = await self._metadata.get_user(username)
        stored = user.password_hash.encode() if user else self._dummy_hash
        ok = await asyncio.to_thread(bcrypt.checkpw, _prehash(password), stored)
        if user is None or not ok:
            if self._guard is not None:
                await self._guard.login_failed(username, address)
            raise Unauthenticated("wrong username or password")
        if self._guard is not None:
            await self._guard.login_succeeded(username)
        return await self._issue_new(username, family_id=new_id())

    async def change_password(self, session: Session, *, current_password: str, new_password: str) -> TokenPair:
        """Every session of the user ends (this one too); the answer is a new session for the caller."""
        _check_password_rules(new_password)
        user = await self._metadata.get_user(session.username)
        if user is None:
            raise Unauthenticated("no such user")
        if not await asyncio.to_thread(bcrypt.checkpw, _prehash(current_password), user.password_hash.encode()):
            raise Forbidden("the current password is wrong", code="wrong_password")
        hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(new_password), bcrypt.gensalt(self._rounds))
        await self._metadata.set_password_hash(session.username, hashed.decode())
        await self._metadata.revoke_user_refresh_families(session.username)
        self._families.clear()  # this process sees it at once; others within revocation_check_s
        self._verified.clear()
        return await self._issue_new(session.username, family_id=new_id())

    # sessions --------------------------------------------------------------------------------

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        claims = self._decode(refresh_token, kind="refresh")
        spent_id = str(claims["jti"])
        spend = await self._metadata.spend_refresh_token(spent_id)
        if spend.username is None or spend.family_id is None:
            raise Unauthenticated("the refresh token is no longer valid")
        if spend.outcome == "ok" and spend.used_at is not None:
            pair = self._successor(spent_id, spend.username, spend.family_id, spend.used_at)
            await self._metadata.add_refresh_token(
                token_id=_successor_id(spent_id, "refresh"),
                family_id=spend.family_id,
                username=spend.username,
                expires_at=spend.used_at + timedelta(seconds=self._refresh_ttl),
            )
            return pair
        if spend.outcome == "reused":
            if spend.used_at is not None and (self._clock() - spend.used_at).total_seconds() <= self._reuse_grace_s:
                # a client retrying a refresh whose answer it lost: the same pair again (Auth0's
                # reuse interval), not a revoked session
                return self._successor(spent_id, spend.username, spend.family_id, spend.used_at)
            # a spent token came back: someone holds a copy, so the whole family goes
            await self.revoke_family(spend.family_id)
        raise Unauthenticated("the refresh token is no longer valid")

    async def logout(self, *, session: Session | None = None, refresh_token: str | None = None) -> None:
        """Ends the session of the access token and/or of the refresh token given."""
        families: set[str] = set()
        if session is not None and session.family_id is not None:
            families.add(session.family_id)
        if refresh_token is not None:
            claims = self._decode(refresh_token, kind="refresh", verify_exp=False)
            if session is not None and claims["sub"] != session.username:
                raise Forbidden("this refresh token belongs to another user")
            if claims.get("fam"):
                families.add(str(claims["fam"]))
        for family_id in families:
            await self.revoke_family(family_id)

    async def revoke_family(self, family_id: str) -> None:
        await self._metadata.revoke_refresh_family(family_id)
        self._families[family_id] = (True, self._monotonic())

    async def session(self, access_token: str) -> Session:
        """The session an access token belongs to; Unauthenticated if it is invalid, expired or
        its session was revoked (as of at most ``revocation_check_s`` ago).

        A token already verified is remembered until it expires: a client sends the same one
        with every request, and checking its signature each time is measurable on the hot path.
        The revocation check is not remembered longer than ``revocation_check_s``."""
        known = self._verified.get(access_token)
        if known is None or known.expires_at <= self._clock().timestamp():
            known = self._verify(access_token)
        if known.family_id is not None and await self.is_revoked(known.family_id):
            self._verified.pop(access_token, None)
            raise Unauthenticated("the session has ended (logged out or revoked)")
        return known

    async def authenticate(self, access_token: str) -> str:
        """The username an access token speaks for; Unauthenticated otherwise."""
        return (await self.session(access_token)).username

    async def is_revoked(self, family_id: str) -> bool:
        state = self._families.get(family_id)
        now = self._monotonic()
        if state is not None and (state[0] or now - state[1] < self.revocation_check_s):
            return state[0]
        pending = self._checking.get(family_id)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._checking[family_id] = pending
            try:
                revoked = await self._revocation_reads.submit(family_id)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: the waiters (if any) get it too
                raise
            finally:
                self._checking.pop(family_id, None)
            if len(self._families) >= _CACHE_SIZE:
                self._families.pop(next(iter(self._families)))
            self._families[family_id] = (revoked, now)
            pending.set_result(revoked)
            return revoked
        return await asyncio.shield(pending)

    async def _read_revocations(self, family_ids: Sequence[str]) -> list[bool]:
        """The families asked for, and with them (at most every half ``revocation_check_s``) every
        known family checked more than half that long ago: their checks then fall due together,
        so a node reads the store about twice per ``revocation_check_s`` whatever the number of
        sessions, not once per session spread over the period."""
        now = self._monotonic()
        half = self.revocation_check_s / 2
        along: list[str] = []
        if now - self._swept_at >= half:
            self._swept_at = now
            asked = set(family_ids)
            along = [
                f
                for f, (revoked, checked) in self._families.items()
                if not revoked and now - checked >= half and f not in asked and f not in self._checking
            ][: _SWEEP_MAX]
        revoked = await self._metadata.revoked_refresh_families([*family_ids, *along])
        for family_id in along:
            if family_id in self._families:  # not forgotten meanwhile (a logout here sets it itself)
                state = self._families[family_id]
                self._families[family_id] = (state[0] or family_id in revoked, max(state[1], now))
        return [family_id in revoked for family_id in family_ids]

    # tokens ----------------------------------------------------------------------------------

    def _verify(self, access_token: str) -> Session:
        claims = self._decode(access_token, kind="access")
        session = Session(str(claims["sub"]), claims.get("fam"), float(claims["exp"]))
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[access_token] = session
        return session

    async def _issue_new(self, username: str, *, family_id: str) -> TokenPair:
        now = self._clock()
        token_id = new_id()
        pair = self._pair(username, family_id, now, access_id=new_id(), refresh_id=token_id)
        await self._metadata.add_refresh_token(
            token_id=token_id, family_id=family_id, username=username,
            expires_at=now + timedelta(seconds=self._refresh_ttl),
        )
        return pair

    def _successor(self, spent_id: str, username: str, family_id: str, issued_at: datetime) -> TokenPair:
        """The pair that replaces a spent refresh token: a pure function of it and of when it
        was spent (HS256 signatures are deterministic), so it can be answered again."""
        return self._pair(
            username,
            family_id,
            issued_at,
            access_id=_successor_id(spent_id, "access"),
            refresh_id=_successor_id(spent_id, "refresh"),
        )

    def _pair(self, username: str, family_id: str, now: datetime, *, access_id: str, refresh_id: str) -> TokenPair:
        access = jwt.encode(
            {
                "sub": username,
                "typ": "access",
                "iat": now,
                "exp": now + timedelta(seconds=self._access_ttl),
                "jti": access_id,
                "fam": family_id,
            },
            self._secret,
            algorithm=_ALGORITHM,
        )
        refresh = jwt.encode(
            {
                "sub": username,
                "typ": "refresh",
                "iat": now,
                "exp": now + timedelta(seconds=self._refresh_ttl),
                "jti": refresh_id,
                "fam": family_id,
            },
            self._secret,
            algorithm=_ALGORITHM,
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self._access_ttl)

    def _decode(self, token: str, *, kind: str, verify_exp: bool = True) -> dict:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                # the times are checked below, against the service's clock
                options={"require": ["sub", "exp", "jti"], "verify_exp": False, "verify_iat": False},
            )
            _check_times(claims, now=self._clock().timestamp(), verify_exp=verify_exp)
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated(f"the {kind} token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid {kind} token") from exc
        if claims.get("typ") != kind:
            raise Unauthenticated(f"not a {kind} token")
        return claims


def _check_times(claims: dict[str, Any], *, now: float, verify_exp: bool) -> None:
    """PyJWT's checks of ``exp`` and ``iat`` (no leeway), at ``now`` rather than the wall clock."""
    try:
        exp = int(claims["exp"])
        iat = int(claims["iat"]) if "iat" in claims else None
    except (ValueError, TypeError, OverflowError):
        raise jwt.InvalidTokenError("exp and iat must be integers") from None
    if verify_exp and exp <= now:
        raise jwt.ExpiredSignatureError("Signature has expired")
    if iat is not None and iat > now:
        raise jwt.ImmatureSignatureError("The token is not yet valid (iat)")


def _successor_id(spent_id: str, kind: str) -> str:
    return str(uuid.uuid5(_SUCCESSOR, f"{kind}:{spent_id}"))
