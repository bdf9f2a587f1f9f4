"""The dead-letter queue for operators (R14.5): what gave up, and replaying it.

Dead letters are events on the dead-letter topic (``message.events.dlq``): appended when an
external delivery fails for good. Listing reads the whole topic (a reader of its own that
commits nothing) and shows each delivery's current status, so a replayed one shows as such.
Replaying puts deliveries that are still FAILED back in the queue — SENT, due now, attempts
reset, a history entry saying so — and the dispatchers deliver them like new; replaying twice
does nothing more. Records on the topic that are not dead letters (events the router could
not read) are listed as such and never replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from chat4all.domain.connectors import DEAD_LETTER_TOPIC, REPLAY_DETAIL, DeadLetter
from chat4all.domain.status import DeliveryStatus
from chat4all.ports import DeliveryKey, EventLog, LogRecord, MessageStore
from chat4all.services.deliveries import DeliveryService


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    partition: int
    offset: int
    letter: DeadLetter | None  # None: a record that is not a dead letter
    status: DeliveryStatus | None  # the delivery's status now

    @property
    def key(self) -> DeliveryKey | None:
        if self.letter is None:
            return None
        return DeliveryKey(self.letter.message_id, self.letter.username, self.letter.channel)

    @property
    def replayable(self) -> bool:
        return self.status is DeliveryStatus.FAILED


class DeadLetterService:
    def __init__(
        self,
        *,
        log: EventLog,
        messages: MessageStore,
        deliveries: DeliveryService,
        first_poll_s: float = 1.0,
        next_poll_s: float = 0.2,
    ) -> None:
        self._log = log
        self._messages = messages
        self._deliveries = deliveries
        # how long to wait for the topic's records (Kafka needs a moment to assign partitions)
        self._first_poll_s = first_poll_s
        self._next_poll_s = next_poll_s

    async def entries(self, *, channel: str | None = None, message_id: str | None = None) -> list[DeadLetterEntry]:
        """Every dead letter (the latest one per delivery), oldest first, with its delivery's status."""
        latest: dict[DeliveryKey | tuple[int, int], tuple[LogRecord, DeadLetter | None]] = {}
        for record in await self._read_all():
            try:
                letter: DeadLetter | None = DeadLetter.decode(record.value)
            except (ValidationError, ValueError):
                letter = None
            if letter is not None and (
                (channel is not None and letter.channel != channel)
                or (message_id is not None and letter.message_id != message_id)
            ):
                continue
            if letter is None and (channel is not None or message_id is not None):
                continue
            key: DeliveryKey | tuple[int, int] = (
                DeliveryKey(letter.message_id, letter.username, letter.channel)
                if letter is not None
                else (record.partition, record.offset)
            )
            latest.pop(key, None)  # a delivery that failed again: its newest entry counts
            latest[key] = (record, letter)
        statuses = await self._statuses([k for k in latest if isinstance(k, DeliveryKey)])
        entries = [
            DeadLetterEntry(
                partition=record.partition,
                offset=record.offset,
                letter=letter,
                status=statuses.get(key) if isinstance(key, DeliveryKey) else None,
            )
            for key, (record, letter) in latest.items()
        ]
        # oldest failure first (partitions of the topic interleave); other records at the end
        return sorted(entries, key=lambda e: (e.letter is None, e.letter.failed_at if e.letter else 0, e.offset))

    async def replay(
        self, *, channel: str | None = None, message_id: str | None = None, dry_run: bool = False
    ) -> list[DeliveryKey]:
        """Requeues the dead deliveries (matching the filters) that are still FAILED."""
        keys = [e.key for e in await self.entries(channel=channel, message_id=message_id) if e.replayable]
        wanted = [k for k in keys if k is not None]
        if dry_run or not wanted:
            return wanted
        moved = await self._deliveries.requeue(wanted, detail=REPLAY_DETAIL)
        requeued = {
            DeliveryKey(message.message_id, change.username, change.channel)
            for message, changes in moved
            for change in changes
        }
        return [k for k in wanted if k in requeued]  # in the dead-letter queue's order

    async def _read_all(self) -> list[LogRecord]:
        consumer = self._log.consumer(DEAD_LETTER_TOPIC, group=f"dlq-reader-{uuid.uuid4().hex[:12]}")
        await consumer.start()
        records: list[LogRecord] = []
        try:
            timeout = self._first_poll_s
            while batch := await consumer.poll(max_records=500, timeout_s=timeout):
                records.extend(batch)
                timeout = self._next_poll_s
        finally:
            await consumer.stop()
        return records

    async def _statuses(self, keys: Sequence[DeliveryKey]) -> dict[DeliveryKey, DeliveryStatus]:
        found: dict[DeliveryKey, DeliveryStatus] = {}
        for message_id in dict.fromkeys(k.message_id for k in keys):
            for d in await self._messages.deliveries(message_id):
                found[DeliveryKey(d.message_id, d.username, d.channel)] = d.status
        return found
