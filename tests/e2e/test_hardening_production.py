"""Abuse limits, accept-time idempotency, the status outbox and schema readiness on the
production profile: real PostgreSQL, Kafka, Redis and etcd, separate API and router processes."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
import sqlalchemy as sa

from chat4all.adapters.kafka import KafkaEventLog

from chat4all.domain.events import StatusEvent
from tests.conftest import wait_until
from tests.e2e.processes import Process, free_port
from tests.e2e.test_production import Stack, _login, _register, _urls, stack  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.production]


async def test_a_retry_on_another_api_node_is_a_duplicate_before_any_router_stored_it(stack: Stack) -> None:
    api1, api2 = stack.process("api", "api-1"), stack.process("api", "api-2")  # no router at all
    await stack.start_all()
    await _register(api1.base_url, "alice", "bob")
    alice1, alice2 = await _login(api1.base_url, "alice"), await _login(api2.base_url, "alice")
    conversation_id = (await alice1.create_conversation("private", ["bob"]))["conversation_id"]
    message_id = str(uuid.uuid4())
    first = await alice1.send_text(conversation_id, "once", message_id=message_id)
    again = await alice2.send_text(conversation_id, "once", message_id=message_id)
    assert first["status"] == "accepted" and "duplicate" not in first
    assert again == {**first, "duplicate": True}
    for c in (alice1, alice2):
        await c.close()


async def test_send_limits_are_shared_by_every_api_node(stack: Stack) -> None:
    stack.env["CHAT4ALL_SEND_MESSAGES_PER_MINUTE"] = "4"
    api1, api2 = stack.process("api", "api-1"), stack.process("api", "api-2")
    await stack.start_all()
    await _register(api1.base_url, "alice", "bob")
    alice1, alice2 = await _login(api1.base_url, "alice"), await _login(api2.base_url, "alice")
    conversation_id = (await alice1.create_conversation("private", ["bob"]))["conversation_id"]
    for client in (alice1, alice2, alice1, alice2):
        await client.send_text(conversation_id, "within the limit")
    async with httpx.AsyncClient(base_url=api2.base_url) as http:
        refused = await http.post(
            "/v1/messages",
            json={"conversation_id": conversation_id, "payload": {"type": "text", "text": "one too many"}},
            headers={"Authorization": f"Bearer {alice2.access_token}"},
        )
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["RateLimit-Limit"] == "4" and int(refused.headers["Retry-After"]) >= 1
    for c in (alice1, alice2):
        await c.close()


async def _status_events(stack: Stack, message_id: str) -> list[dict]:
    log = KafkaEventLog(
        stack.env["CHAT4ALL_EVENT_LOG_URL"], partitions=8, topics=[], namespace=stack.env["CHAT4ALL_NAMESPACE"]
    )
    await log.start()
    consumer = log.consumer(StatusEvent.topic, group=f"test-reader-{secrets.token_hex(4)}")
    await consumer.start()
    try:
        found: list[dict] = []
        for _ in range(10):
            records = await consumer.poll(max_records=1000, timeout_s=1.0)
            found += [e for e in (orjson.loads(r.value) for r in records) if e["message_id"] == message_id]
            if found and not records:
                break
        return found
    finally:
        await consumer.stop()
        await log.close()


async def test_status_events_survive_a_router_killed_between_commit_and_publish(stack: Stack) -> None:
    api = stack.process("api", "api-1")
    router = stack.process("router", "router-1")
    api.start()
    # stored and pushed, SENT not yet appended: its consumed batch is not committed either
    router.start(CHAT4ALL_FAILPOINTS="routing.before_sent")
    await api.ready()
    await router.ready()
    await _register(api.base_url, "alice", "bob")
    alice = await _login(api.base_url, "alice")
    conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    sent = await alice.send_text(conversation_id, "through the crash")

    async def died() -> bool:
        return router.proc is not None and router.proc.poll() is not None

    await wait_until(died, timeout=60, what="the router to die at the failpoint")
    assert router.proc is not None and router.proc.returncode == -signal.SIGKILL
    db = await asyncpg.connect(sa.make_url(stack.env["CHAT4ALL_DATABASE_URL"]).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        assert await db.fetchval("SELECT status FROM deliveries WHERE message_id = $1", sent["message_id"]) == "SENT"
    finally:
        await db.close()
    assert await _status_events(stack, sent["message_id"]) == []  # the crash came before the append
    router.start()  # without the failpoint: the batch is consumed again, the message is known
    await router.ready()

    async def appended() -> list[dict]:
        return await _status_events(stack, sent["message_id"])

    events = await wait_until(appended, timeout=90, what="SENT on the log after the restart")
    assert [(e["username"], e["status"]) for e in events][:1] == [("bob", "SENT")]
    await alice.close()


async def test_ready_is_503_naming_the_schema_until_migrate_runs(tmp_path: Path) -> None:
    urls = _urls()
    pg = sa.make_url(urls["CHAT4ALL_TEST_POSTGRES_URL"])
    name = f"chat4all_e2e_schema_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(host=pg.host, port=pg.port or 5432, user=pg.username, password=pg.password, database=pg.database)
    await admin.execute(f'CREATE DATABASE "{name}"')
    env = {
        "CHAT4ALL_DATABASE_URL": pg.set(database=name).render_as_string(hide_password=False),
        "CHAT4ALL_EVENT_LOG_URL": urls["CHAT4ALL_TEST_KAFKA_URL"],
        "CHAT4ALL_PRESENCE_URL": urls["CHAT4ALL_TEST_REDIS_URL"],
        "CHAT4ALL_NAMESPACE": f"e2e-schema-{secrets.token_hex(3)}",
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
    }
    api = Process(tmp_path / "api", free_port(), tmp_path / "api.log", role="api", env=env)
    api.start()
    try:
        async def answer() -> httpx.Response | None:
            assert api.proc is not None and api.proc.poll() is None, api.log.read_text()[-2000:]
            try:
                async with httpx.AsyncClient(timeout=30) as http:
                    return await http.get(f"{api.base_url}/health/ready")
            except httpx.TransportError:
                return None

        behind = await wait_until(answer, timeout=60, interval=0.2, what="the API to answer")
        assert behind.status_code == 503
        assert "schema" in behind.json()["error"]["message"]
        assert "chat4all migrate" in behind.json()["error"]["details"]["schema"]
        migrate = subprocess.run(
            [sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
        )
        assert migrate.returncode == 0, migrate.stderr
        await api.ready()
    finally:
        if api.proc is not None and api.proc.poll() is None:
            api.kill(signal.SIGTERM)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
