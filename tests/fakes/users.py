"""MetadataStore in memory: users, channel identities, refresh-token families."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Conflict, UsernameTaken
from chat4all.domain.identities import ChannelClaim
from chat4all.domain.models import User
from chat4all.ports import RefreshSpend


@dataclass
class _Token:
    family_id: str
    username: str
    expires_at: datetime
    used_at: datetime | None = None


class FakeMetadataStore:
    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self.users: dict[str, User] = {}
        self._channels: dict[str, dict[str, str]] = {}  # username -> channel -> external_id
        self._holders: dict[tuple[str, str], str] = {}  # (channel, external_id) -> username
        self._claims: dict[tuple[str, str], dict[str, ChannelClaim]] = {}  # identity -> claimant -> claim
        self._tokens: dict[str, _Token] = {}
        self._revoked: set[str] = set()

    async def create_user(self, user: User) -> None:
        if user.username in self.users:
            raise UsernameTaken(f"the username {user.username!r} is taken")
        self.users[user.username] = user

    async def get_user(self, username: str) -> User | None:
        return self.users.get(username)

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]:
        return {u for u in usernames if u in self.users}

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        holder = self._holders.get((channel, external_id))
        if holder is not None and holder != username:
            raise Conflict(f"this {channel} identity is already mapped to another user")
        mine = self._channels.setdefault(username, {})
        old = mine.get(channel)
        if old is not None:
            self._holders.pop((channel, old), None)
        mine[channel] = external_id
        self._holders[(channel, external_id)] = username

    async def delete_channel(self, username: str, channel: str) -> bool:
        old = self._channels.get(username, {}).pop(channel, None)
        if old is None:
            return False
        self._holders.pop((channel, old), None)
        return True

    async def get_channels(self, username: str) -> dict[str, str]:
        return dict(self._channels.get(username, {}))

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None:
        return self._holders.get((channel, external_id))

    async def add_channel_claim(self, claim: ChannelClaim) -> None:
        self._claims.setdefault((claim.channel, claim.external_id), {})[claim.username] = claim

    async def channel_claims(self, channel: str, external_id: str) -> list[ChannelClaim]:
        return list(self._claims.get((channel, external_id), {}).values())

    async def drop_channel_claims(self, channel: str, external_id: str) -> None:
        self._claims.pop((channel, external_id), None)

    async def add_refresh_token(self, *, token_id: str, family_id: str, username: str, expires_at: datetime) -> None:
        self._tokens[token_id] = _Token(family_id, username, expires_at)

    async def spend_refresh_token(self, token_id: str) -> RefreshSpend:
        token = self._tokens.get(token_id)
        if token is None:
            return RefreshSpend("unknown")
        if token.family_id in self._revoked:
            return RefreshSpend("revoked", token.username, token.family_id, token.used_at)
        if token.used_at is not None:
            return RefreshSpend("reused", token.username, token.family_id, token.used_at)
        token.used_at = self._clock()
        return RefreshSpend("ok", token.username, token.family_id, token.used_at)

    async def revoke_refresh_family(self, family_id: str) -> None:
        self._revoked.add(family_id)

    async def revoked_refresh_families(self, family_ids: Sequence[str]) -> set[str]:
        return self._revoked.intersection(family_ids)

    async def revoke_user_refresh_families(self, username: str) -> None:
        self._revoked.update(t.family_id for t in self._tokens.values() if t.username == username)

    async def set_password_hash(self, username: str, password_hash: str) -> None:
        user = self.users.get(username)
        if user is not None:
            self.users[username] = user.model_copy(update={"password_hash": password_hash})
