"""In-process adapters for one node: presence and push (the embedded profile). The sockets
themselves are the core's (``services/hub.py``); push hands frames to it as a ``FrameSink``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from chat4all.domain.frames import Frame
from chat4all.domain.models import Presence
from chat4all.ports import FrameSink


class MemoryPresenceStore:
    """Who is online: one entry per socket, refreshed by heartbeats, expiring after ``ttl_s``."""

    def __init__(self, *, ttl_s: float) -> None:
        self._ttl = timedelta(seconds=ttl_s)
        self._sockets: dict[str, dict[str, tuple[str, datetime]]] = defaultdict(dict)
        self._last_seen: dict[str, datetime] = {}

    def _live(self, username: str, now: datetime) -> dict[str, tuple[str, datetime]]:
        sockets = self._sockets.get(username, {})
        for connection_id, (_, beat) in list(sockets.items()):
            if now - beat > self._ttl:
                del sockets[connection_id]
        return sockets

    async def connected(self, username: str, connection_id: str, *, node: str, at: datetime) -> bool:
        was_offline = not self._live(username, at)
        self._sockets[username][connection_id] = (node, at)
        self._last_seen[username] = at
        return was_offline

    async def heartbeat(self, username: str, connection_id: str, *, node: str, at: datetime) -> None:
        self._sockets[username][connection_id] = (node, at)
        self._last_seen[username] = at

    async def disconnected(self, username: str, connection_id: str, *, at: datetime) -> bool:
        sockets = self._sockets.get(username, {})
        sockets.pop(connection_id, None)
        self._last_seen[username] = at
        if not self._live(username, at):
            self._sockets.pop(username, None)
            return True
        return False

    async def get(self, username: str, *, now: datetime) -> Presence:
        sockets = self._live(username, now)
        last_seen = max((beat for _, beat in sockets.values()), default=self._last_seen.get(username))
        return Presence(username=username, status="online" if sockets else "offline", last_seen=last_seen)

    async def nodes_for(self, usernames: Sequence[str], *, now: datetime) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for username in usernames:
            sockets = self._live(username, now)
            if sockets:
                found[username] = {node for node, _ in sockets.values()}
        return found


class MemoryPush:
    """The Push of a single process: every frame goes straight to this node's hub."""

    def __init__(self, sink: FrameSink) -> None:
        self._sink = sink

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        self._sink.deliver(frames)
