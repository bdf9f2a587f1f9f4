"""A user's profile and their channel identities (R1.4, R14.1).

An identity is linked only when proven (``verify_identities``, the default): the claim answers a
code, and the identity is linked when a message carrying that code arrives *from* it
(``prove``, called by the inbound path). See ``domain.identities`` for why the proof runs
inbound. Operators whose application already verified its users' identities turn it off.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from chat4all.domain import identities
from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Conflict, InvalidInput, NotFound, UnsupportedChannel
from chat4all.domain.identities import ChannelClaim
from chat4all.domain.models import EXTERNAL_CHANNELS
from chat4all.ports import MetadataStore


@dataclass(frozen=True, slots=True)
class Profile:
    username: str
    created_at: datetime
    channels: dict[str, str]


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """The answer to a claim: ``linked`` at once, or ``pending`` until ``claim``'s code arrives."""

    channel: str
    external_id: str
    status: Literal["linked", "pending"]
    claim: ChannelClaim | None = None


class UserService:
    def __init__(
        self,
        *,
        metadata: MetadataStore,
        supported_channels: Collection[str] = EXTERNAL_CHANNELS,
        verify_identities: bool = True,
        claim_ttl_s: float = 900.0,
        clock: Clock = system_clock,
    ) -> None:
        self._metadata = metadata
        self.supported_channels = supported_channels
        self._verify = verify_identities
        self._claim_ttl = timedelta(seconds=claim_ttl_s)
        self._clock = clock

    async def profile(self, username: str) -> Profile:
        user = await self._metadata.get_user(username)
        if user is None:
            raise NotFound("no such user")
        channels = await self._metadata.get_channels(username)
        return Profile(username=user.username, created_at=user.created_at, channels=channels)

    async def set_channel(self, username: str, *, channel: str, external_id: str) -> IdentityLink:
        """Claims the identity, in its one spelling (E.164 for phone numbers): linked at once when
        verification is off or it is already the caller's, else pending with a code to send from it.
        Conflict if another user holds it."""
        self._check_channel(channel)
        external_id = external_id.strip()
        if not external_id or len(external_id) > 255:
            raise InvalidInput("external_id must be 1-255 characters")
        external_id = identities.normalize(channel, external_id)
        holder = await self._metadata.find_user_by_channel(channel, external_id)
        if holder is not None and holder != username:
            raise Conflict(f"this {channel} identity is already mapped to another user")
        if not self._verify or holder == username:
            await self._metadata.set_channel(username, channel, external_id)
            return IdentityLink(channel, external_id, "linked")
        rivals = {c.code for c in await self._metadata.channel_claims(channel, external_id) if c.username != username}
        code = identities.new_code()
        while code in rivals:  # one code names one claimant of an identity
            code = identities.new_code()
        claim = ChannelClaim(
            username=username,
            channel=channel,
            external_id=external_id,
            code=code,
            expires_at=self._clock() + self._claim_ttl,
        )
        await self._metadata.add_channel_claim(claim)
        return IdentityLink(channel, external_id, "pending", claim)

    async def prove(self, channel: str, external_id: str, text: str) -> str | None:
        """An unlinked identity wrote ``text``: if it carries the code of a live claim of that
        identity, links it to the claimant (whose name it returns) and forgets every claim of it."""
        codes = identities.codes_in(text)
        if not codes:
            return None
        now = self._clock()
        for claim in await self._metadata.channel_claims(channel, external_id):
            if claim.code in codes and claim.expires_at > now:
                await self._metadata.set_channel(claim.username, channel, external_id)
                await self._metadata.drop_channel_claims(channel, external_id)
                return claim.username
        return None

    async def delete_channel(self, username: str, *, channel: str) -> None:
        self._check_channel(channel)
        if not await self._metadata.delete_channel(username, channel):
            raise NotFound(f"no {channel} identity is mapped")

    def _check_channel(self, channel: str) -> None:
        if channel not in self.supported_channels:
            raise UnsupportedChannel(
                f"unsupported channel {channel!r}", details={"supported": list(self.supported_channels)}
            )
