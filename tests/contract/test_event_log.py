"""EventLog contract: durable, partitioned by key, replayable by consumer groups (R10.4, R12.4)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import pytest

from chat4all.adapters.kafka import KafkaEventLog
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sqllog import SqlEventLog
from chat4all.domain.errors import Unavailable
from chat4all.ports import EventLog, LogConsumer, LogRecord

from .conftest import LOG_PARTITIONS

TOPIC = "contract.events"
# how long a poll may wait when the test expects nothing more to come
QUIET_S = 0.2


@pytest.fixture
async def consumers(event_log: EventLog) -> AsyncIterator:
    """Opens started consumers and stops them all at the end."""
    opened: list[LogConsumer] = []

    async def open_consumer(group: str, topic: str = TOPIC) -> LogConsumer:
        consumer = event_log.consumer(topic, group)
        await consumer.start()
        opened.append(consumer)
        return consumer

    yield open_consumer
    for consumer in opened:
        await consumer.stop()


async def drain(consumer: LogConsumer, *, expect: int, max_records: int = 7) -> list[LogRecord]:
    """Polls until ``expect`` records came, then checks that nothing more is there."""
    records: list[LogRecord] = []
    while len(records) < expect:
        batch = await consumer.poll(max_records=max_records, timeout_s=5)
        assert batch, f"only {len(records)} of {expect} records came back"
        assert len(batch) <= max_records
        records.extend(batch)
    assert await consumer.poll(max_records=max_records, timeout_s=QUIET_S) == []
    return records


def values(records: Sequence[LogRecord]) -> list[bytes]:
    return [r.value for r in records]


async def append_numbered(log: EventLog, keys: Sequence[str], rounds: int = 1) -> list[bytes]:
    """Appends ``b"<key>/<round>"`` for every key, round after round; returns them in order."""
    written = []
    for i in range(rounds):
        for key in keys:
            value = f"{key}/{i}".encode()
            await log.append(TOPIC, key, value)
            written.append(value)
    return written


KEYS = [f"conversation-{i}" for i in range(8)]


async def test_records_come_back_in_order_per_partition_and_a_key_keeps_its_partition(
    event_log: EventLog, consumers
) -> None:
    written = await append_numbered(event_log, KEYS[:4], rounds=2)
    batch = [(key, f"{key}/{i}".encode()) for i in (2, 3) for key in KEYS]
    await event_log.append_many(TOPIC, batch)
    written += [v for _, v in batch]
    consumer = await consumers("readers")

    records = await drain(consumer, expect=len(written))

    assert sorted(values(records)) == sorted(written)
    assert {r.topic for r in records} == {TOPIC}
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for r in records:
        partitions_of_key[r.key].add(r.partition)
        assert r.value.startswith(r.key.encode() + b"/")
        assert 0 <= r.partition < LOG_PARTITIONS
    assert all(len(p) == 1 for p in partitions_of_key.values()), partitions_of_key
    assert len({p for ps in partitions_of_key.values() for p in ps}) > 1, "the keys should spread"
    by_partition: dict[int, list[LogRecord]] = defaultdict(list)
    for r in records:
        by_partition[r.partition].append(r)
    for in_partition in by_partition.values():
        offsets = [r.offset for r in in_partition]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    for key in KEYS:  # a key's records in the order they were appended
        assert [r.value for r in records if r.key == key] == [v for v in written if v.startswith(f"{key}/".encode())]


async def test_a_consumer_reads_only_its_topic(event_log: EventLog, consumers) -> None:
    await event_log.append("other.events", "k", b"elsewhere")
    await event_log.append(TOPIC, "k", b"here")
    consumer = await consumers("readers")

    assert values(await drain(consumer, expect=1)) == [b"here"]


async def test_a_new_consumer_of_the_group_starts_after_the_committed_offsets(event_log: EventLog, consumers) -> None:
    written = await append_numbered(event_log, KEYS[:6])
    first = await consumers("routers")
    records = await drain(first, expect=6)
    # the first three appended: in each partition they come before the other three
    await first.commit([r for r in records if r.value in written[:3]])
    await first.stop()

    second = await consumers("routers")

    assert sorted(values(await drain(second, expect=3))) == sorted(written[3:])


async def test_commits_are_remembered_per_partition(event_log: EventLog, consumers) -> None:
    """Committing one partition's records says nothing about other partitions' records."""
    await append_numbered(event_log, KEYS)
    first = await consumers("routers")
    records = await drain(first, expect=len(KEYS))
    last = max(records, key=lambda r: r.offset)
    committed = [r for r in records if r.partition == last.partition]
    others = [r for r in records if r.partition != last.partition]
    assert others, "the keys should spread over several partitions"
    await first.commit(committed)
    await first.stop()

    second = await consumers("routers")

    assert sorted(values(await drain(second, expect=len(others)))) == sorted(values(others))


async def test_a_different_group_starts_from_the_beginning(event_log: EventLog, consumers) -> None:
    written = await append_numbered(event_log, KEYS[:5])
    routers = await consumers("routers")
    await routers.commit(await drain(routers, expect=5))

    webhooks = await consumers("webhooks")

    assert sorted(values(await drain(webhooks, expect=5))) == sorted(written)


async def test_uncommitted_records_are_delivered_again_to_a_new_consumer(event_log: EventLog, consumers) -> None:
    """A consumer that crashes before committing leaves its records to the next one (replay)."""
    written = await append_numbered(event_log, KEYS[:5])
    crashed = await consumers("routers")
    await drain(crashed, expect=5)
    await crashed.stop()  # gone without a commit (and out of the group: its partitions move on)

    after_crash = await consumers("routers")

    assert sorted(values(await drain(after_crash, expect=5))) == sorted(written)


async def test_a_commit_below_an_earlier_one_does_not_move_the_group_back(event_log: EventLog, consumers) -> None:
    await append_numbered(event_log, ["same-key"], rounds=4)
    first = await consumers("routers")
    records = await drain(first, expect=4)
    await first.commit(records)
    await first.commit(records[:1])  # a late, stale commit
    await first.stop()

    assert await (await consumers("routers")).poll(max_records=10, timeout_s=QUIET_S) == []


async def test_seek_replays_a_partition_from_an_offset(event_log: EventLog, consumers) -> None:
    await append_numbered(event_log, KEYS, rounds=3)
    consumer = await consumers("routers")
    records = await drain(consumer, expect=len(KEYS) * 3)
    partition = records[0].partition
    in_partition = [r for r in records if r.partition == partition]

    await consumer.seek(partition, in_partition[1].offset)

    assert await drain(consumer, expect=len(in_partition) - 1) == in_partition[1:]


async def test_after_a_seek_records_already_there_come_back_without_waiting_for_new_appends(
    event_log: EventLog, consumers
) -> None:
    """Replaying one partition while the others hold many records: every poll that has
    something to return returns it, instead of waiting for an append that never comes."""
    await event_log.append(TOPIC, "replayed", b"first")
    consumer = await consumers("routers")
    [first] = await consumer.poll(max_records=1, timeout_s=5)
    others = [k for k in KEYS if (await _partition_of(event_log, consumers, k)) != first.partition]
    await event_log.append_many(TOPIC, [(others[i % len(others)], f"other-{i}".encode()) for i in range(40)])
    await event_log.append(TOPIC, "replayed", b"second")
    await drain(consumer, expect=41, max_records=100)

    await consumer.seek(first.partition, first.offset)

    replayed: list[LogRecord] = []
    while len(replayed) < 2:
        # the poll may wait up to 60 s for new records, but these are already in the log;
        # the fixture's log re-reads on its own only every 30 s
        replayed += await asyncio.wait_for(consumer.poll(max_records=5, timeout_s=60), timeout=10)
    assert values(replayed) == [b"first", b"second"]


async def _partition_of(event_log: EventLog, consumers, key: str) -> int:
    """Where the log puts ``key``, learnt by appending to a scratch topic."""
    topic = f"scratch.{key}"
    await event_log.append(topic, key, b"probe")
    [record] = await (await consumers(f"probe-{key}", topic)).poll(max_records=1, timeout_s=5)
    return record.partition


async def test_a_poll_with_nothing_to_read_returns_empty_after_its_timeout(event_log: EventLog, consumers) -> None:
    consumer = await consumers("routers")

    assert await consumer.poll(max_records=10, timeout_s=QUIET_S) == []


async def test_a_waiting_poll_returns_a_record_appended_meanwhile(event_log: EventLog, consumers) -> None:
    consumer = await consumers("routers")
    waiting = asyncio.create_task(consumer.poll(max_records=10, timeout_s=60))

    await event_log.append(TOPIC, "k", b"wake up")

    # the fixture's log re-reads on its own only every 30 s: the append itself has to wake the
    # poll; the bound is a generous backstop against a hang, not a measurement
    records = await asyncio.wait_for(waiting, timeout=10)
    assert values(records) == [b"wake up"]


async def test_concurrent_appends_are_all_durable_exactly_once(
    sql_event_log: SqlEventLog, database: Database
) -> None:
    event_log = sql_event_log
    singles = [event_log.append(TOPIC, f"k{i % 13}", f"single-{i}".encode()) for i in range(120)]
    groups = [event_log.append_many(TOPIC, [(f"k{i}", f"group-{i}-{j}".encode()) for j in range(5)]) for i in range(16)]

    await asyncio.gather(*singles, *groups)

    expected = sorted(
        [f"single-{i}".encode() for i in range(120)] + [f"group-{i}-{j}".encode() for i in range(16) for j in range(5)]
    )
    # read through a second engine: what append acknowledged is committed, not just cached
    other_db = Database(database.url)
    other_log = SqlEventLog(other_db, partitions=LOG_PARTITIONS)
    reader = other_log.consumer(TOPIC, "auditors")
    await reader.start()
    try:
        records = await drain(reader, expect=len(expected), max_records=100)
    finally:
        await reader.stop()
        await other_db.close()
    assert sorted(values(records)) == expected
    assert len({(r.partition, r.offset) for r in records}) == len(records)


async def test_close_writes_the_appends_already_handed_over(event_log: SqlEventLog, consumers) -> None:
    appends = [asyncio.create_task(event_log.append(TOPIC, "k", f"v{i}".encode())) for i in range(10)]
    await asyncio.sleep(0)  # one turn of the loop: every task has handed its record over

    await event_log.close()

    await asyncio.gather(*appends)  # none of them failed
    assert sorted(values(await drain(await consumers("routers"), expect=10))) == sorted(
        f"v{i}".encode() for i in range(10)
    )


async def test_append_after_close_is_refused_as_unavailable(event_log: SqlEventLog) -> None:
    await event_log.close()

    with pytest.raises(Unavailable):
        await event_log.append(TOPIC, "k", b"too late")
    with pytest.raises(Unavailable):
        await event_log.append_many(TOPIC, [("k", b"too late")])


async def test_appending_nothing_is_a_no_op(event_log: EventLog, consumers) -> None:
    await event_log.append_many(TOPIC, [])

    assert await (await consumers("routers")).poll(max_records=10, timeout_s=QUIET_S) == []


async def test_lag_counts_what_the_consumer_has_not_taken_yet(event_log: EventLog, consumers) -> None:
    consumer = await consumers("laggards")
    await event_log.append_many(TOPIC, [("one-conversation", f"m{i}".encode()) for i in range(5)])

    first: list[LogRecord] = []
    while len(first) < 2:
        batch = await consumer.poll(max_records=2 - len(first), timeout_s=5)
        assert batch, "the records should come"
        first += batch
    assert values(first) == [b"m0", b"m1"]
    assert await consumer.lag() == 3  # appended, on this consumer's partition, not yet taken
    rest = await drain(consumer, expect=3)
    assert values(rest) == [b"m2", b"m3", b"m4"]
    assert await consumer.lag() == 0


@pytest.mark.parametrize("event_log_url", [pytest.param("kafka", marks=pytest.mark.kafka)], indirect=True)
async def test_kafka_places_a_key_where_the_java_client_and_aiokafka_do(event_log: EventLog, consumers) -> None:
    """The producer's key placement is murmur2, the Java client's and aiokafka's: during a rolling
    upgrade between producers, a conversation's messages stay in one partition, in order."""
    assert isinstance(event_log, KafkaEventLog)
    from aiokafka.partitioner import DefaultPartitioner

    keys = [f"conversation-{i}" for i in range(40)]
    await event_log.append_many(TOPIC, [(k, k.encode()) for k in keys])

    records = await drain(await consumers("placement"), expect=len(keys), max_records=100)
    partitions = list(range(LOG_PARTITIONS))
    assert {r.key: r.partition for r in records} == {k: DefaultPartitioner()(k.encode(), partitions, partitions) for k in keys}
