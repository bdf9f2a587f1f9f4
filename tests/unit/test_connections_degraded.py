"""A socket's life while presence (Redis) is failing over: the handshake is refused without
leaving anything behind, beats and closes are skipped rather than fatal, and a gap in the push
channel ends the socket so the client reconnects and catches up."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from chat4all.adapters.memory import MemoryPresenceStore
from chat4all.services.hub import LocalHub
from chat4all.domain.errors import Unavailable
from chat4all.domain.frames import control_frame
from chat4all.services.connections import ConnectionService, Overflow


class FlakyPresence(MemoryPresenceStore):
    down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("presence store unavailable: ConnectionError")

    async def connected(self, username: str, connection_id: str, *, node: str, at: datetime) -> bool:
        self._check()
        return await super().connected(username, connection_id, node=node, at=at)

    async def heartbeat(self, username: str, connection_id: str, *, node: str, at: datetime) -> None:
        self._check()
        await super().heartbeat(username, connection_id, node=node, at=at)

    async def disconnected(self, username: str, connection_id: str, *, at: datetime) -> bool:
        self._check()
        return await super().disconnected(username, connection_id, at=at)


class Log:
    def __init__(self) -> None:
        self.appended: list[tuple[str, str]] = []

    async def append(self, topic: str, key: str, value: bytes) -> None:
        self.appended.append((topic, key))


@pytest.fixture
def parts() -> tuple[ConnectionService, LocalHub, FlakyPresence, Log]:
    hub, presence, log = LocalHub(), FlakyPresence(ttl_s=60), Log()
    service = ConnectionService(
        hub=hub, presence=presence, messages=None, deliveries=None, log=log, node_id="n1", queue_size=10  # type: ignore[arg-type]
    )
    return service, hub, presence, log


async def test_a_socket_opened_while_presence_is_down_is_refused_and_leaves_nothing(parts: Any) -> None:
    service, hub, presence, _ = parts
    presence.down = True
    with pytest.raises(Unavailable):
        await service.open("bob")
    assert hub.connection_count() == 0


async def test_beats_and_closes_during_an_outage_are_skipped_not_fatal(parts: Any) -> None:
    service, hub, presence, log = parts
    connection = await service.open("bob")
    assert log.appended == [("presence.events", "bob")]
    presence.down = True
    await service.heartbeat(connection)  # no exception: the next beat rewrites the entry
    reply = await service.on_client_frame(connection, '{"type":"ping"}')
    assert reply is not None and b'"pong"' in reply.data
    await service.close(connection)
    assert hub.connection_count() == 0


async def test_a_push_gap_ends_the_socket_after_what_is_queued(parts: Any) -> None:
    service, hub, _, _ = parts
    connection = await service.open("bob")
    queued = control_frame("status", status={"message_id": "m1"})
    connection.offer(queued)
    assert hub.missed_frames(spread_s=0) == 1
    connection.offer(control_frame("status", status={"message_id": "m2"}))  # after the gap: not queued
    assert await connection.next_live() is queued
    with pytest.raises(Overflow):
        await connection.next_live()
    assert connection.missed_frames
