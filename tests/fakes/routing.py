"""What routing reads besides the delivery store: the recipients' channel identities, and
message events as the API appends them."""

from __future__ import annotations

import uuid
from datetime import datetime

from chat4all.domain.events import MessageEvent


class ChannelDirectory:
    """The part of ``ports.MetadataStore`` the router reads (``get_channels``), counting lookups."""

    def __init__(self, channels: dict[str, dict[str, str]] | None = None) -> None:
        self._channels = channels or {}
        self.lookups: list[str] = []

    async def get_channels(self, username: str) -> dict[str, str]:
        self.lookups.append(username)
        return dict(self._channels.get(username, {}))


def message_event(
    conversation_id: str,
    sender: str,
    recipients: list[str],
    *,
    at: datetime,
    channels: list[str] | None = None,
    text: str = "hi",
    message_id: str | None = None,
    traceparent: str | None = None,
) -> MessageEvent:
    return MessageEvent(
        message_id=message_id or str(uuid.uuid4()),
        conversation_id=conversation_id,
        sender=sender,
        recipients=recipients,
        channels=channels or ["internal"],
        payload={"type": "text", "text": text},
        metadata={},
        accepted_at=at,
        traceparent=traceparent,
    )
