"""Failover through the gateway for real: an API node SIGKILLed under a steady stream of sends
(each with a message_id, sent as Idempotency-Key). Its own stack of nodes: it kills one."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import wait_until
from tests.e2e.gateway import Gateway
from tests.e2e.test_gateway import Stack, gateways, nodes, start_gateway, user  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.production]


@pytest.mark.timeout(300)
async def test_a_node_killed_under_200_sends_a_second_loses_and_doubles_nothing(nodes: Stack, gateways: list[Gateway]) -> None:
    g = await start_gateway(nodes, gateways, CHAT4ALL_GATEWAY_RATE_PER_MINUTE="1000000", CHAT4ALL_GATEWAY_BURST="10000")
    alice = await user(g, "alice")
    others = []
    for name in ("bob", "carol"):
        other = await user(g, name)
        others.append(other.username)
        await other.close()
    conversations = [
        (await alice.create_conversation("group", others, name=f"g{i}"))["conversation_id"] for i in range(8)
    ]
    rate, duration, kill_at = 200, 20.0, 6.0
    outcome: dict[str, int | str] = {}  # message_id → HTTP status, or the transport error
    sends: list[asyncio.Task[None]] = []
    headers = {"Authorization": f"Bearer {alice.access_token}"}
    async with g.client(headers=headers, timeout=30, limits=httpx.Limits(max_connections=100)) as http:

        async def send(i: int) -> None:
            message_id = str(uuid.uuid4())
            body = {"message_id": message_id, "conversation_id": conversations[i % len(conversations)],
                    "payload": {"type": "text", "text": f"m{i}"}}
            try:
                r = await http.post("/v1/messages", json=body, headers={"Idempotency-Key": message_id})
                outcome[message_id] = r.status_code
            except httpx.TransportError as exc:
                outcome[message_id] = type(exc).__name__

        loop = asyncio.get_running_loop()
        start = loop.time()
        killed = False
        for i in range(int(rate * duration)):  # open loop: the i-th send leaves at start + i/rate
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not killed and loop.time() - start >= kill_at:
                nodes.apis[0].kill(signal.SIGKILL)
                killed = True
            sends.append(asyncio.create_task(send(i)))
        await asyncio.gather(*sends)
        achieved = len(sends) / (loop.time() - start)

    failed = {m: s for m, s in outcome.items() if s not in (200, 202)}
    error_rate = len(failed) / len(outcome)
    print(f"\nfailover: {len(outcome)} sends at {achieved:.0f}/s, node killed at {kill_at:.0f}s; "
          f"client-visible errors {len(failed)} ({error_rate:.2%}): {Counter(failed.values())}")
    # a client retries what failed with the same message_id (the contract's way); nothing may double
    async with g.client(headers=headers, timeout=30) as http:
        for message_id in failed:
            body = {"message_id": message_id, "conversation_id": conversations[0], "payload": {"type": "text", "text": "retry"}}
            r = await http.post("/v1/messages", json=body, headers={"Idempotency-Key": message_id})
            assert r.status_code in (200, 202), r.text

    url = sa.engine.make_url(nodes.env["CHAT4ALL_DATABASE_URL"])
    db = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username, password=url.password, database=url.database)
    try:
        async def stored() -> list[asyncpg.Record] | None:
            rows = await db.fetch(query, conversations)
            return rows if len(rows) >= len(outcome) else None

        query = "SELECT message_id, conversation_id, sequence_number FROM messages WHERE conversation_id = ANY($1::text[])"
        rows = await wait_until(stored, timeout=90, interval=0.5, what="every accepted message to be stored")
    finally:
        await db.close()
    ids = Counter(str(r["message_id"]) for r in rows)
    assert set(ids) == set(outcome), "every send stored, and nothing that was not sent"
    assert max(ids.values()) == 1 and len(rows) == len(outcome)
    for conversation_id in conversations:  # dense sequence numbers: no gap, no second copy
        seqs = sorted(r["sequence_number"] for r in rows if str(r["conversation_id"]) == conversation_id)
        assert seqs == list(range(1, len(seqs) + 1))
    assert achieved >= rate * 0.8, f"the load generator reached only {achieved:.0f}/s"
    assert error_rate < 0.01, f"{error_rate:.2%} of sends failed at the client"
    await alice.close()
