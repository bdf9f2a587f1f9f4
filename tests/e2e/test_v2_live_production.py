"""/v2/ws across API nodes on the production profile (PostgreSQL, Kafka, Redis, etcd): own
messages, other devices' receipts, typing and presence cross nodes through the push channel."""

from __future__ import annotations

import pytest

from tests.api.test_v2_live import next_frame, quiet
from tests.e2e.test_production import Stack, _login, _register, stack  # noqa: F401 — the fixture

pytestmark = [pytest.mark.e2e, pytest.mark.production]


async def test_v2_frames_cross_api_nodes(stack: Stack) -> None:  # noqa: F811
    api1, api2 = stack.process("api", "api-1"), stack.process("api", "api-2")
    stack.process("router", "router-1")
    await stack.start_all()
    await _register(api1.base_url, "alice", "bob", "carol")
    alice1 = await _login(api1.base_url, "alice")
    alice2 = await _login(api2.base_url, "alice")
    bob = await _login(api2.base_url, "bob")
    carol = await _login(api1.base_url, "carol")
    conversation_id = (await alice1.create_conversation("group", ["bob"], name="nodes"))["conversation_id"]
    try:
        async with bob.websocket(version="v2") as bob_socket, carol.websocket(version="v2") as carol_socket:
            # presence: alice comes online on API 1; bob, on API 2, is told; carol shares nothing
            async with alice1.websocket(version="v2") as on_1, alice2.websocket(version="v2") as on_2:
                online = await next_frame(bob_socket, "presence", timeout=15)
                assert (online["username"], online["status"]) == ("alice", "online")

                # own: sent through API 1, both of alice's devices (one per node) see it marked own
                sent = await alice1.send_text(conversation_id, "from the phone")
                for device in (on_1, on_2):
                    frame = await next_frame(device, "message", timeout=15)
                    assert frame["own"] is True and frame["message"]["message_id"] == sent["message_id"]
                received = await next_frame(bob_socket, "message", timeout=15)
                assert received["message"]["message_id"] == sent["message_id"] and "own" not in received

                # typing from API 2 reaches alice's sockets on both nodes, not bob's own
                await bob_socket.typing(conversation_id, "start")
                for device in (on_1, on_2):
                    typing = await next_frame(device, "typing", timeout=15)
                    assert (typing["username"], typing["state"]) == ("bob", "start")

                # a read on alice's API-2 device reaches her API-1 device
                reply = await bob.send_text(conversation_id, "read this")
                for device in (on_1, on_2):
                    await next_frame(device, "message", timeout=15)
                await on_2.read([reply["message_id"]])
                statuses = []
                while not statuses or statuses[-1]["status"] != "READ":
                    statuses.append((await next_frame(on_1, "status", timeout=15))["status"])
                assert statuses[-1]["username"] == "alice" and statuses[-1]["message_id"] == reply["message_id"]
            offline = await next_frame(bob_socket, "presence", timeout=15)
            assert (offline["username"], offline["status"]) == ("alice", "offline")
            assert [f for f in await quiet(carol_socket) if f["type"] in ("presence", "typing")] == []
    finally:
        for client in (alice1, alice2, bob, carol):
            await client.close()
