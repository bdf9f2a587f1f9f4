"""Issue 14, secrets and sessions: logout and password change end sessions, and revocation bites
(access tokens within seconds on every node, open sockets closed, the fast path's token cache
included); a retried refresh within the grace window; sockets authenticated without a URL token,
closed when their token expires, refused to foreign origins; CORS by configuration."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import jwt
import orjson
import pytest
import websockets
from pydantic import ValidationError

from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.metadata import SqlMetadataStore
from chat4all.client import ApiError, Chat4AllClient, Socket
from chat4all.config import Settings
from tests.api.test_contract_errors import assert_error
from tests.conftest import PASSWORD, RunningServer, start_server, wait_until


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_revocation_check_s": 0.2, "ws_auth_timeout_s": 1.0})


@asynccontextmanager
async def running(settings: Settings, **changes: object) -> AsyncIterator[RunningServer]:
    server, uv, task = await start_server(settings.model_copy(update=changes))
    try:
        yield server
    finally:
        uv.should_exit = True
        await task


def ws_url(server: RunningServer, query: str = "") -> str:
    return server.base_url.replace("http://", "ws://") + "/v1/ws" + query


async def send_text(client: Chat4AllClient, conversation_id: str, text: str = "hi") -> dict:
    return await client.send_text(conversation_id, text)


async def rejected(call) -> ApiError | None:  # type: ignore[no-untyped-def]
    try:
        await call
    except ApiError as exc:
        return exc
    return None


async def closed_with(socket: Socket, timeout: float = 10.0) -> websockets.frames.Close:
    """Reads until the server closes the socket; the close frame it sent."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await socket.receive(timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd


# logout and revocation -------------------------------------------------------------------------


async def test_logout_ends_the_session_its_tokens_and_its_sockets(pair) -> None:
    alice, bob, conversation_id = pair
    await send_text(alice, conversation_id)  # the send fast path has now verified and cached this token
    other_device = Chat4AllClient(alice.base_url)
    await other_device.login("alice", PASSWORD)
    spent_access, spent_refresh = alice.access_token, alice.refresh_token
    async with alice.websocket() as socket:
        await alice.logout()
        close = await closed_with(socket)
        assert close.code == 4401 and "ended" in close.reason
    for call in (alice.me(), send_text(alice, conversation_id), alice.refresh(spent_refresh)):
        error = await rejected(call)
        assert error is not None and (error.status, error.code) == (401, "unauthenticated")
    assert alice.access_token == spent_access
    # another login of the same user is another session, untouched
    assert (await other_device.me())["username"] == "alice"
    await send_text(other_device, conversation_id)
    await other_device.close()


async def test_logout_with_only_the_refresh_token_and_without_anything(pair, server: RunningServer) -> None:
    alice, _, _ = pair
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert_error(await http.post("/v1/auth/logout"), 401, "unauthenticated")
        response = await http.post("/v1/auth/logout", json={"refresh_token": alice.refresh_token})
        assert response.status_code == 204, response.text
    assert (await rejected(alice.me())).status == 401  # type: ignore[union-attr]


async def test_a_session_revoked_on_another_node_stops_working_here_within_seconds(
    pair, server: RunningServer
) -> None:
    """Another node's logout is a write to the shared metadata store, which this node has not
    seen: its cache of verified tokens (REST, the send fast path) and its sockets must notice."""
    alice, _, conversation_id = pair
    await send_text(alice, conversation_id)
    assert (await alice.me())["username"] == "alice"
    family = jwt.decode(alice.access_token, options={"verify_signature": False})["fam"]
    other_node = Database(server.runtime.settings.resolved_database_url)
    await other_node.start()
    try:
        async with alice.websocket() as socket:
            await SqlMetadataStore(other_node).revoke_refresh_family(family)

            async def refused() -> bool:
                return (await rejected(send_text(alice, conversation_id))) is not None

            await wait_until(refused, timeout=5, what="the revoked token to be refused on the send fast path")
            assert (await rejected(alice.me())).status == 401  # type: ignore[union-attr]
            assert (await closed_with(socket, timeout=5)).code == 4401
    finally:
        await other_node.close()


# refresh retries -------------------------------------------------------------------------------


async def test_concurrent_refresh_of_one_token_gets_one_pair_and_keeps_the_session(make_user) -> None:
    alice = await make_user("alice")
    token = alice.refresh_token
    answers = await asyncio.gather(*(alice.refresh(token) for _ in range(4)))
    pairs = {(a["access_token"], a["refresh_token"]) for a in answers}
    assert len(pairs) == 1
    (access, refresh), = pairs
    assert (await Chat4AllClient(alice.base_url, token=access).me())["username"] == "alice"
    successor = await alice.refresh(refresh)  # the successor is live: the family was not revoked
    assert successor["refresh_token"] != refresh


async def test_reuse_after_the_grace_window_still_revokes(settings: Settings) -> None:
    async with running(settings, auth_refresh_reuse_grace_s=0.3) as server:
        async with Chat4AllClient(server.base_url) as alice:
            await alice.register("alice", PASSWORD)
            await alice.login("alice", PASSWORD)
            spent = alice.refresh_token
            fresh = await alice.refresh()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 0.3
            await wait_until(lambda: _past(loop, deadline), what="the grace window to pass")
            assert (await rejected(alice.refresh(spent))).status == 401  # type: ignore[union-attr]
            # the whole family went: the live successor and its access token too
            assert (await rejected(alice.refresh(fresh["refresh_token"]))).status == 401  # type: ignore[union-attr]
            assert (await rejected(alice.me())).status == 401  # type: ignore[union-attr]


async def _past(loop: asyncio.AbstractEventLoop, deadline: float) -> bool:
    return loop.time() > deadline


# password --------------------------------------------------------------------------------------


async def test_changing_the_password_ends_every_session_of_the_user(pair, server: RunningServer) -> None:
    alice, bob, conversation_id = pair
    laptop = Chat4AllClient(server.base_url)
    await laptop.login("alice", PASSWORD)
    old_tokens = [(c.access_token, c.refresh_token) for c in (alice, laptop)]

    wrong = await rejected(alice.change_password("not-the-password", "a-new-password-1"))
    assert wrong is not None and (wrong.status, wrong.code) == (403, "wrong_password")
    short = await rejected(alice.change_password(PASSWORD, "short"))
    assert short is not None and short.status == 422

    async with laptop.websocket() as socket:
        await alice.change_password(PASSWORD, "a-new-password-1")
        assert (await closed_with(socket)).code == 4401
    assert (await alice.me())["username"] == "alice"  # the answer is a new session for the caller
    for access, refresh in old_tokens:
        assert (await rejected(Chat4AllClient(server.base_url, token=access).me())).status == 401  # type: ignore[union-attr]
        assert (await rejected(alice.refresh(refresh))).status == 401  # type: ignore[union-attr]
    assert (await rejected(laptop.login("alice", PASSWORD))).status == 401  # type: ignore[union-attr]
    await laptop.login("alice", "a-new-password-1")
    await laptop.close()
    assert (await bob.me())["username"] == "bob"  # nobody else's sessions


# sockets ---------------------------------------------------------------------------------------


async def test_a_socket_authenticates_by_subprotocol_or_first_frame_and_gets_messages(pair) -> None:
    alice, bob, conversation_id = pair
    for auth in ("subprotocol", "frame"):
        async with bob.websocket(auth=auth) as socket:
            assert socket._ws.subprotocol == "chat4all.v1"
            sent = await send_text(alice, conversation_id, auth)
            received = []
            while sent["message_id"] not in received:  # (the first round's message may come again: acks are async)
                frame = await socket.receive()
                assert frame["type"] == "message"
                received.append(frame["message"]["message_id"])
            await socket.ack(received)


async def test_the_url_token_still_works(pair, server: RunningServer) -> None:
    alice, bob, conversation_id = pair
    async with websockets.connect(ws_url(server, f"?token={bob.access_token}")) as ws:
        sent = await send_text(alice, conversation_id)
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 10))["message"]["message_id"] == sent["message_id"]


@pytest.mark.parametrize("first", [None, '{"type":"ping"}', '{"type":"auth","token":"garbage"}', "not json"])
async def test_a_socket_without_a_valid_first_frame_is_closed_4401(server: RunningServer, first: str | None) -> None:
    async with websockets.connect(ws_url(server), subprotocols=["chat4all.v1"]) as ws:
        if first is not None:
            await ws.send(first)
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 10))  # within ws_auth_timeout_s when silent
        assert frame["type"] == "error" and frame["error"]["code"] == "unauthenticated"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_a_socket_is_closed_when_its_token_expires_unless_it_sends_a_fresh_one(settings: Settings) -> None:
    async with running(settings, access_token_ttl_s=3) as server:
        async with Chat4AllClient(server.base_url) as bob:
            await bob.register("bob", PASSWORD)
            await bob.login("bob", PASSWORD)
            async with bob.websocket() as socket:
                close = await closed_with(socket, timeout=10)
                assert close.code == 4401 and "expired" in close.reason

            await bob.login("bob", PASSWORD)
            async with bob.websocket() as socket:
                first_expiry = jwt.decode(bob.access_token, options={"verify_signature": False})["exp"]
                await wait_until(lambda: _clock_past(first_expiry - 1.2), what="a later second to refresh in")
                await bob.refresh()
                await socket.send({"type": "auth", "token": bob.access_token})
                frame = await socket.receive()
                assert frame["type"] == "authenticated" and frame["expires_at"] > first_expiry
                await wait_until(lambda: _clock_past(first_expiry + 0.3), what="the first token's expiry")
                await socket.ping()  # still open after the first token expired
                assert (await socket.receive())["type"] == "pong"
                close = await closed_with(socket, timeout=10)  # and closed when the second does
                assert close.code == 4401 and "expired" in close.reason


async def _clock_past(unix_time: float) -> bool:
    return time.time() > unix_time


async def test_a_socket_may_not_switch_to_another_users_token(pair) -> None:
    alice, bob, _ = pair
    async with bob.websocket() as socket:
        await socket.send({"type": "auth", "token": alice.access_token})
        frame = await socket.receive()
        assert frame["type"] == "error" and frame["error"]["code"] == "forbidden"


async def test_websocket_origin_is_checked_against_the_configured_and_own_origins(settings: Settings) -> None:
    async with running(settings, cors_origins="https://app.example.com") as server:
        async with Chat4AllClient(server.base_url) as bob:
            await bob.register("bob", PASSWORD)
            await bob.login("bob", PASSWORD)
            own = server.base_url
            for origin in ("https://app.example.com", own, None):
                headers = {"Origin": origin} if origin else {}
                async with bob.websocket(additional_headers=headers) as socket:
                    await socket.ping()
                    assert (await socket.receive())["type"] == "pong"
            # behind a proxy that forwards the host it was asked for
            async with bob.websocket(
                additional_headers={"Origin": "https://chat.example.org", "X-Forwarded-Host": "chat.example.org"}
            ) as socket:
                await socket.ping()
                assert (await socket.receive())["type"] == "pong"
            for origin in ("https://evil.example.net", "null", "https://app.example.com.evil.net"):
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with bob.websocket(additional_headers={"Origin": origin}):
                        pass
                assert refused.value.response.status_code == 403


# CORS ------------------------------------------------------------------------------------------


async def test_cors_is_off_by_default(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        response = await http.get("/health/live", headers={"Origin": "https://app.example.com"})
        assert "access-control-allow-origin" not in response.headers


async def test_cors_allows_the_configured_origins_with_credentials(settings: Settings) -> None:
    async with running(settings, cors_origins="https://app.example.com, http://localhost:3000") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            preflight = await http.options(
                "/v1/messages",
                headers={
                    "Origin": "https://app.example.com",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization, content-type",
                },
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
            assert preflight.headers["access-control-allow-credentials"] == "true"
            assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
            simple = await http.get("/v1/users/me", headers={"Origin": "http://localhost:3000"})
            assert simple.headers["access-control-allow-origin"] == "http://localhost:3000"
            assert "x-trace-id" in simple.headers["access-control-expose-headers"].lower()
            foreign = await http.get("/health/live", headers={"Origin": "https://evil.example.net"})
            assert "access-control-allow-origin" not in foreign.headers


@pytest.mark.parametrize("origins", ["*", "https://a.example, *", "app.example.com", "https://a.example/path"])
def test_cors_origins_must_be_origins_never_a_wildcard(origins: str) -> None:
    with pytest.raises(ValidationError):
        Settings(cors_origins=origins)
