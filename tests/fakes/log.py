"""The event log in memory: partitioned by key, consumer groups with committed offsets."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence

from chat4all.domain.errors import Unavailable
from chat4all.ports import LAG_CAP, LogRecord


class FakeEventLog:
    def __init__(self, *, partitions: int = 4) -> None:
        self.partitions = partitions
        self._topics: dict[str, list[list[LogRecord]]] = {}
        self._committed: dict[tuple[str, str], dict[int, int]] = {}  # (topic, group) -> partition -> next offset
        self._appended = asyncio.Condition()
        self._closed = False

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._closed = True

    def records(self, topic: str) -> list[LogRecord]:
        """Every record of the topic, partition by partition (for assertions)."""
        return [r for partition in self._topics.get(topic, []) for r in partition]

    async def append(self, topic: str, key: str, value: bytes) -> None:
        await self.append_many(topic, [(key, value)])

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None:
        if self._closed:
            raise Unavailable("the event log is closed")
        if not records:
            return
        partitions = self._partitions(topic)
        for key, value in records:
            p = zlib.crc32(key.encode()) % self.partitions
            partitions[p].append(LogRecord(topic, p, len(partitions[p]), key, value))
        async with self._appended:
            self._appended.notify_all()

    def consumer(self, topic: str, group: str) -> FakeLogConsumer:
        return FakeLogConsumer(self, topic, group)

    def _partitions(self, topic: str) -> list[list[LogRecord]]:
        return self._topics.setdefault(topic, [[] for _ in range(self.partitions)])


class FakeLogConsumer:
    def __init__(self, log: FakeEventLog, topic: str, group: str) -> None:
        self._log = log
        self.topic = topic
        self._group = group
        self._position: dict[int, int] = {}

    async def start(self) -> None:
        committed = self._log._committed.get((self.topic, self._group), {})
        self._position = {p: committed.get(p, 0) for p in range(self._log.partitions)}

    def _take(self, max_records: int) -> list[LogRecord]:
        taken: list[LogRecord] = []
        for p, partition in enumerate(self._log._partitions(self.topic)):
            ready = partition[self._position[p] : self._position[p] + max_records - len(taken)]
            self._position[p] += len(ready)
            taken += ready
        return taken

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        taken = self._take(max_records)
        if taken:
            return taken
        condition = self._log._appended
        try:
            async with condition:
                await asyncio.wait_for(condition.wait_for(lambda: bool(self._take_peek())), timeout_s)
        except TimeoutError:
            return []
        return self._take(max_records)

    def _take_peek(self) -> bool:
        return any(len(part) > self._position[p] for p, part in enumerate(self._log._partitions(self.topic)))

    async def commit(self, records: Sequence[LogRecord]) -> None:
        committed = self._log._committed.setdefault((self.topic, self._group), {})
        for r in records:
            committed[r.partition] = max(committed.get(r.partition, 0), r.offset + 1)

    async def seek(self, partition: int, offset: int) -> None:
        self._position[partition] = offset

    async def lag(self) -> int | None:
        behind = sum(len(part) - self._position[p] for p, part in enumerate(self._log._partitions(self.topic)))
        return min(behind, LAG_CAP)

    async def stop(self) -> None:
        pass
