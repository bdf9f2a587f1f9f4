"""Chat4All as a real process, started the way `make run` starts it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.processes import Process, embedded_process

pytestmark = pytest.mark.e2e


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    with embedded_process(tmp_path) as p:
        yield p


async def test_the_process_serves_swagger_and_stops_cleanly_on_sigterm(process: Process) -> None:
    process.start()
    await process.ready()
    async with httpx.AsyncClient(base_url=process.base_url) as http:
        assert "swagger-ui" in (await http.get("/api-docs")).text
        assert (await http.get("/openapi.json")).json()["info"]["title"] == "Chat4All"
    process.kill(signal.SIGTERM)
    # uvicorn re-raises the signal once it has shut down gracefully
    assert process.proc is not None and process.proc.returncode in (0, -signal.SIGTERM)
    assert '"chat4all stopped"' in process.log.read_text()


async def test_no_message_answered_202_is_lost_when_the_process_is_killed(process: Process) -> None:
    process.start()
    await process.ready()
    async with Chat4AllClient(process.base_url) as alice, Chat4AllClient(process.base_url) as bob:
        await alice.register("alice", PASSWORD)
        await bob.register("bob", PASSWORD)
        await alice.login("alice", PASSWORD)
        await bob.login("bob", PASSWORD)
        conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]

        accepted: list[str] = []
        enough = asyncio.Event()

        async def sender() -> None:
            while True:
                message_id = str(uuid.uuid4())
                try:
                    answer = await alice.send_text(conversation_id, "survive", message_id=message_id)
                except httpx.TransportError:
                    return  # the process is gone
                assert answer["status"] == "accepted"
                accepted.append(message_id)
                if len(accepted) >= 300:
                    enough.set()

        senders = [asyncio.create_task(sender()) for _ in range(8)]
        await asyncio.wait_for(enough.wait(), timeout=60)
        process.kill(signal.SIGKILL)  # mid-flight: requests are still being answered
        await asyncio.gather(*senders)

    process.start()
    await process.ready()
    async with Chat4AllClient(process.base_url) as bob:
        await bob.login("bob", PASSWORD)

        async def all_stored() -> list[dict] | None:
            items: list[dict] = []
            since = 0
            while True:
                page = await bob.conversation_messages(conversation_id, since=since, limit=500)
                items.extend(page["items"])
                if len(page["items"]) < 500:
                    break
                since = page["next_since"]
            stored = {m["message_id"] for m in items}
            return items if stored >= set(accepted) else None

        items = await wait_until(all_stored, timeout=30, what="every accepted message after the restart")
    assert [m["sequence_number"] for m in items] == list(range(1, len(items) + 1))
    assert len({m["message_id"] for m in items}) == len(items)


async def test_logs_are_json_with_the_request_trace_id_carried_to_the_router(process: Process) -> None:
    process.start(CHAT4ALL_LOG_LEVEL="DEBUG", CHAT4ALL_ACCESS_LOG="true")
    await process.ready()
    async with Chat4AllClient(process.base_url) as alice:
        await alice.register("alice", PASSWORD)
        await alice.register("bob", PASSWORD)
        await alice.login("alice", PASSWORD)
        conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
        trace_id = "0af7651916cd43dd8448eb211c80319c"
        response = await alice._http.post(
            "/v1/messages",
            json={"conversation_id": conversation_id, "payload": {"type": "text", "text": "traced"}},
            headers={"Authorization": f"Bearer {alice.access_token}", "traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )
        message_id = response.json()["message_id"]

        def lines() -> list[dict]:
            import json

            return [json.loads(line) for line in process.log.read_text().splitlines() if line.startswith("{")]

        async def router_logged() -> dict | None:
            return next((l for l in lines() if l.get("event") == "message persisted" and l.get("message_id") == message_id), None)

        routed = await wait_until(router_logged, what="the router's log line")
    assert routed["trace_id"] == trace_id and routed["sequence_number"] == 1
    request_line = next(l for l in lines() if l.get("event") == "request" and l.get("trace_id") == trace_id)
    assert request_line["route"] == "/v1/messages" and request_line["status"] == 202
    assert all({"timestamp", "level", "event"} <= set(l) for l in lines())


def test_migrate_brings_an_empty_database_up_to_date(tmp_path: Path) -> None:
    env = {**os.environ, "CHAT4ALL_DATA_DIR": str(tmp_path)}
    for _ in range(2):  # a second run has nothing to do and still succeeds
        done = subprocess.run([sys.executable, "-m", "chat4all", "migrate"], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "database is up to date" in done.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "chat4all.db") as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert {"users", "conversations", "messages", "deliveries", "status_history", "event_log"} <= tables
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from chat4all.adapters.sql.migrate import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert version == ScriptDirectory.from_config(config).get_current_head()
