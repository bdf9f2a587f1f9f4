"""The fakes wired together the way their adapters share a database: one per test."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.fakes.connectors import FakeConnectorConfigStore, FakeConnectorLinks, FakeDeliveryQueue
from tests.fakes.files import FakeBlobStore, FakeFileStore
from tests.fakes.messaging import FakeAcceptedIds, FakeConversationStore, FakeMessageStore
from tests.fakes.webhooks import FakeWebhookOutbox, FakeWebhookRegistry


class FakeDeliveryWrites:
    """``ports.DeliveryStore`` over the fakes' shared delivery rows, as the SQL adapters share
    tables: persisting and receipts by the message fake, external bookkeeping by the queue fake."""

    def __init__(self, messages: FakeMessageStore, queue: FakeDeliveryQueue) -> None:
        self.persist_batch = messages.persist_batch
        self.advance_many = messages.advance_many
        self.requeue = queue.requeue
        self.sent = queue.sent
        self.retry = queue.retry
        self.finish = queue.finish


@dataclass
class FakeWorld:
    conversations: FakeConversationStore = field(default_factory=FakeConversationStore)
    links: FakeConnectorLinks = field(default_factory=FakeConnectorLinks)
    configs: FakeConnectorConfigStore = field(default_factory=FakeConnectorConfigStore)
    accepted_ids: FakeAcceptedIds = field(default_factory=FakeAcceptedIds)
    blobs: FakeBlobStore = field(default_factory=FakeBlobStore)
    webhooks: FakeWebhookRegistry = field(default_factory=FakeWebhookRegistry)
    outbox: FakeWebhookOutbox = field(default_factory=FakeWebhookOutbox)

    def __post_init__(self) -> None:
        self.messages = FakeMessageStore(self.conversations)
        self.files = FakeFileStore(self.messages)
        self.queue = FakeDeliveryQueue(self.messages, self.links)
        self.deliveries = FakeDeliveryWrites(self.messages, self.queue)
