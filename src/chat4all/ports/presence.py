"""Who is online where, and pushing frames to the node that holds a user's sockets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from chat4all.domain.frames import Frame
from chat4all.domain.models import Presence


class PresenceStore(Protocol):
    async def connected(self, username: str, connection_id: str, *, node: str, at: datetime) -> bool:
        """Records a socket; True if the user was offline before."""

    async def heartbeat(self, username: str, connection_id: str, *, node: str, at: datetime) -> None:
        """Refreshes a socket's entry, writing it again if it was lost (e.g. a store restart)."""

    async def disconnected(self, username: str, connection_id: str, *, at: datetime) -> bool:
        """Forgets a socket; True if it was the user's last one."""

    async def get(self, username: str, *, now: datetime) -> Presence: ...

    async def nodes_for(self, usernames: Sequence[str], *, now: datetime) -> dict[str, set[str]]:
        """For each online user, the nodes holding their sockets."""


class Push(Protocol):
    """Hands ready-encoded frames to whichever node holds the recipients' sockets."""

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        """Each item is (username, frame); users with no socket anywhere are skipped."""


class FrameSink(Protocol):
    """What a push adapter delivers into: the sockets of this node (``services.hub.LocalHub``).
    Push adapters call it; they never hold sockets themselves."""

    def deliver(self, frames: Sequence[tuple[str, Frame]]) -> None:
        """Queues each (username, frame) on that user's sockets here, without waiting."""

    def missed_frames(self) -> int:
        """Frames for this node may have been lost (the push channel had a gap): every socket
        here ends and its client catches up from the store; returns how many there were."""
