"""R2.2: a socket whose heartbeats stop is closed and its user goes offline."""

from __future__ import annotations

import pytest
import websockets

from chat4all.config import Settings
from tests.conftest import wait_until


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"ws_heartbeat_timeout_s": 0.5})


async def test_a_silent_socket_is_closed_and_presence_lapses(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    async with bob.websocket() as socket:
        await socket.ping()
        assert (await socket.receive())["type"] == "pong"
        assert (await alice.presence("bob"))["status"] == "online"
        # bob says nothing more: the server closes the socket once the heartbeat timeout passes
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.receive(timeout=10)
        assert closed.value.rcvd.code == 1001
    await wait_until(lambda: _offline(alice), what="bob to be offline")


async def _offline(client) -> bool:
    return (await client.presence("bob"))["status"] == "offline"
