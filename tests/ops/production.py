"""A fresh production-profile environment on the servers of scripts/services.sh for one test:
its own PostgreSQL database (migrated), Kafka namespace, Redis and etcd URLs; removed after."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import sqlalchemy as sa

from chat4all.adapters.kafka import delete_namespace
from tests.conftest import server_missing

URLS = ("CHAT4ALL_TEST_POSTGRES_URL", "CHAT4ALL_TEST_KAFKA_URL", "CHAT4ALL_TEST_REDIS_URL", "CHAT4ALL_TEST_ETCD_URL")


def required_url(name: str) -> str:
    """A CHAT4ALL_TEST_* URL that `scripts/test.sh` sets from scripts/services.sh."""
    url = os.environ.get(name)
    if not url:
        server_missing(f"{name} is not set (make test sets it from scripts/services.sh)")
    return url


@asynccontextmanager
async def production_env(prefix: str) -> AsyncIterator[dict[str, str]]:
    urls = {u: required_url(u) for u in URLS}
    suffix = secrets.token_hex(4)
    pg = sa.engine.make_url(urls["CHAT4ALL_TEST_POSTGRES_URL"])
    database = f"chat4all_{prefix}_{suffix}"
    admin = await asyncpg.connect(
        host=pg.host, port=pg.port or 5432, user=pg.username, password=pg.password, database=pg.database
    )
    await admin.execute(f'CREATE DATABASE "{database}"')
    env = {
        "CHAT4ALL_DATABASE_URL": pg.set(database=database).render_as_string(hide_password=False),
        "CHAT4ALL_EVENT_LOG_URL": urls["CHAT4ALL_TEST_KAFKA_URL"],
        "CHAT4ALL_PRESENCE_URL": urls["CHAT4ALL_TEST_REDIS_URL"],
        "CHAT4ALL_METADATA_URL": urls["CHAT4ALL_TEST_ETCD_URL"],
        "CHAT4ALL_NAMESPACE": f"{prefix}-{suffix}",
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
        "CHAT4ALL_ROUTER_SESSION_TIMEOUT_MS": "6000",
    }
    try:
        migrate = subprocess.run(
            [sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **env}, capture_output=True, text=True,
            timeout=180,
        )
        assert migrate.returncode == 0, migrate.stderr
        yield env
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        await delete_namespace(urls["CHAT4ALL_TEST_KAFKA_URL"], env["CHAT4ALL_NAMESPACE"])
