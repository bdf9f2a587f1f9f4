"""InboundService on fakes: a provider's receipts move deliveries, a reply from an external
identity is posted in the conversation of the bridged message it answers, once."""

from __future__ import annotations

import pytest

from chat4all.connectors.base import InboundMessage, InboundReceipt
from chat4all.domain.errors import NotFound
from chat4all.domain.events import MessageEvent
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import ConnectorLink, NewMessage
from chat4all.services.conversations import ConversationService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.inbound import InboundService
from chat4all.services.messages import MessageService
from tests.fakes.clock import FakeClock
from tests.fakes.log import FakeEventLog
from tests.fakes.users import FakeMetadataStore
from tests.fakes.world import FakeWorld

from .conftest import ScriptedConnector, add_users, group, live

CHAT = "aaaaaaaa-0000-4000-8000-000000000001"
SENT_ID = "11111111-0000-4000-8000-000000000001"


class Hub:
    """The live connectors of this process, as the ConnectorHub hands them out."""

    def __init__(self, **channels) -> None:
        self._channels = channels

    def get(self, channel: str):
        return self._channels.get(channel)


@pytest.fixture
async def connector(world: FakeWorld, metadata: FakeMetadataStore, clock: FakeClock) -> ScriptedConnector:
    await add_users(metadata, clock, "alice", "bob")
    await metadata.set_channel("bob", "telegram", "4242")
    await group(world, clock, CHAT, "alice", "bob")
    sent = NewMessage(
        SENT_ID, CHAT, "alice", ["bob"], ["telegram"], {"type": "text", "text": "hi"}, {}, clock(), [("bob", "telegram")]
    )
    await world.messages.persist_batch([sent], at=clock())
    world.links.add(ConnectorLink("telegram", "4242", "p-1", SENT_ID, CHAT, "bob", clock()))
    return ScriptedConnector()


@pytest.fixture
def inbound(
    connector: ScriptedConnector,
    world: FakeWorld,
    metadata: FakeMetadataStore,
    deliveries: DeliveryService,
    log: FakeEventLog,
    clock: FakeClock,
) -> InboundService:
    messages = MessageService(
        conversations=ConversationService(conversations=world.conversations, metadata=metadata, clock=clock),
        messages=world.messages,
        log=log,
        max_text_chars=4096,
        accepted_ids=world.accepted_ids,
        clock=clock,
    )
    return InboundService(
        hub=Hub(telegram=live(connector, clock)),  # type: ignore[arg-type]
        metadata=metadata,
        links=world.links,
        deliveries=deliveries,
        messages=messages,
    )


async def call(inbound: InboundService, channel: str = "telegram"):
    return await inbound.handle(channel, headers={}, body=b"{}", query={})


async def test_a_read_receipt_by_the_providers_id_moves_the_delivery_through_delivered_to_read(
    inbound: InboundService, connector: ScriptedConnector, world: FakeWorld
) -> None:
    connector.inbound = [InboundReceipt(external_id="4242", status=DeliveryStatus.READ, provider_message_id="p-1")]

    outcome = await call(inbound)

    assert (outcome.accepted, outcome.ignored) == (1, 0)
    assert [h.status for h in await world.messages.history(SENT_ID)] == [
        DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ
    ]


async def test_events_of_unmapped_identities_and_unknown_messages_are_ignored(
    inbound: InboundService, connector: ScriptedConnector, world: FakeWorld
) -> None:
    connector.inbound = [
        InboundReceipt(external_id="9999", status=DeliveryStatus.DELIVERED, provider_message_id="p-1"),
        InboundReceipt(external_id="4242", status=DeliveryStatus.DELIVERED, provider_message_id="nope"),
    ]

    outcome = await call(inbound)

    assert (outcome.accepted, outcome.ignored) == (0, 2)
    assert [h.status for h in await world.messages.history(SENT_ID)] == [DeliveryStatus.SENT]


async def test_a_reply_is_posted_once_in_the_conversation_it_answers(
    inbound: InboundService, connector: ScriptedConnector, log: FakeEventLog, clock: FakeClock
) -> None:
    connector.inbound = [InboundMessage(external_id="4242", text="hello back", provider_message_id="p-2", reply_to="p-1")]

    await call(inbound)
    clock.advance(5)
    await call(inbound)  # the provider delivered its webhook twice

    events = [MessageEvent.decode(r.value) for r in log.records(MessageEvent.topic)]
    assert {e.message_id for e in events} == {events[0].message_id}  # one id for both: the router keeps one
    first = events[0]
    assert (first.conversation_id, first.sender, first.payload["text"], first.metadata) == (
        CHAT, "bob", "hello back", {"via": "telegram"}
    )


async def test_a_channel_without_a_live_connector_is_not_found(inbound: InboundService) -> None:
    with pytest.raises(NotFound):
        await call(inbound, "whatsapp")
