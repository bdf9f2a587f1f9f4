"""Users, their channel identities and their login sessions (refresh-token families)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from chat4all.domain.identities import ChannelClaim
from chat4all.domain.models import User

# what spending a refresh token found
RefreshOutcome = Literal["ok", "reused", "unknown", "revoked"]


class MetadataStore(Protocol):
    """Users, their channel identities and their refresh-token families (etcd in production)."""

    async def create_user(self, user: User) -> None:
        """Raises UsernameTaken if the name exists."""

    async def get_user(self, username: str) -> User | None: ...

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]: ...

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        """Raises Conflict if another user already holds (channel, external_id)."""

    async def delete_channel(self, username: str, channel: str) -> bool: ...

    async def get_channels(self, username: str) -> dict[str, str]: ...

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None: ...

    async def add_channel_claim(self, claim: ChannelClaim) -> None:
        """Stores a pending claim, replacing the same user's earlier one for that identity."""

    async def channel_claims(self, channel: str, external_id: str) -> list[ChannelClaim]:
        """The claims of (channel, external_id), expired ones included (the caller checks)."""

    async def drop_channel_claims(self, channel: str, external_id: str) -> None:
        """Forgets every claim of (channel, external_id) (it is linked now)."""

    async def add_refresh_token(
        self, *, token_id: str, family_id: str, username: str, expires_at: datetime
    ) -> None: ...

    async def spend_refresh_token(self, token_id: str) -> RefreshSpend:
        """Marks the token used, exactly once, at the current time; says what it found and
        when the token was spent (``used_at``: now for ``ok``, the first spend for ``reused``)."""

    async def revoke_refresh_family(self, family_id: str) -> None: ...

    async def revoked_refresh_families(self, family_ids: Sequence[str]) -> set[str]:
        """Which of these families (login sessions) were revoked; an unknown family was not.
        One read for many: every request's session is checked, so a node asks for all the
        families due for a check at once."""

    async def revoke_user_refresh_families(self, username: str) -> None:
        """Revokes every family of the user (a password change)."""

    async def set_password_hash(self, username: str, password_hash: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RefreshSpend:
    """Outcome of spending a refresh token: ``ok`` once, then ``reused``; ``unknown``/``revoked``."""

    outcome: RefreshOutcome
    username: str | None = None
    family_id: str | None = None
    used_at: datetime | None = None
