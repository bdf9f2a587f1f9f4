"""Fixtures for the contract suites: every store, on every adapter.

``database`` is parametrized over SQLite (a fresh file per test) and PostgreSQL (the server from
``scripts/services.sh``, URL in ``CHAT4ALL_TEST_POSTGRES_URL``). For PostgreSQL one uniquely named
database is created and migrated once per session, every test starts from empty tables, and the
database is dropped at the end. Without the URL the PostgreSQL tests skip — except in CI, where
they fail: a real-server test must never be skipped silently there.

``metadata_store`` runs on those two and on etcd (``CHAT4ALL_TEST_ETCD_URL``, default the local
server), each etcd test under a key prefix of its own, deleted afterwards; unreachable → skip/fail.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import sqlalchemy as sa

from chat4all.adapters.etcd import EtcdMetadataStore
from aiokafka.errors import KafkaError

from chat4all.adapters.kafka import KafkaEventLog, delete_namespace
from chat4all.adapters.memory import MemoryPresenceStore
from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.adapters.sql.metadata import SqlMetadataStore
from chat4all.adapters.sql.migrate import upgrade
from chat4all.adapters.sql.schema import metadata as schema_metadata
from chat4all.adapters.sqllog import SqlEventLog
from chat4all.domain.errors import Unavailable
from tests.conftest import server_missing
from tests.fakes.log import FakeEventLog
from tests.fakes.users import FakeMetadataStore
from tests.fakes.world import FakeWorld

T = TypeVar("T")

POSTGRES_URL_ENV = "CHAT4ALL_TEST_POSTGRES_URL"
REDIS_URL_ENV = "CHAT4ALL_TEST_REDIS_URL"
ETCD_URL_ENV = "CHAT4ALL_TEST_ETCD_URL"
ETCD_DEFAULT_URL = "etcd://127.0.0.1:2379"
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/15"
KAFKA_URL_ENV = "CHAT4ALL_TEST_KAFKA_URL"
KAFKA_DEFAULT_URL = "kafka://127.0.0.1:9092"
# the topics the event log suite appends to
# (the scratch topics tell which partition a key lands in, so they are partitioned alike)
KAFKA_TOPICS = ("contract.events", "other.events", *(f"scratch.conversation-{i}" for i in range(8)))
# partitions of the event log under test; a few, so that keys spread over more than one
LOG_PARTITIONS = 4
# the "URL" of the in-memory fakes (tests/fakes), which run every suite they implement
FAKE = "fake://"
# seconds a presence entry lives without a heartbeat
PRESENCE_TTL_S = 30.0


def _run_in_private_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Runs session set-up/tear-down on its own loop, leaving the tests' loops alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _asyncpg_dsn(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _create_and_migrate(admin: sa.URL, name: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(admin))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    db = Database(admin.set(database=name).render_as_string(hide_password=False))
    try:
        await upgrade(db)
    finally:
        await db.close()


async def _drop(admin: sa.URL, name: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(admin))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated database of its own on the test server, for this session only."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    if not raw:
        message = f"{POSTGRES_URL_ENV} is not set (run `scripts/services.sh up postgres` and `eval \"$(scripts/services.sh env)\"`)"
        server_missing(message)
    admin = sa.make_url(raw)
    name = f"chat4all_contract_{os.getpid()}_{secrets.token_hex(4)}"
    _run_in_private_loop(_create_and_migrate(admin, name))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        _run_in_private_loop(_drop(admin, name))


async def _empty_all_tables(db: Database) -> None:
    names = ", ".join(f'"{t.name}"' for t in schema_metadata.sorted_tables)
    async with db.write() as conn:
        await conn.execute(sa.text(f"TRUNCATE TABLE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        # kept only for the suites marked `fakes` (see pytest_collection_modifyitems)
        pytest.param("fake", id="fake"),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The database backends' "fake" variant runs only in suites that the in-memory fakes
    implement (marked ``fakes``); elsewhere it would have no database to test."""
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        on_fake = params is not None and params.params.get("backend") == "fake"
        (drop if on_fake and item.get_closest_marker("fakes") is None else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "fake":
        return FAKE
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/t.db"
    # resolved in a sync fixture, outside the test's event loop: the session set-up runs a loop of its own
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return _database_url(backend, tmp_path, request)


@asynccontextmanager
async def _database(database_url: str) -> AsyncIterator[Any]:
    """A migrated, empty database; None on the fake backend (its stores come from ``fakes``)."""
    if database_url == FAKE:
        yield None
        return
    db = Database(database_url)
    if db.is_sqlite:
        await upgrade(db)
    else:
        await _empty_all_tables(db)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty database on each backend (None on the fake one)."""
    async with _database(database_url) as db:
        yield db


@asynccontextmanager
async def _etcd_metadata_store(url: str) -> AsyncIterator[EtcdMetadataStore]:
    """Skips when etcd is unreachable (fails in CI); deletes the prefix's keys afterwards."""
    store = EtcdMetadataStore(url, prefix=f"/chat4all-test/{uuid.uuid4()}")
    await store.start()
    try:
        await store.ping()
    except Unavailable as exc:
        await store.close()
        message = f"etcd at {url} is not reachable ({exc}); run `scripts/services.sh up etcd`"
        server_missing(message)
    try:
        yield store
    finally:
        await store.delete_all()
        await store.close()


@pytest.fixture
async def etcd_metadata_store() -> AsyncIterator[EtcdMetadataStore]:
    async with _etcd_metadata_store(os.environ.get(ETCD_URL_ENV, ETCD_DEFAULT_URL)) as store:
        yield store


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        pytest.param("etcd", id="etcd", marks=pytest.mark.etcd),
        pytest.param("fake", id="fake"),
    ]
)
def metadata_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "etcd":
        return os.environ.get(ETCD_URL_ENV, ETCD_DEFAULT_URL)
    if request.param == "fake":
        return FAKE
    return _database_url(request.param, tmp_path, request)


@pytest.fixture
async def metadata_store(metadata_url: str) -> AsyncIterator[Any]:
    """Every MetadataStore adapter: SQL on each database backend, etcd, and the in-memory fake."""
    if metadata_url == FAKE:
        yield FakeMetadataStore()
    elif metadata_url.startswith("etcd://"):
        async with _etcd_metadata_store(metadata_url) as store:
            yield store
    else:
        async with _database(metadata_url) as db:
            yield SqlMetadataStore(db)


@pytest.fixture
def fakes() -> FakeWorld:
    """The in-memory fakes of one test, sharing their data as the SQL stores share a database."""
    return FakeWorld()


@pytest.fixture
def conversation_store(database: Database | None, fakes: FakeWorld) -> Any:
    return fakes.conversations if database is None else SqlConversationStore(database)


@pytest.fixture
def message_store(database: Database | None, fakes: FakeWorld) -> Any:
    return fakes.messages if database is None else SqlMessageStore(database)


@pytest.fixture
async def sql_event_log(database: Database) -> AsyncIterator[SqlEventLog]:
    """The embedded log on each database backend, for what only it promises."""
    async with _sql_event_log(database) as log:
        yield log


@asynccontextmanager
async def _sql_event_log(database: Database) -> AsyncIterator[SqlEventLog]:
    # a long poll interval: a poll waiting for records must be woken by the append itself,
    # not find them by re-reading the table on its own schedule
    log = SqlEventLog(database, partitions=LOG_PARTITIONS, poll_interval_s=30.0)
    await log.start()
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        pytest.param("kafka", id="kafka", marks=pytest.mark.kafka),
        pytest.param("fake", id="fake"),
    ]
)
def event_log_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "fake":
        return FAKE
    if request.param == "kafka":
        return os.environ.get(KAFKA_URL_ENV, KAFKA_DEFAULT_URL)
    return _database_url(request.param, tmp_path, request)


@pytest.fixture
async def event_log(event_log_url: str) -> AsyncIterator[Any]:
    """Every EventLog adapter: the SQL log on each database backend, and Kafka (topics under a
    namespace of the test's own, so that no test reads another's records), and the in-memory fake."""
    if event_log_url == FAKE:
        fake = FakeEventLog(partitions=LOG_PARTITIONS)
        yield fake
        await fake.close()
        return
    if not event_log_url.startswith("kafka://"):
        async with _database(event_log_url) as db, _sql_event_log(db) as log:
            yield log
        return
    namespace = f"contract-{secrets.token_hex(4)}"
    log = KafkaEventLog(
        event_log_url, partitions=LOG_PARTITIONS, topics=KAFKA_TOPICS, namespace=namespace, session_timeout_ms=6_000
    )
    try:
        await log.start()
    except (KafkaError, Unavailable) as exc:
        message = f"Kafka at {event_log_url} is not reachable ({exc!r}); run `scripts/services.sh up kafka`"
        server_missing(message)
    try:
        yield log
    finally:
        await log.close()
        await delete_namespace(event_log_url, namespace)


@dataclass
class RedisKeyspace:
    """The test Redis (``CHAT4ALL_TEST_REDIS_URL``) and a key prefix no other test uses."""

    url: str
    client: Any  # redis.asyncio.Redis
    prefix: str


@asynccontextmanager
async def _redis_keyspace() -> AsyncIterator[RedisKeyspace]:
    """Skips when Redis is unreachable (fails in CI); deletes the prefix's keys afterwards."""
    from redis.exceptions import RedisError

    from chat4all.adapters.redis import connect

    url = os.environ.get(REDIS_URL_ENV, REDIS_DEFAULT_URL)
    client = connect(url, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        message = f"Redis at {url} is not reachable ({exc}); run `scripts/services.sh up redis`"
        server_missing(message)
    space = RedisKeyspace(url, client, f"test-{secrets.token_hex(6)}")
    try:
        yield space
    finally:
        keys = [key async for key in client.scan_iter(match=f"{space.prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def redis_keyspace() -> AsyncIterator[RedisKeyspace]:
    async with _redis_keyspace() as space:
        yield space


@pytest.fixture(
    params=[pytest.param("memory", id="memory"), pytest.param("redis", id="redis", marks=pytest.mark.redis)]
)
async def presence_store(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Every PresenceStore adapter, each with a time-to-live of ``PRESENCE_TTL_S``."""
    if request.param == "memory":
        yield MemoryPresenceStore(ttl_s=PRESENCE_TTL_S)
    elif request.param == "redis":
        from chat4all.adapters.redis import RedisPresenceStore

        async with _redis_keyspace() as space:
            yield RedisPresenceStore(space.client, ttl_s=PRESENCE_TTL_S, key_prefix=space.prefix)
    else:  # pragma: no cover
        raise AssertionError(f"unknown presence adapter {request.param}")
