"""A user's profile and their channel identities (R1.4, R14.1)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from chat4all.domain import identities
from chat4all.domain.errors import InvalidInput, NotFound, UnsupportedChannel
from chat4all.domain.models import EXTERNAL_CHANNELS
from chat4all.ports import MetadataStore


@dataclass(frozen=True, slots=True)
class Profile:
    username: str
    created_at: datetime
    channels: dict[str, str]


class UserService:
    def __init__(self, *, metadata: MetadataStore, supported_channels: Collection[str] = EXTERNAL_CHANNELS) -> None:
        self._metadata = metadata
        self.supported_channels = supported_channels

    async def profile(self, username: str) -> Profile:
        user = await self._metadata.get_user(username)
        if user is None:
            raise NotFound("no such user")
        channels = await self._metadata.get_channels(username)
        return Profile(username=user.username, created_at=user.created_at, channels=channels)

    async def set_channel(self, username: str, *, channel: str, external_id: str) -> str:
        """Maps the identity, in its one spelling (E.164 for phone numbers), which it returns."""
        self._check_channel(channel)
        external_id = external_id.strip()
        if not external_id or len(external_id) > 255:
            raise InvalidInput("external_id must be 1-255 characters")
        external_id = identities.normalize(channel, external_id)
        await self._metadata.set_channel(username, channel, external_id)
        return external_id

    async def delete_channel(self, username: str, *, channel: str) -> None:
        self._check_channel(channel)
        if not await self._metadata.delete_channel(username, channel):
            raise NotFound(f"no {channel} identity is mapped")

    def _check_channel(self, channel: str) -> None:
        if channel not in self.supported_channels:
            raise UnsupportedChannel(
                f"unsupported channel {channel!r}", details={"supported": list(self.supported_channels)}
            )
