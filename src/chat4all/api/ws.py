"""WebSocket /v1/ws (SPEC §2): pending messages first, then live traffic; ack, read, ping.

Two tasks per socket: the writer sends the catch-up and then whatever the hub queues for this
connection; the reader handles client frames. Every client frame counts as a heartbeat; a
socket silent for longer than the heartbeat timeout is closed and the user's presence lapses.
"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from chat4all.domain.errors import Unauthenticated
from chat4all.domain.frames import control_frame
from chat4all.runtime import Runtime
from chat4all.services.connections import CLOSE_TOO_BIG, Connection, ConnectionService, Overflow

router = APIRouter()

CLOSE_UNAUTHENTICATED = 4401
CLOSE_TRY_AGAIN = 1013
CLOSE_GOING_AWAY = 1001


def _token(websocket: WebSocket) -> str:
    header = websocket.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return websocket.query_params.get("token", "")


@router.websocket("/v1/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    services = runtime.services
    await websocket.accept()
    try:
        username = services.auth.authenticate(_token(websocket))
    except Unauthenticated as exc:
        frame = control_frame("error", error={"code": exc.code, "message": exc.message})
        await websocket.send_text(frame.data.decode())
        await websocket.close(code=CLOSE_UNAUTHENTICATED)
        return

    connections = services.connections
    connection = await connections.open(username)
    tasks = [
        asyncio.create_task(_write(websocket, connections, connection)),
        asyncio.create_task(
            _read(websocket, connections, connection, runtime.settings.ws_heartbeat_timeout_s, runtime.settings.ws_max_frame_bytes)
        ),
        asyncio.create_task(_ended(websocket, connection)),
    ]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    finally:
        await connections.close(connection)
    with contextlib.suppress(Exception):
        await websocket.close()


async def _write(websocket: WebSocket, connections: ConnectionService, connection: Connection) -> None:
    try:
        async for frame in connections.catch_up(connection):
            await websocket.send_text(frame.data.decode())
        while True:
            frame = await connection.next_live()
            await websocket.send_text(frame.data.decode())
    except Overflow:
        await websocket.close(code=CLOSE_TRY_AGAIN, reason="too slow; reconnect to catch up")
    except (WebSocketDisconnect, RuntimeError):
        return


async def _ended(websocket: WebSocket, connection: Connection) -> None:
    """Closes the socket when the server ends it (abuse limits: services/connections.Ended)."""
    ended = await connection.ended
    with contextlib.suppress(Exception):
        await websocket.close(code=ended.code, reason=ended.reason)


async def _read(
    websocket: WebSocket, connections: ConnectionService, connection: Connection, timeout_s: float, max_bytes: int
) -> None:
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout_s)
        except TimeoutError:
            await websocket.close(code=CLOSE_GOING_AWAY, reason="no heartbeat")
            return
        if message["type"] == "websocket.disconnect":
            return
        raw = message.get("text") if message.get("text") is not None else message.get("bytes")
        if raw is None:
            continue
        if len(raw) > max_bytes:
            connection.end(CLOSE_TOO_BIG, f"frames are at most {max_bytes} bytes")
            return
        reply = await connections.on_client_frame(connection, raw)
        if reply is not None:
            connection.offer(reply)
