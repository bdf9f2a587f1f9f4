"""Registration, login, token refresh with single-use rotation, and access-token checks (R1, R8.3)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass
from datetime import timedelta

import bcrypt
import jwt

from chat4all.domain.errors import InvalidInput, Unauthenticated
from chat4all.domain.ids import new_id, utcnow
from chat4all.domain.models import User, is_valid_username
from chat4all.ports import MetadataStore
from chat4all.services.abuse import AbuseGuard

_ALGORITHM = "HS256"
_VERIFIED_CACHE_SIZE = 50_000


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


def _prehash(password: str) -> bytes:
    # bcrypt reads at most 72 bytes; hashing first lets every one of the 128 allowed characters count
    return base64.b64encode(hashlib.sha256(password.encode()).digest())


class AuthService:
    def __init__(
        self,
        *,
        metadata: MetadataStore,
        secret: str,
        access_ttl_s: int,
        refresh_ttl_s: int,
        bcrypt_rounds: int,
        guard: AbuseGuard | None = None,
    ) -> None:
        self._metadata = metadata
        self._guard = guard
        self._secret = secret
        self._access_ttl = access_ttl_s
        self._refresh_ttl = refresh_ttl_s
        self._rounds = bcrypt_rounds
        # compared against when the user does not exist, so that both paths cost the same
        self._verified: dict[str, tuple[str, float]] = {}  # access token → (username, expiry)
        self._dummy_hash = bcrypt.hashpw(_prehash("not-a-password"), bcrypt.gensalt(bcrypt_rounds))

    async def register(self, *, username: str, password: str, address: str = "") -> User:
        if not is_valid_username(username):
            raise InvalidInput("username must be 3-32 characters of a-z, 0-9, '.', '_' or '-'")
        if not 8 <= len(password) <= 128:
            raise InvalidInput("password must be 8-128 characters")
        if self._guard is not None:
            await self._guard.register(address)
        hashed = await asyncio.to_thread(bcrypt.hashpw, _prehash(password), bcrypt.gensalt(self._rounds))
        user = User(username=username, password_hash=hashed.decode(), created_at=utcnow())
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
        return await self._issue(username, family_id=new_id())

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        claims = self._decode(refresh_token, kind="refresh")
        spend = await self._metadata.spend_refresh_token(claims["jti"])
        if spend.outcome == "reused" and spend.family_id:
            # a spent token came back: someone holds a copy, so the whole family goes
            await self._metadata.revoke_refresh_family(spend.family_id)
        if spend.outcome != "ok" or spend.username is None or spend.family_id is None:
            raise Unauthenticated("the refresh token is no longer valid")
        return await self._issue(spend.username, family_id=spend.family_id)

    def authenticate(self, access_token: str) -> str:
        """The username an access token speaks for; Unauthenticated otherwise.

        A token already verified is remembered until it expires: a client sends the same one
        with every request, and checking its signature each time is measurable on the hot path."""
        known = self._verified.get(access_token)
        if known is not None and known[1] > time.time():
            return known[0]
        claims = self._decode(access_token, kind="access")
        username = str(claims["sub"])
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[access_token] = (username, float(claims["exp"]))
        return username

    async def _issue(self, username: str, *, family_id: str) -> TokenPair:
        now = utcnow()
        access = jwt.encode(
            {
                "sub": username,
                "typ": "access",
                "iat": now,
                "exp": now + timedelta(seconds=self._access_ttl),
                "jti": new_id(),
            },
            self._secret,
            algorithm=_ALGORITHM,
        )
        token_id = new_id()
        expires_at = now + timedelta(seconds=self._refresh_ttl)
        refresh = jwt.encode(
            {"sub": username, "typ": "refresh", "iat": now, "exp": expires_at, "jti": token_id, "fam": family_id},
            self._secret,
            algorithm=_ALGORITHM,
        )
        await self._metadata.add_refresh_token(
            token_id=token_id, family_id=family_id, username=username, expires_at=expires_at
        )
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=self._access_ttl)

    def _decode(self, token: str, *, kind: str) -> dict:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["sub", "exp", "jti"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated(f"the {kind} token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthenticated(f"invalid {kind} token") from exc
        if claims.get("typ") != kind:
            raise Unauthenticated(f"not a {kind} token")
        return claims
