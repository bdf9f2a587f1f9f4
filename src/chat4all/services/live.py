"""The ephemeral side of v2's sockets: typing indicators and presence push (never stored).

Typing: a member says it started or stopped typing in a conversation (a ``typing`` frame on
``/v2/ws`` or ``POST /v2/conversations/{id}/typing``); the other members' v2 sockets receive
``{"type":"typing","conversation_id","username","state","expires_at"}``. A ``start`` lapses
``TYPING_TTL_S`` after it was sent unless repeated (clients drop it at ``expires_at``); at most
one ``start`` per user and conversation is relayed every ``TYPING_MIN_INTERVAL_S`` (more are
dropped), and a ``stop`` is relayed only after a relayed ``start``. A non-member gets NotFound.
The limit is kept per API node (a user typing on two devices held by two nodes may be relayed
twice as often), which bounds the traffic without a shared-store round trip per keystroke.

Presence: when a user comes online (first socket) or goes offline (last socket closed or
lapsed), everyone who shares a conversation with them receives
``{"type":"presence","username","status","last_seen"}`` on their v2 sockets. The transitions
come from the presence store, so they are cluster-wide; the frames cross API nodes through the
push channel like every frame. At most one push per user every ``PRESENCE_MIN_INTERVAL_S`` per
node: the state that is current when the interval ends is pushed then (a flapping client's
contacts see where it ended, not every flap).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, Literal, Protocol

import orjson

from chat4all.domain.errors import Chat4AllError, Unavailable
from chat4all.domain.frames import Frame, control_frame
from chat4all.domain.ids import MAX_INT64, utcnow
from chat4all.observability.logging import get_logger
from chat4all.ports import Push
from chat4all.services.connections import Connection, ConnectionService
from chat4all.services.conversations import ConversationService

log = get_logger(__name__)

TYPING_TTL_S = 6.0
TYPING_MIN_INTERVAL_S = 2.0
PRESENCE_MIN_INTERVAL_S = 1.0  # per user and API node
# conversations looked at to find whom a user's presence concerns (the most recent first)
PRESENCE_MAX_CONVERSATIONS = 1000
_PAGE = 200
_MAX_TRACKED = 100_000  # live (user, conversation) starts kept at most; past it the oldest are forgotten

TypingState = Literal["start", "stop"]


class LiveService:
    def __init__(
        self,
        *,
        conversations: ConversationService,
        push: Push,
        typing_ttl_s: float = TYPING_TTL_S,
        typing_min_interval_s: float = TYPING_MIN_INTERVAL_S,
        presence_min_interval_s: float = PRESENCE_MIN_INTERVAL_S,
        read_cursor: ReadCursor | None = None,
    ) -> None:
        self._conversations = conversations
        self._read_cursor = read_cursor  # API v2's read cursor (InboxService.read), for the frame
        self._push = push
        self._ttl = typing_ttl_s
        self._interval = typing_min_interval_s
        self._last_start: dict[tuple[str, str], float] = {}  # monotonic time of the last relayed start
        self._presence_interval = presence_min_interval_s
        self._latest_presence: dict[str, str] = {}  # the state to push, per user with a push running
        self._presence_tasks: dict[str, asyncio.Task[None]] = {}

    async def typing(self, username: str, conversation_id: str, state: TypingState) -> bool:
        """Relays the state to the other members; False if it was dropped (too soon, or a stop
        with no start before it). NotFound if ``username`` is not a member."""
        key = (username, conversation_id)
        now = time.monotonic()
        last = self._last_start.get(key)
        if state == "start" and last is not None and now - last < self._interval:
            return False
        if state == "stop" and last is None:
            return False
        conversation = await self._conversations.get(conversation_id, viewer=username)
        if state == "start":
            self._last_start.pop(key, None)
            self._last_start[key] = now  # the dict stays ordered by the time of the last start
            for old, at in list(self._last_start.items()):  # what has lapsed, oldest first
                if now - at < self._ttl and len(self._last_start) <= _MAX_TRACKED:
                    break
                del self._last_start[old]
        else:
            self._last_start.pop(key, None)
        expires_at = (utcnow() + timedelta(seconds=self._ttl)).isoformat() if state == "start" else None
        frame = Frame(
            None,
            orjson.dumps(
                {
                    "type": "typing",
                    "conversation_id": conversation.conversation_id,
                    "username": username,
                    "state": state,
                    "expires_at": expires_at,
                }
            ),
            True,
        )
        others = [m for m in conversation.members if m != username]
        try:
            await self._push.send([(m, frame) for m in others])
        except Unavailable:
            log.info("typing not relayed: push is unavailable", conversation_id=conversation_id)
        return True

    async def presence_changed(self, username: str, status: str) -> None:
        """Pushes the transition in the background (the socket that caused it does not wait),
        at most one push per user every ``presence_min_interval_s``: a client that reconnects in
        a loop makes its contacts see its latest state, not every flap."""
        if status == "offline":
            await self._stop_typing(username)
        self._latest_presence[username] = status
        if username in self._presence_tasks:
            return  # the user's running push sends the latest state when its interval is over
        task = asyncio.create_task(self._presence_loop(username))
        self._presence_tasks[username] = task

    async def _stop_typing(self, username: str) -> None:
        """A user gone offline stops typing everywhere a start of theirs is still live."""
        now = time.monotonic()
        live = [c for (u, c), at in list(self._last_start.items()) if u == username and now - at < self._ttl]
        # (the dict holds only starts of the last TYPING_TTL_S: lapsed ones are dropped as it grows)
        for conversation_id in live:
            try:
                await self.typing(username, conversation_id, "stop")
            except Chat4AllError:  # no longer a member: nothing to stop
                self._last_start.pop((username, conversation_id), None)

    async def _presence_loop(self, username: str) -> None:
        sent: str | None = None
        try:
            while (status := self._latest_presence[username]) != sent:
                await self._push_presence(username, status)
                sent = status
                await asyncio.sleep(self._presence_interval)
        finally:
            self._presence_tasks.pop(username, None)
            if self._latest_presence.get(username) == sent:
                self._latest_presence.pop(username, None)

    async def _push_presence(self, username: str, status: str) -> None:
        try:
            contacts = await self.contacts(username)
            if not contacts:
                return
            frame = Frame(
                None,
                orjson.dumps({"type": "presence", "username": username, "status": status, "last_seen": utcnow().isoformat()}),
                True,
            )
            await self._push.send([(c, frame) for c in sorted(contacts)])
        except Exception as exc:  # noqa: BLE001 — informational: a store or push failure is logged, never raised
            log.info("presence not pushed", username=username, status=status, error=f"{type(exc).__name__}: {exc}")

    async def contacts(self, username: str) -> set[str]:
        """Everyone who shares a conversation with ``username`` (not the user)."""
        found: set[str] = set()
        cursor: str | None = None
        seen = 0
        while seen < PRESENCE_MAX_CONVERSATIONS:
            page = await self._conversations.list(username, limit=_PAGE, cursor=cursor)
            for conversation in page.items:
                found.update(conversation.members)
            seen += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
        found.discard(username)
        return found

    async def on_client_frame(self, connection: Connection, raw: str | bytes, connections: ConnectionService) -> Frame | None:
        """A frame from a v2 socket: ``typing`` here, v1's frames as v1 handles them."""
        try:
            frame: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error("validation_error", "frames are JSON objects")
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind in _V1_FRAMES:
            return await connections.on_client_frame(connection, raw)
        if kind == "read_cursor":
            return await self._on_read_cursor(connection.username, frame)
        if kind != "typing":
            return _error("validation_error", f"type must be one of: {', '.join((*_V1_FRAMES, 'typing', 'read_cursor'))}")
        conversation_id, state = frame.get("conversation_id"), frame.get("state")
        if not isinstance(conversation_id, str) or state not in ("start", "stop"):
            return _error("validation_error", 'a typing frame has a conversation_id and a state, "start" or "stop"')
        try:
            await self.typing(connection.username, conversation_id, state)
        except Chat4AllError as exc:
            return control_frame(
                "error", error={"code": exc.code, "message": exc.message, "details": {"conversation_id": conversation_id}}
            )
        return None


    async def _on_read_cursor(self, username: str, frame: dict[str, Any]) -> Frame | None:
        """``{"type":"read_cursor","conversation_id","up_to_sequence"}``: as ``POST …/read``."""
        conversation_id, up_to = frame.get("conversation_id"), frame.get("up_to_sequence")
        if (
            not isinstance(conversation_id, str)
            or not isinstance(up_to, int)
            or isinstance(up_to, bool)
            or not 0 <= up_to <= MAX_INT64
        ):
            return _error("validation_error", "a read_cursor frame has a conversation_id and an up_to_sequence (0 or more)")
        if self._read_cursor is None:
            return _error("unavailable", "read cursors are not served here")
        try:
            await self._read_cursor(conversation_id, viewer=username, up_to=up_to)
        except Chat4AllError as exc:
            return control_frame(
                "error", error={"code": exc.code, "message": exc.message, "details": {"conversation_id": conversation_id}}
            )
        return None


class ReadCursor(Protocol):
    async def __call__(self, conversation_id: str, *, viewer: str, up_to: int) -> Any: ...


_V1_FRAMES = ("ack", "read", "ping")


def _error(code: str, message: str) -> Frame:
    return control_frame("error", error={"code": code, "message": message})
