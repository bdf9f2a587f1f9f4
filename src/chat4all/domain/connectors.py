"""External channels (R9, R14): a connector's configuration and the dead letter of a delivery
that gave up. Pure records, no I/O.

A connector's configuration is metadata (SQL table or etcd keys): whether the channel is
enabled, which plugin serves it (an entry point of ``chat4all.connectors``; by default the one
named like the channel), its plugin-specific options (credentials, base URL, ...) and limits.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from chat4all.domain.events import MESSAGES_TOPIC, Event
from chat4all.domain.models import ALL_CHANNELS, INTERNAL

CHANNEL_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
_CHANNEL_RE = re.compile(CHANNEL_PATTERN)

# dead letters share the dead-letter topic of the messages they belong to (SPEC R14.5)
DEAD_LETTER_TOPIC = f"{MESSAGES_TOPIC}.dlq"
REPLAY_DETAIL = "replayed from the dead-letter queue"


def is_valid_channel_name(value: str) -> bool:
    return bool(_CHANNEL_RE.match(value)) and value not in (INTERNAL, ALL_CHANNELS)


class ConnectorLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # sends to this channel in flight at once (per router process)
    max_in_flight: int = Field(16, ge=1, le=1000)
    # one send (connect included) that takes longer counts as a transient failure
    send_timeout_s: float = Field(10.0, gt=0, le=300)


class ConnectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(pattern=CHANNEL_PATTERN)
    enabled: bool = True
    # entry point name in the group "chat4all.connectors"; None: the one named like the channel
    plugin: str | None = Field(None, pattern=CHANNEL_PATTERN)
    options: dict[str, Any] = Field(default_factory=dict)
    limits: ConnectorLimits = Field(default_factory=ConnectorLimits)
    updated_at: datetime

    @property
    def plugin_name(self) -> str:
        return self.plugin or self.channel

    def same_setup(self, other: ConnectorConfig | None) -> bool:
        """True when ``other`` would build the same connector (the timestamp aside)."""
        if other is None:
            return False
        return self.model_dump(exclude={"updated_at"}) == other.model_dump(exclude={"updated_at"})


class DeadLetter(Event):
    """A delivery to an external channel that gave up: retries exhausted or a permanent error.

    It goes to the dead-letter topic; ``chat4all dlq replay`` puts the delivery back in the queue.
    """

    topic: ClassVar[str] = DEAD_LETTER_TOPIC
    type: Literal["delivery.dead_letter"] = "delivery.dead_letter"
    message_id: str
    conversation_id: str
    sender: str
    username: str
    channel: str
    attempts: int
    permanent: bool
    reason: str
    failed_at: datetime

    def key(self) -> str:
        return self.message_id
