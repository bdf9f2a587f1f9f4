"""The node's socket hub: the connections this process holds, by username (R2, R7).

The hub is core, not a backend: ``ConnectionService`` adds and removes connections, and every
push adapter (``adapters/memory.py`` in one process, ``adapters/redis.py`` across nodes) hands
the frames addressed to this node to the hub through ``ports.FrameSink``, which it implements.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from chat4all.domain.frames import Frame


class Subscriber(Protocol):
    """One socket's queue (``services.connections.Connection``)."""

    def offer(self, frame: Frame) -> None:
        """Queues a frame for the socket without waiting."""

    def missed(self) -> None:
        """Frames for this socket may have been lost on the way (the push channel had a gap):
        the socket ends once what is queued has gone out, and the client's reconnect catches
        up from the store."""


class LocalHub:
    """The sockets held by this process, by username; a ``ports.FrameSink``."""

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
        """Queues each (username, frame) on that user's sockets here; users with none are skipped."""
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
