"""Channel identities: one spelling per identity, so that one person cannot be mapped twice (or
squatted) by writing the same number another way.

Phone-number channels take E.164: ``+`` and 8 to 15 digits, the country code first. Spaces,
dots, dashes and parentheses are dropped and a leading ``00`` is read as ``+``, so
``+1 555 000 2222``, ``+1 (555) 000-2222`` and ``0015550002222`` are all ``+15550002222``. A
number without its country code cannot be placed and is refused.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from chat4all.domain.errors import InvalidInput

PHONE_CHANNELS = frozenset({"whatsapp", "sms"})
_SEPARATORS = re.compile(r"[\s.\-()/]")
_E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")


def normalize(channel: str, external_id: str) -> str:
    """The identity's one spelling on ``channel``; InvalidInput if it cannot be one."""
    external_id = external_id.strip()
    if channel not in PHONE_CHANNELS:
        return external_id
    number = _SEPARATORS.sub("", external_id)
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _E164.match(number):
        raise InvalidInput(
            f"a {channel} identity is a phone number in international form (E.164), e.g. +15550002222",
            details={"external_id": external_id},
        )
    return number


def lenient(channel: str, external_id: str) -> str:
    """``normalize`` for identities a provider reports: as reported when it is not a number we
    can read (some providers drop the '+': ``15550002222`` is tried as ``+15550002222``)."""
    for candidate in (external_id, "+" + external_id.strip()):
        try:
            return normalize(channel, candidate)
        except InvalidInput:
            continue
    return external_id


# Claiming an identity (R14.1): the claimant is given a code and proves the identity is theirs by
# sending that code *from* it, to the platform's account on the channel. The proof runs inbound
# because on most channels a business cannot write first (Instagram, Messenger and Telegram
# only answer people who wrote to them), and because the provider, not us, authenticates the
# sender. Whoever squats another's number gets a code they cannot send from that number.

CODE_DIGITS = 6
_CODE = re.compile(rf"(?<![0-9])([0-9]{{{CODE_DIGITS}}})(?![0-9])")


@dataclass(frozen=True, slots=True)
class ChannelClaim:
    """A user's pending claim of (channel, external_id), proven by ``code`` until ``expires_at``."""

    username: str
    channel: str
    external_id: str
    code: str
    expires_at: datetime


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def codes_in(text: str) -> set[str]:
    """The codes a message carries: every run of exactly six digits ("link 042519" → 042519)."""
    return set(_CODE.findall(text or ""))


def instructions(claim: ChannelClaim) -> str:
    return (
        f"Send the code {claim.code} from {claim.external_id} to this service's {claim.channel} "
        f"account before {claim.expires_at.isoformat()}; the identity is linked when it arrives."
    )
