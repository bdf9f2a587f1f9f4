"""The event log: a partitioned, durable, replayable log and its consumers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


# counting a SQL log's backlog reads it; past this many records the exact figure matters less
LAG_CAP = 100_000


class LogConsumer(Protocol):
    topic: str

    async def start(self) -> None: ...

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        """The next records after the committed offsets (or after the last poll)."""

    async def commit(self, records: Sequence[LogRecord]) -> None:
        """Marks everything up to these records as processed, per partition."""

    async def seek(self, partition: int, offset: int) -> None:
        """Replays from ``offset`` (inclusive) on the next poll."""

    async def lag(self) -> int | None:
        """Records on this consumer's partitions not yet handed out by ``poll`` (capped at
        LAG_CAP), or None while it cannot tell (no partitions yet, nothing fetched yet)."""

    async def stop(self) -> None: ...


class EventLog(Protocol):
    """A partitioned, durable, replayable log (Kafka in production, a table in embedded)."""

    async def append(self, topic: str, key: str, value: bytes) -> None:
        """Returns once the record is durable; raises Unavailable otherwise."""

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None: ...

    def consumer(self, topic: str, group: str) -> LogConsumer: ...
