"""Service tests: the real services on the in-memory fakes of tests/fakes, with time in the
test's hands (a FakeClock). No server, no sleep: each test runs in milliseconds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from chat4all.adapters.memory_limits import MemoryRateLimiter
from chat4all.connectors.base import (
    Capabilities,
    ConnectorError,
    DeliveryResult,
    InboundEvent,
    OutboundMessage,
    WebhookRequest,
)
from chat4all.connectors.hub import LiveConnector
from chat4all.connectors.resilience import CircuitBreaker
from chat4all.domain.connectors import ConnectorConfig
from chat4all.domain.frames import Frame
from chat4all.domain.models import Conversation, ConversationType, User
from chat4all.services.deliveries import DeliveryService
from tests.fakes.clock import FakeClock
from tests.fakes.log import FakeEventLog
from tests.fakes.users import FakeMetadataStore
from tests.fakes.world import FakeWorld


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world() -> FakeWorld:
    return FakeWorld()


@pytest.fixture
def metadata(clock: FakeClock) -> FakeMetadataStore:
    return FakeMetadataStore(clock=clock)


@pytest.fixture
def log() -> FakeEventLog:
    return FakeEventLog()


class RecordingPush:
    """The Push port, remembering what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Frame]] = []

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        self.sent.extend(frames)


@pytest.fixture
def deliveries(world: FakeWorld) -> DeliveryService:
    return DeliveryService(store=world.deliveries, push=RecordingPush(), receipt_linger_s=0)


def limiter(clock: FakeClock) -> MemoryRateLimiter:
    """The in-process rate limiter (already in memory: it is its own fake), on the test's clock."""
    return MemoryRateLimiter(clock=lambda: clock.now.timestamp())


async def add_users(metadata: FakeMetadataStore, clock: FakeClock, *names: str) -> None:
    for name in names:
        await metadata.create_user(User(username=name, password_hash="x", created_at=clock()))


async def group(world: FakeWorld, clock: FakeClock, conversation_id: str, *members: str) -> Conversation:
    return await world.conversations.create_conversation(
        Conversation(
            conversation_id=conversation_id,
            type=ConversationType.GROUP,
            name=None,
            members=tuple(sorted(members)),
            created_by=members[0],
            created_at=clock(),
            metadata={},
        ),
        private_key=None,
    )


@dataclass
class ScriptedConnector:
    """A channel plugin that answers each send with the next scripted outcome (a DeliveryResult
    or a ConnectorError to raise), and reads webhooks as the events it is given."""

    outcomes: list[DeliveryResult | ConnectorError] = field(default_factory=list)
    inbound: list[InboundEvent] = field(default_factory=list)
    capabilities: Capabilities = field(default_factory=Capabilities)
    sent: list[OutboundMessage] = field(default_factory=list)

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        pass

    async def send_message(self, message: OutboundMessage) -> DeliveryResult:
        self.sent.append(message)
        outcome = self.outcomes.pop(0) if self.outcomes else DeliveryResult()
        if isinstance(outcome, ConnectorError):
            raise outcome
        return outcome

    send_file = send_message

    async def handle_webhook(self, request: WebhookRequest) -> Sequence[InboundEvent]:
        return list(self.inbound)


def live(connector: ScriptedConnector, clock: FakeClock, channel: str = "telegram", **breaker: Any) -> LiveConnector:
    return LiveConnector(
        config=ConnectorConfig(channel=channel, updated_at=clock()),
        connector=connector,  # type: ignore[arg-type]
        breaker=CircuitBreaker(clock=lambda: clock.now.timestamp(), **breaker),
        reconnect_every_s=1.0,
        connected=True,
    )
