"""EventLog on Apache Kafka: the log of the production profile.

Producer: librdkafka (confluent-kafka), acks=all and idempotent, a short linger so concurrent
requests share a batch; an append returns once the broker has it and raises Unavailable (→ 503)
if it cannot within ``append_timeout_s``. librdkafka builds the record batches in C: appending
cost a quarter of the CPU it cost with aiokafka, which builds them in Python (measured: 13 µs
against 50 µs per single-record append from 200 concurrent callers). Its delivery reports come
back on one poll thread and are handed to the event loop in batches. Keys are placed with
murmur2, the partitioner of the Java client and of aiokafka. Topics are created at start with
the configured partition count; the key is the conversation_id, so one conversation lives in
one partition and keeps its order.

Consumer: a consumer group with auto-commit off. The worker commits offsets only after a batch
is durable; a commit refused after a rebalance is harmless — the new owner replays the batch
and the router's writes are idempotent. A dead consumer is noticed by the group coordinator
after ``session_timeout_ms`` and its partitions move to the survivors (R11.2).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import confluent_kafka
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from chat4all.domain.errors import Unavailable
from chat4all.observability.logging import get_logger
from chat4all.ports import LogRecord

log = get_logger(__name__)

# librdkafka's own log lines, through the standard logging the rest of the process uses
_LIBRDKAFKA_LOG = logging.getLogger("chat4all.kafka.librdkafka")


class DeliveryFailed(Exception):
    """The broker did not take a record (librdkafka's delivery report carried an error)."""

    def __init__(self, error: confluent_kafka.KafkaError) -> None:
        super().__init__(error.str())
        self.error = error


def _resolve(reports: list[tuple[asyncio.Future[None], confluent_kafka.KafkaError | None]]) -> None:
    for future, error in reports:
        if future.done():  # the appender gave up (timeout, cancelled)
            continue
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(DeliveryFailed(error))


class _Producer:
    """librdkafka's producer bridged to asyncio: records are produced from the event loop (a C
    call that queues them); delivery reports are served by one poll thread and handed back to
    the loop in batches, one wake-up per poll rather than one per record."""

    def __init__(self, config: dict[str, Any], loop: asyncio.AbstractEventLoop, *, timeout_s: float) -> None:
        self._producer = confluent_kafka.Producer(config, logger=_LIBRDKAFKA_LOG)
        self._loop = loop
        self._reports: list[tuple[asyncio.Future[None], confluent_kafka.KafkaError | None]] = []
        self._lock = threading.Lock()
        self._polling = True
        self._thread = threading.Thread(target=self._poll, name="kafka-delivery-reports", daemon=True)
        self._thread.start()
        # librdkafka reports a record it could not write within message.timeout.ms as failed; a
        # watchdog, one timer for all records rather than a timeout per append, fails whatever
        # is still unanswered a second after that (a stalled report thread must not hang callers)
        self._deadline_s = timeout_s + 1.0
        self._unanswered: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._watchdog = loop.call_later(1.0, self._expire)

    def produce(self, topic: str, key: bytes, value: bytes) -> asyncio.Future[None]:
        """Queues a record; the future completes with its delivery report (TimeoutError if none
        came in time). BufferError when librdkafka's queue is full, KafkaException when it
        refuses the record."""
        future: asyncio.Future[None] = self._loop.create_future()
        self._producer.produce(topic, value, key, on_delivery=lambda error, _record: self._report(future, error))
        self._unanswered.append((self._loop.time() + self._deadline_s, future))
        return future

    def _expire(self) -> None:
        now = self._loop.time()
        unanswered = self._unanswered
        while unanswered and (unanswered[0][1].done() or unanswered[0][0] <= now):
            _, future = unanswered.popleft()
            if not future.done():
                future.set_exception(TimeoutError("no delivery report in time"))
        self._watchdog = self._loop.call_later(1.0, self._expire)

    def _report(self, future: asyncio.Future[None], error: confluent_kafka.KafkaError | None) -> None:
        with self._lock:  # (on the poll thread)
            self._reports.append((future, error))

    def _poll(self) -> None:
        while self._polling:
            self._producer.poll(0.1)
            self._hand_over()

    def _hand_over(self) -> None:
        with self._lock:
            if not self._reports:
                return
            reports, self._reports = self._reports, []
        try:
            self._loop.call_soon_threadsafe(_resolve, reports)
        except RuntimeError:  # the loop is closed: no one waits for these any more
            pass

    def metadata(self, topic: str | None, timeout_s: float) -> Any:
        """Blocking: the cluster's metadata (for ``topic``), which also warms librdkafka's cache."""
        return self._producer.list_topics(topic, timeout=timeout_s)

    async def close(self, timeout_s: float) -> None:
        """Writes what is queued (up to ``timeout_s``), then stops the poll thread."""
        self._polling = False
        await asyncio.to_thread(self._thread.join)
        await asyncio.to_thread(self._producer.flush, timeout_s)  # serves the last reports too
        self._hand_over()
        self._watchdog.cancel()


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
        self._producer: _Producer | None = None
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
        self._producer = self._new_producer()
        # the partitions' leaders known before the first append: otherwise the first record of
        # each topic waits for a metadata round trip, and a fresh node's first burst with it
        for topic in self._topics:
            try:
                await asyncio.to_thread(self._producer.metadata, self._prefix + topic, 5.0)
            except confluent_kafka.KafkaException:
                log.warning("Kafka metadata not fetched at start", topic=topic)

    def _new_producer(self) -> _Producer:
        timeout_ms = int(self._append_timeout_s * 1000)
        return _Producer(
            {
                "bootstrap.servers": self._bootstrap,
                "client.id": self._client_id,
                "enable.idempotence": True,  # (implies acks=all and ordered retries)
                "acks": "all",
                "linger.ms": 2,
                "batch.size": 256 * 1024,
                "partitioner": "murmur2_random",  # where aiokafka and the Java client put a key
                "message.timeout.ms": timeout_ms,  # a record not written by then is reported failed
                "request.timeout.ms": min(timeout_ms, 30_000),
            },
            asyncio.get_running_loop(),
            timeout_s=self._append_timeout_s,
        )

    async def _replace_producer(self, broken: _Producer) -> None:
        async with self._replacing:
            if self._producer is not broken:
                return  # another caller already replaced it
            log.warning("replacing the Kafka producer after a fatal producer error")
            self._producer = self._new_producer()
            try:
                await broken.close(0)
            except Exception:  # it is broken; what matters is that it no longer holds resources
                log.debug("closing the broken producer failed", exc_info=True)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None  # no new appends from here on
            await self._appends_done.wait()  # those already handed over are written, not refused
            await producer.close(self._append_timeout_s)  # flushes what is in flight

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
            physical = self._prefix + topic
            try:
                futures = [producer.produce(physical, key.encode(), value) for key, value in records]
            except (BufferError, confluent_kafka.KafkaException) as exc:  # queue full, or refused
                raise Unavailable("the event log is not reachable") from exc
            # bounded without a timer per call: librdkafka reports a record it could not write
            # within append_timeout_s as failed, and the producer's watchdog backs that up
            first: BaseException | None = None
            if len(futures) == 1:  # one message accepted: no gather
                try:
                    await futures[0]
                except (DeliveryFailed, TimeoutError) as exc:
                    first = exc
            else:
                reports = await asyncio.gather(*futures, return_exceptions=True)
                first = next((r for r in reports if isinstance(r, BaseException)), None)
            if first is not None:
                if isinstance(first, DeliveryFailed) and first.error.fatal():
                    # an idempotent producer that cannot go on (a broker lost its producer
                    # state, a fenced epoch): a new one, with a new producer id, takes over
                    await self._replace_producer(producer)
                raise Unavailable("the event log is not reachable") from first
        finally:
            self._appending -= 1
            if not self._appending:
                self._appends_done.set()

    async def ping(self) -> None:
        producer = self._producer
        if producer is None:
            raise Unavailable("the event log is not running")
        try:
            await asyncio.to_thread(producer.metadata, None, 2.0)
        except confluent_kafka.KafkaException as exc:
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
