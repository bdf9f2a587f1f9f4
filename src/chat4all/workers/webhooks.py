"""Webhook intake: consumes a topic (``status.events``, ``file.events``, ...) and puts a callback
for each subscribed webhook in the durable outbox; ``workers/webhook_delivery.py`` sends them.

One intake per topic, each with its ``CallbackSource`` (``services/webhook_callbacks.py``) and
its consumer group ("webhooks-<topic>"). The outbox insert is idempotent on (webhook, event_id), and
the base worker commits the log offsets only after it, so a replay enqueues nothing twice and a
crash loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chat4all.domain.ids import utcnow
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.ports import LogConsumer, LogRecord, WebhookOutbox, WebhookRegistry
from chat4all.services.webhook_callbacks import CallbackSource
from chat4all.workers.base import Worker

log = get_logger(__name__)
GROUP = "webhooks"


class WebhookIntake(Worker):
    def __init__(
        self,
        consumer: LogConsumer,
        *,
        source: CallbackSource,
        registry: WebhookRegistry,
        outbox: WebhookOutbox,
        on_enqueued: Callable[[], None],
        batch_size: int,
    ) -> None:
        super().__init__(consumer, batch_size=batch_size)
        self.name = f"webhooks-{getattr(source, 'name', source.topic)}"
        self._source = source
        self._registry = registry
        self._outbox = outbox
        self._on_enqueued = on_enqueued

    async def handle(self, records: Sequence[LogRecord]) -> None:
        events = []
        for record in records:
            try:
                events.append(self._source.decode(record.value))
            except ValueError:  # pydantic's ValidationError included: an event this code cannot read
                log.error("undecodable event skipped", topic=record.topic, partition=record.partition, offset=record.offset)
        if not events:
            return
        webhooks = await self._registry.for_owners(sorted({self._source.owner(e) for e in events}))
        if not webhooks:
            return
        callbacks = await self._source.callbacks([e for e in events if self._source.owner(e) in webhooks], webhooks)
        if not callbacks:
            return
        enqueued = await self._outbox.enqueue(callbacks, now=utcnow())
        metrics.WEBHOOK_CALLBACKS.labels("enqueued").inc(enqueued)
        if enqueued:
            self._on_enqueued()
