"""WebSocket /v1/ws (SPEC §2): pending messages first, then live traffic; ack, read, ping.
``/v2/ws`` is the same socket with v2's frames added (docs/api-v2.md, services/live.py).

Authentication, whichever the client can do (browsers cannot set headers on a WebSocket):
the ``Authorization: Bearer`` header; the subprotocols ``["chat4all.v1", "bearer.<token>"]``
(answered with ``chat4all.v1``); a first frame ``{"type":"auth","token":...}`` within
``ws_auth_timeout_s``; or ``?token=`` (kept for old clients; access logs redact it). A browser's
``Origin`` must be the server's own or one of ``cors_origins`` (cross-site WebSocket hijacking),
else the handshake is refused with 403.

Three tasks per socket: the writer sends the catch-up and then whatever the hub queues for this
connection; the reader handles client frames (every one counts as a heartbeat; a socket silent
for longer than the heartbeat timeout is closed and the user's presence lapses); the guard closes
the socket (4401) when its access token expires or its session is revoked, checked as often as
REST requests check it. A client keeps a socket past its token's expiry by sending a fresh
token in an ``auth`` frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect

from chat4all.api.bearer import bearer_token
from chat4all.config import Settings
from chat4all.domain.errors import Chat4AllError, Unauthenticated, Unavailable
from chat4all.domain.frames import Frame, control_frame
from chat4all.observability.logging import get_logger
from chat4all.services.auth import AuthService, Session
from chat4all.services.bundle import Services
from chat4all.services.connections import CLOSE_TOO_BIG, Connection, ConnectionService, Overflow
from chat4all.services.live import LiveService

router = APIRouter()
log = get_logger(__name__)

SUBPROTOCOL = "chat4all.v1"
SUBPROTOCOL_V2 = "chat4all.v2"  # /v2/ws answers it too
BEARER_SUBPROTOCOL = "bearer."
CLOSE_UNAUTHENTICATED = 4401
CLOSE_TRY_AGAIN = 1013
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008


def _handshake_token(websocket: WebSocket) -> str | None:
    token = bearer_token(websocket.headers.get("authorization"))
    if token is not None:
        return token
    for offered in websocket.scope.get("subprotocols") or ():
        if offered.startswith(BEARER_SUBPROTOCOL):
            return offered[len(BEARER_SUBPROTOCOL) :]
    return websocket.query_params.get("token")


def origin_allowed(origin: str | None, *, hosts: list[str], allowed: list[str]) -> bool:
    """No Origin: not a browser, nothing to protect against. Else the server's own origin (the
    host the request was sent to, ``Host`` or a proxy's ``X-Forwarded-Host``, which a browser
    cannot set; whatever the scheme a proxy terminated) or a configured one."""
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in allowed:
        return True
    scheme, sep, netloc = origin.partition("://")
    own = {h.strip().lower() for header in hosts for h in header.split(",") if h.strip()}
    return bool(sep) and scheme in ("http", "https") and netloc in own


def _own_hosts(websocket: WebSocket, public_base_url: str | None) -> list[str]:
    hosts = [websocket.headers.get("host", ""), websocket.headers.get("x-forwarded-host", "")]
    if public_base_url:
        hosts.append(public_base_url.partition("://")[2].split("/", 1)[0])
    return hosts


class _Auth:
    """The socket's current session; a fresh token in an ``auth`` frame replaces it."""

    def __init__(self, session: Session) -> None:
        self.session = session


@router.websocket("/v1/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    await _serve(websocket, v2=False)


@router.websocket("/v2/ws")
async def websocket_endpoint_v2(websocket: WebSocket) -> None:
    """v1's socket (same authentication, catch-up and frames) plus v2's frames: the user's own
    messages from every device, other devices' receipts, typing and presence (docs/api-v2.md)."""
    await _serve(websocket, v2=True)


async def _serve(websocket: WebSocket, *, v2: bool) -> None:
    settings: Settings = websocket.app.state.settings
    services: Services = websocket.app.state.services
    hosts = _own_hosts(websocket, settings.public_base_url)
    if not origin_allowed(websocket.headers.get("origin"), hosts=hosts, allowed=settings.cors_origin_list):
        await websocket.close(code=CLOSE_POLICY)  # before accept: the handshake is answered 403
        return
    offered = websocket.scope.get("subprotocols") or ()
    answered = next((p for p in (SUBPROTOCOL_V2, SUBPROTOCOL) if p in offered and (v2 or p == SUBPROTOCOL)), None)
    await websocket.accept(subprotocol=answered)
    try:
        token = _handshake_token(websocket) or await _first_frame_token(websocket, settings.ws_auth_timeout_s)
        session = await services.auth.session(token)
    except Unauthenticated as exc:
        frame = control_frame("error", error={"code": exc.code, "message": exc.message})
        with contextlib.suppress(Exception):
            await websocket.send_text(frame.data.decode())
            await websocket.close(code=CLOSE_UNAUTHENTICATED, reason=exc.message[:120])
        return
    except WebSocketDisconnect:
        return

    auth = _Auth(session)
    connections = services.connections
    try:
        connection = await connections.open(session.username, v2=v2)
    except Unavailable:
        await websocket.close(code=CLOSE_TRY_AGAIN, reason="presence is unavailable; try again")
        return
    tasks = [
        asyncio.create_task(_write(websocket, connections, connection)),
        asyncio.create_task(
            _read(
                websocket, connections, connection, settings.ws_heartbeat_timeout_s, services.auth, auth,
                settings.ws_max_frame_bytes, services.live if v2 else None,
            )
        ),
        asyncio.create_task(_guard(websocket, services.auth, auth)),
        asyncio.create_task(_ended(websocket, connection)),
    ]
    try:
        _done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    finally:
        await connections.close(connection)
    with contextlib.suppress(Exception):
        await websocket.close()


async def _first_frame_token(websocket: WebSocket, timeout_s: float) -> str:
    try:
        message = await asyncio.wait_for(websocket.receive(), timeout_s)
    except TimeoutError:
        raise Unauthenticated(f"send {{\"type\":\"auth\",\"token\":...}} within {timeout_s:g} s") from None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    token = _auth_frame_token(message.get("text") or message.get("bytes") or b"")
    if token is None:
        raise Unauthenticated('the first frame must be {"type":"auth","token":"<access token>"}')
    return token


def _auth_frame_token(raw: str | bytes) -> str | None:
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if isinstance(frame, dict) and frame.get("type") == "auth" and isinstance(frame.get("token"), str):
        return frame["token"]
    return None


async def _write(websocket: WebSocket, connections: ConnectionService, connection: Connection) -> None:
    try:
        async for frame in connections.catch_up(connection):
            await websocket.send_text(frame.data.decode())
        while True:
            frame = await connection.next_live()
            await websocket.send_text(frame.data.decode())
    except Overflow:
        reason = "push interrupted; reconnect to catch up" if connection.missed_frames else "too slow; reconnect to catch up"
        await websocket.close(code=CLOSE_TRY_AGAIN, reason=reason)
    except (WebSocketDisconnect, RuntimeError):
        return


async def _ended(websocket: WebSocket, connection: Connection) -> None:
    """Closes the socket when the server ends it (abuse limits: services/connections.Ended)."""
    ended = await connection.ended
    with contextlib.suppress(Exception):
        await websocket.close(code=ended.code, reason=ended.reason)


async def _read(
    websocket: WebSocket,
    connections: ConnectionService,
    connection: Connection,
    timeout_s: float,
    auth_service: AuthService,
    auth: _Auth,
    max_bytes: int,
    live: LiveService | None = None,
) -> None:
    while True:
        try:
            async with asyncio.timeout(timeout_s):  # no task per frame, as wait_for would make
                message = await websocket.receive()
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
        if ('"auth"' in raw if isinstance(raw, str) else b'"auth"' in raw) and (token := _auth_frame_token(raw)):
            connection.offer(await _reauthenticate(auth_service, auth, token))
            await connections.heartbeat(connection)
            continue
        if live is not None:
            reply = await live.on_client_frame(connection, raw, connections)
        else:
            reply = await connections.on_client_frame(connection, raw)
        if reply is not None:
            connection.offer(reply)


async def _reauthenticate(auth_service: AuthService, auth: _Auth, token: str) -> Frame:
    try:
        session = await auth_service.session(token)
    except Chat4AllError as exc:
        return control_frame("error", error={"code": exc.code, "message": exc.message})
    if session.username != auth.session.username:
        return control_frame("error", error={"code": "forbidden", "message": "that token is another user's"})
    auth.session = session
    return control_frame("authenticated", expires_at=int(session.expires_at))


async def _guard(websocket: WebSocket, auth_service: AuthService, auth: _Auth) -> None:
    """Closes the socket when its token expires or its session is revoked."""
    while True:
        session = auth.session
        left = session.expires_at - time.time()
        if left <= 0:
            await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="the access token has expired")
            return
        await asyncio.sleep(min(left, auth_service.revocation_check_s))
        if auth.session is not session or session.family_id is None:
            continue
        try:
            revoked = await auth_service.is_revoked(session.family_id)
        except Chat4AllError as exc:  # the store is down: keep the socket, look again next time
            log.warning("session check failed", error=exc.message)
            continue
        if revoked:
            await websocket.close(code=CLOSE_UNAUTHENTICATED, reason="the session has ended")
            return
