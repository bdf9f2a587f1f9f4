"""Accept-time idempotency and schema readiness, over real HTTP (embedded profile)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.migrate import upgrade
from chat4all.client import ApiError
from chat4all.config import Settings
from chat4all.workers.router import RouterWorker
from tests.conftest import persisted, start_server, wait_until


async def test_a_repeated_message_id_is_a_duplicate_even_before_the_router_stored_it(server, pair) -> None:
    alice, bob, conversation_id = pair
    for worker in server.runtime.workers:  # nothing is persisted from here on
        if isinstance(worker, RouterWorker):
            await worker.stop()
    message_id = str(uuid.uuid4())
    first = await alice.send_text(conversation_id, "once", message_id=message_id)
    again = await alice.send_text(conversation_id, "once", message_id=message_id)
    assert first == {"message_id": message_id, "conversation_id": conversation_id, "status": "accepted"}
    assert again == {**first, "duplicate": True}
    with pytest.raises(ApiError) as taken:  # someone else's id is not theirs to reuse
        await bob.send_text(conversation_id, "mine?", message_id=message_id)
    assert taken.value.status == 409


async def test_the_duplicate_reports_the_stored_status_once_persisted(pair) -> None:
    alice, _, conversation_id = pair
    message_id = str(uuid.uuid4())
    await alice.send_text(conversation_id, "once", message_id=message_id)
    await persisted(alice, message_id)
    again = await alice.send_text(conversation_id, "once", message_id=message_id)
    assert again["duplicate"] is True and again["status"] == "SENT"


async def test_ready_is_503_naming_the_schema_when_the_database_is_behind(tmp_path, settings: Settings) -> None:
    database = Database(settings.resolved_database_url)
    await upgrade(database, "0005")  # the previous release's schema
    running, uv, task = await start_server(settings.model_copy(update={"migrate_on_start": False}))
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=30) as http:
            behind = await http.get("/health/ready")
            assert behind.status_code == 503
            error = behind.json()["error"]
            assert error["code"] == "unavailable" and "schema" in error["message"]
            assert error["details"]["schema"].startswith("down") and "schema at 0005" in error["details"]["schema"]
            await upgrade(database)

            async def ready() -> bool:
                return (await http.get("/health/ready")).status_code == 200

            await wait_until(ready, timeout=30, what="readiness after the migration")
    finally:
        uv.should_exit = True
        await task
        await database.close()
