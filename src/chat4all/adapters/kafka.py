"""EventLog on Apache Kafka (aiokafka): the log of the production profile.

Producer: acks=all and idempotent, a short linger so concurrent requests share a batch; an
append returns once the broker has it and raises Unavailable (→ 503) if it cannot within
``append_timeout_s``. Topics are created at start with the configured partition count; the key
is the conversation_id, so one conversation lives in one partition and keeps its order.

Consumer: a consumer group with auto-commit off. The worker commits offsets only after a batch
is durable; a commit refused after a rebalance is harmless — the new owner replays the batch
and the router's writes are idempotent. A dead consumer is noticed by the group coordinator
after ``session_timeout_ms`` and its partitions move to the survivors (R11.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from urllib.parse import urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    InvalidProducerEpoch,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from chat4all.domain.errors import Unavailable
from chat4all.observability.logging import get_logger
from chat4all.ports import LogRecord

log = get_logger(__name__)

# errors after which an idempotent producer cannot go on (e.g. a broker that restarted and lost
# its producer state): a new producer, with a new producer id, takes over
_PRODUCER_BROKEN = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced, ProducerClosed)


def bootstrap_servers(url: str) -> str:
    """``kafka://h1:9092,h2:9092`` → ``h1:9092,h2:9092``."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ValueError(f"not a kafka:// URL: {url!r}")
    return parts.netloc


async def delete_namespace(url: str, namespace: str) -> int:
    """Deletes every topic of a namespace (what a test run or a benchmark made); returns how many.

    Topics left behind are not free: a broker holding thousands of partitions spends its CPU on
    them, and a benchmark on the same machine measured p99 accept 64 ms on a clean broker but
    over 250 ms on one with 16,000 partitions left by earlier runs."""
    if not namespace:
        raise ValueError("no namespace: refusing to delete every topic")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(url), request_timeout_ms=60_000)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(f"{namespace}.")]
        if doomed:
            await admin.delete_topics(doomed, timeout_ms=60_000)
        return len(doomed)
    finally:
        await admin.close()


class KafkaEventLog:
    def __init__(
        self,
        url: str,
        *,
        partitions: int,
        topics: Sequence[str],
        replication_factor: int = 1,
        min_insync_replicas: int | None = None,
        client_id: str = "chat4all",
        append_timeout_s: float = 5.0,
        session_timeout_ms: int = 10_000,
        namespace: str = "",
    ) -> None:
        self._bootstrap = bootstrap_servers(url)
        # a namespace lets several deployments (or test runs) share one cluster
        self._prefix = f"{namespace}." if namespace else ""
        self.partitions = partitions
        self._topics = list(topics)
        self._replication = replication_factor
        self._topic_configs = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas else {}
        self._client_id = client_id
        self._append_timeout_s = append_timeout_s
        self._session_timeout_ms = session_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._replacing = asyncio.Lock()
        self._appending = 0  # append calls in progress; close lets them finish
        self._appends_done = asyncio.Event()
        self._appends_done.set()

    @property
    def running(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        if self._producer is not None:
            return
        await self.ensure_topics(self._topics)
        self._producer = await self._new_producer()
        # the partitions' leaders known before the first append: otherwise the first record of
        # each topic waits for a metadata round trip, and a fresh node's first burst with it
        for topic in self._topics:
            await self._producer.partitions_for(self._prefix + topic)

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=256 * 1024,
            request_timeout_ms=int(self._append_timeout_s * 1000),
        )
        await producer.start()
        return producer

    async def _replace_producer(self, broken: AIOKafkaProducer) -> None:
        async with self._replacing:
            if self._producer != broken:  # (identity: producers do not define ==)
                return  # another caller already replaced it
            log.warning("replacing the Kafka producer after a fatal producer error")
            try:
                self._producer = await self._new_producer()
            except KafkaError:
                return  # the broker is still away; the next failing append tries again
            try:
                await broken.stop()
            except Exception:  # it is broken; what matters is that it no longer holds resources
                log.debug("closing the broken producer failed", exc_info=True)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None  # no new appends from here on
            await self._appends_done.wait()  # those already handed over are written, not refused
            await producer.stop()  # flushes what is in flight

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, client_id=self._client_id)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            wanted = [
                t for name in topics for t in (self._prefix + name, f"{self._prefix}{name}.dlq") if t not in existing
            ]
            if wanted:
                try:
                    await admin.create_topics(
                        [
                            NewTopic(
                                t,
                                num_partitions=self.partitions,
                                replication_factor=self._replication,
                                topic_configs=self._topic_configs,
                            )
                            for t in wanted
                        ]
                    )
                except TopicAlreadyExistsError:
                    pass  # another process created them first
        finally:
            await admin.close()

    async def append(self, topic: str, key: str, value: bytes) -> None:
        await self.append_many(topic, ((key, value),))

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None:
        if not records:
            return
        producer = self._producer
        if producer is None:
            raise Unavailable("the event log is not running")
        self._appending += 1
        self._appends_done.clear()
        try:
            async with asyncio.timeout(self._append_timeout_s):
                physical = self._prefix + topic
                futures = [await producer.send(physical, value, key=key.encode()) for key, value in records]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError) as exc:
            if isinstance(exc, _PRODUCER_BROKEN):
                await self._replace_producer(producer)
            raise Unavailable("the event log is not reachable") from exc
        finally:
            self._appending -= 1
            if not self._appending:
                self._appends_done.set()

    async def ping(self) -> None:
        producer = self._producer
        if producer is None:
            raise Unavailable("the event log is not running")
        try:
            async with asyncio.timeout(2):
                await producer.client.fetch_all_metadata()
        except (KafkaError, TimeoutError) as exc:
            raise Unavailable("the Kafka broker does not answer") from exc

    def consumer(self, topic: str, group: str) -> KafkaLogConsumer:
        return KafkaLogConsumer(
            self._bootstrap,
            topic=topic,
            physical_topic=self._prefix + topic,
            group=self._prefix + group,
            client_id=self._client_id,
            session_timeout_ms=self._session_timeout_ms,
        )


class KafkaLogConsumer:
    def __init__(
        self, bootstrap: str, *, topic: str, physical_topic: str, group: str, client_id: str, session_timeout_ms: int
    ) -> None:
        self.topic = topic
        self.group = group
        self._physical = physical_topic
        self._options = {
            "bootstrap_servers": bootstrap,
            "group_id": group,
            "client_id": client_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(session_timeout_ms // 4, 500),
            "max_poll_interval_ms": 300_000,
        }
        self._consumer_instance: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}  # what this consumer committed last

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        if self._consumer_instance is None:
            raise RuntimeError("the consumer is not started")
        return self._consumer_instance

    async def start(self) -> None:
        # aiokafka binds its objects to the running loop, so they are made here, not in __init__
        self._consumer_instance = AIOKafkaConsumer(self._physical, **self._options)
        await self._consumer_instance.start()

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        records: list[LogRecord] = []
        for tp, messages in batches.items():
            records.extend(
                LogRecord(
                    topic=self.topic,
                    partition=tp.partition,
                    offset=m.offset,
                    key=m.key.decode() if m.key else "",
                    value=m.value or b"",
                )
                for m in messages
            )
        return records

    async def commit(self, records: Sequence[LogRecord]) -> None:
        upto: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(self._physical, r.partition)
            upto[tp] = max(upto.get(tp, 0), r.offset + 1)
        # a Kafka commit sets the offset, also backwards; a late commit of older records must
        # not make the group replay what this consumer already committed past
        upto = {tp: offset for tp, offset in upto.items() if offset > self._committed.get(tp, -1)}
        if upto:
            await self._consumer.commit(upto)
            self._committed.update(upto)

    async def seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(TopicPartition(self._physical, partition), offset)

    async def lag(self) -> int | None:
        # the high watermarks come with every fetch response: no request is made here
        consumer = self._consumer
        behind: list[int] = []
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            behind.append(max(highwater - await consumer.position(tp), 0))
        return sum(behind) if behind else None

    async def stop(self) -> None:
        if self._consumer_instance is not None:
            consumer, self._consumer_instance = self._consumer_instance, None
            await consumer.stop()
