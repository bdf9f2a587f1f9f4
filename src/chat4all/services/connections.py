"""A client's live connection: presence, catch-up of pending messages, live push, receipts (R2, R7).

On open the connection joins this node's hub *before* reading what is pending, and keeps the
message_ids it sent during catch-up until every frame queued meanwhile has gone out: the live
stream then continues the catch-up with no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import orjson

from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.errors import Chat4AllError, Unavailable
from chat4all.domain.events import PresenceEvent
from chat4all.domain.frames import Frame, control_frame, message_frame
from chat4all.domain.ids import new_id
from chat4all.domain.limits import Limit, gcra
from chat4all.domain.models import INTERNAL, Presence
from chat4all.domain.status import DeliveryStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.ports import EventLog, MessageStore, PresenceStore
from chat4all.services.deliveries import DeliveryService
from chat4all.services.hub import LocalHub

CATCH_UP_PAGE = 500
# receipts of one socket being stored at once; past this the socket's reader waits for one
RECEIPTS_IN_FLIGHT = 16
log = get_logger(__name__)
_WAKE = control_frame("pong")  # a marker queued to wake the writer; never sent


class Overflow(Exception):
    """The client reads too slowly; it reconnects and catches up from the store."""


CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009


class Ended(Exception):
    """The server ends this socket (a newer one of the user's took its place, pings too fast,
    a frame too large): the WebSocket close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class Connection:
    def __init__(self, username: str, *, queue_size: int, v2: bool = False) -> None:
        self.username = username
        self.v2 = v2  # a /v2/ws socket: also receives the frames only v2 defines (domain/frames.py)
        self.connection_id = new_id()
        self._queue: asyncio.Queue[Frame] = asyncio.Queue(maxsize=queue_size)
        self.overflowed = False
        self.missed_frames = False  # ended because the push channel had a gap, not for reading slowly
        self._sent_in_catch_up: set[str] = set()
        self._dedup_left = 0  # queued frames that may repeat the catch-up
        self._receipts: set[asyncio.Task[int]] = set()
        self.ended: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self._ping_tat: float | None = None

    def end(self, code: int, reason: str) -> None:
        """Asks the socket's tasks to close it with this code."""
        if not self.ended.done():
            self.ended.set_result(Ended(code, reason))

    def ping_allowed(self, per_minute: int) -> bool:
        decision, tat = gcra(self._ping_tat, time.monotonic() * 1000, Limit("ping", per_minute, 60.0))
        if decision.allowed:
            self._ping_tat = tat
        return decision.allowed

    def offer(self, frame: Frame) -> None:
        if self.overflowed or (frame.v2_only and not self.v2):
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.overflowed = True  # nothing more is queued; the writer closes the socket

    def missed(self) -> None:
        """Frames may have been lost before reaching this node: end once the queue is drained."""
        if self.overflowed:
            return
        self.overflowed = True
        self.missed_frames = True
        with contextlib.suppress(asyncio.QueueFull):  # wakes a writer waiting on an empty queue
            self._queue.put_nowait(_WAKE)

    def sent_in_catch_up(self, message_id: str) -> None:
        self._sent_in_catch_up.add(message_id)

    def caught_up(self) -> None:
        self._dedup_left = self._queue.qsize()
        if not self._dedup_left:
            self._sent_in_catch_up.clear()

    async def store_receipt(self, record: Coroutine[Any, Any, int], message_ids: list[str]) -> None:
        """Stores an ack or read without holding the socket's reader until it is committed.

        A receipt waits for its group commit; read one at a time, a busy store made the client's
        frames (its pongs too) queue until the server's keepalive gave up and closed the socket.
        Receipts of one socket still reach the store in the order they came; at most
        RECEIPTS_IN_FLIGHT are pending before the reader waits. One that fails comes back as an
        error frame naming its message_ids, for the client to send again.
        """
        task = asyncio.create_task(record)
        self._receipts.add(task)
        task.add_done_callback(functools.partial(self._receipt_done, message_ids))
        if len(self._receipts) >= RECEIPTS_IN_FLIGHT:
            await asyncio.wait(self._receipts, return_when=asyncio.FIRST_COMPLETED)

    def _receipt_done(self, message_ids: list[str], task: asyncio.Task[int]) -> None:
        self._receipts.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if isinstance(exc, Chat4AllError):
            code, message = exc.code, exc.message
        else:
            log.error("a receipt could not be stored", username=self.username, exc_info=exc)
            code, message = "internal", "the receipt could not be stored; it has been logged"
        self.offer(control_frame("error", error={"code": code, "message": message, "details": {"message_ids": message_ids}}))

    async def next_live(self) -> Frame:
        while True:
            if self.overflowed and self._queue.empty():
                raise Overflow
            frame = await self._queue.get()
            if frame is _WAKE:
                continue
            if self._dedup_left:
                self._dedup_left -= 1
                repeat = frame.message_id is not None and frame.message_id in self._sent_in_catch_up
                if not self._dedup_left:
                    self._sent_in_catch_up.clear()
                if repeat:
                    continue
            return frame


class ConnectionService:
    def __init__(
        self,
        *,
        hub: LocalHub,
        presence: PresenceStore,
        messages: MessageStore,
        deliveries: DeliveryService,
        log: EventLog,
        node_id: str,
        queue_size: int,
        max_sockets_per_user: int = 20,
        pings_per_minute: int = 60,
        clock: Clock = system_clock,
        on_presence: Callable[[str, str], Awaitable[None]] | None = None,
    ) -> None:
        self._clock = clock
        # told of every online/offline transition of a user (services/live.py pushes it)
        self.on_presence = on_presence
        self._max_sockets = max_sockets_per_user
        self._pings_per_minute = pings_per_minute
        self._open: dict[str, list[Connection]] = {}  # the user's sockets on this node, oldest first
        self._hub = hub
        self._presence = presence
        self._messages = messages
        self._deliveries = deliveries
        self._log = log
        self._node = node_id
        self._queue_size = queue_size

    async def open(self, username: str, *, v2: bool = False) -> Connection:
        """Raises Unavailable (and holds nothing) if presence cannot record the socket: a socket
        the routers cannot find would get no live traffic."""
        connection = Connection(username, queue_size=self._queue_size, v2=v2)
        mine = self._open.setdefault(username, [])
        mine.append(connection)
        while len(mine) > self._max_sockets:  # the oldest makes room (a client that leaks sockets)
            mine.pop(0).end(CLOSE_POLICY, "too many sockets for this user; the oldest is closed")
        self._hub.add(username, connection)
        try:
            online = await self._presence.connected(username, connection.connection_id, node=self._node, at=self._clock())
        except Exception:
            self._hub.remove(username, connection)
            raise
        metrics.WEBSOCKET_CONNECTIONS.inc()
        if online:
            await self._announce_quietly(username, "online")
        return connection

    async def close(self, connection: Connection) -> None:
        mine = self._open.get(connection.username, [])
        if connection in mine:
            mine.remove(connection)
        if not mine:
            self._open.pop(connection.username, None)
        self._hub.remove(connection.username, connection)
        metrics.WEBSOCKET_CONNECTIONS.dec()
        try:
            offline = await self._presence.disconnected(connection.username, connection.connection_id, at=self._clock())
        except Unavailable:  # the entry lapses by itself after the presence TTL
            log.info("presence not told of a closed socket: presence is unavailable", username=connection.username)
            return
        if offline:
            await self._announce_quietly(connection.username, "offline")

    async def catch_up(self, connection: Connection) -> AsyncIterator[Frame]:
        """Every message still pending for the user, in sequence order per conversation."""
        after: tuple[str, int] | None = None
        while True:
            page = await self._messages.pending_for(
                connection.username, channel=INTERNAL, after=after, limit=CATCH_UP_PAGE
            )
            for message in page:
                connection.sent_in_catch_up(message.message_id)
                yield message_frame(message)
            if len(page) < CATCH_UP_PAGE:
                break
            after = (page[-1].conversation_id, page[-1].sequence_number)
        connection.caught_up()

    async def heartbeat(self, connection: Connection) -> None:
        """A beat that presence cannot take is skipped, not fatal to the socket: the next one
        rewrites the entry (also after a Redis failover lost it)."""
        try:
            await self._presence.heartbeat(connection.username, connection.connection_id, node=self._node, at=self._clock())
        except Unavailable:
            log.info("heartbeat not recorded: presence is unavailable", username=connection.username)

    async def on_client_frame(self, connection: Connection, raw: str | bytes) -> Frame | None:
        """Handles one frame from the client; returns the reply to send, if any."""
        try:
            frame: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error("validation_error", "frames are JSON objects")
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind == "ping":
            if not connection.ping_allowed(self._pings_per_minute):
                connection.end(CLOSE_POLICY, "pings too fast")
                return None
            await self.heartbeat(connection)
            return control_frame("pong")
        if kind in ("ack", "read"):
            ids = frame.get("message_ids")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
                return _error("validation_error", "message_ids must be a list of at most 1000 message ids")
            status = DeliveryStatus.DELIVERED if kind == "ack" else DeliveryStatus.READ
            record = self._deliveries.record(username=connection.username, channel=INTERNAL, message_ids=ids, status=status)
            await connection.store_receipt(record, ids)
            return None
        return _error("validation_error", "type must be one of: ack, read, ping")

    async def presence(self, username: str) -> Presence:
        return await self._presence.get(username, now=self._clock())

    async def _announce_quietly(self, username: str, status: str) -> None:
        """Presence events are informational (webhooks, metrics): a log that cannot take one now
        must not fail the socket."""
        try:
            await self._announce(username, status)
        except Unavailable:
            log.info("presence event not appended: the event log is unavailable", username=username, status=status)
        if self.on_presence is not None:  # must not raise nor wait long: it only starts the push
            await self.on_presence(username, status)

    async def _announce(self, username: str, status: str) -> None:
        event = PresenceEvent(username=username, status=status, at=self._clock(), node=self._node)
        await self._log.append(PresenceEvent.topic, event.key(), event.encode())


def _error(code: str, message: str) -> Frame:
    return control_frame("error", error={"code": code, "message": message})
