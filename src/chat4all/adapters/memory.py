"""In-process adapters for one node: presence and push (the embedded profile)."""

from __future__ import annotations

import asyncio
import random

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from chat4all.domain.frames import Frame
from chat4all.domain.models import Presence


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


class Subscriber(Protocol):
    def offer(self, frame: Frame) -> None:
        """Queues a frame for the socket without waiting."""

    def missed(self) -> None:
        """Frames for this socket may have been lost on the way (the push channel had a gap):
        the socket ends once what is queued has gone out, and the client's reconnect catches
        up from the store."""


class LocalHub:
    """The sockets held by this process, by username; also the Push of a single-node setup."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)

    def add(self, username: str, subscriber: Subscriber) -> None:
        self._subscribers[username].add(subscriber)

    def remove(self, username: str, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(username)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[username]

    def connection_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def deliver(self, frames: Sequence[tuple[str, Frame]]) -> None:
        for username, frame in frames:
            for subscriber in self._subscribers.get(username, ()):
                subscriber.offer(frame)

    def missed_frames(self, *, spread_s: float = 2.0) -> int:
        """Tells every socket here that frames may have been lost; returns how many there are.
        The sockets end at random moments within ``spread_s``, so their clients do not all
        reconnect and catch up in the same instant."""
        subscribers = [s for group in self._subscribers.values() for s in group]
        loop = asyncio.get_running_loop() if spread_s > 0 else None
        for subscriber in subscribers:
            if loop is None:
                subscriber.missed()
            else:
                loop.call_later(random.uniform(0, spread_s), subscriber.missed)
        return len(subscribers)

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        self.deliver(frames)
