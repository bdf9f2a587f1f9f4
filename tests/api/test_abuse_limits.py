"""Abuse limits over real HTTP (embedded profile): 429 rate_limited with Retry-After and
RateLimit-* headers for logins, registrations, sends (route and fast path), fan-out and groups;
size bounds (413); no bulk probing of usernames; a history page's byte budget."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import websockets

from chat4all.client import ApiError
from chat4all.config import Settings
from tests.conftest import PASSWORD, persisted


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "login_per_address_per_minute": 1000,
            "login_free_failures": 2,
            "login_backoff_base_s": 30.0,
            "register_per_address_per_hour": 1000,
            "send_messages_per_minute": 5,
            "send_recipients_per_minute": 12,
            "group_max_members": 5,
            "groups_per_user_per_hour": 3,
            "conversations_lookup_per_minute": 2,
            "max_text_chars": 100,
            "max_metadata_bytes": 300,
            "history_page_max_bytes": 2000,
            "ws_max_sockets_per_user": 2,
            "ws_max_frame_bytes": 4096,
            "ws_pings_per_minute": 5,
        }
    )


@pytest.fixture
async def http(server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


def assert_rate_limited(response: httpx.Response, *, limit: int | None = None) -> None:
    assert response.status_code == 429, response.text
    body = response.json()
    if isinstance(body["error"], str):  # the token endpoint answers in OAuth2's shape, our code beside it
        assert (body["error"], body["code"]) == ("temporarily_unavailable", "rate_limited"), body
        assert set(body) == {"error", "error_description", "code", "details", "trace_id"}
    else:
        error = body["error"]
        assert error["code"] == "rate_limited"
        assert set(error) == {"code", "message", "details", "trace_id"}
    assert int(response.headers["Retry-After"]) >= 1
    assert int(response.headers["RateLimit-Remaining"]) >= 0
    assert int(response.headers["RateLimit-Reset"]) >= 1
    if limit is not None:
        assert int(response.headers["RateLimit-Limit"]) == limit


async def token(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post("/v1/auth/token", json={"username": username, "password": password})


async def test_failed_logins_back_off_and_even_the_right_password_waits(http, make_user) -> None:
    await make_user("alice")
    assert (await token(http, "alice", "wrong-password-1")).status_code == 401
    assert (await token(http, "alice", "wrong-password-2")).status_code == 401
    assert (await token(http, "alice", "wrong-password-3")).status_code == 401  # the third locks for 30 s
    locked = await token(http, "alice")  # the right password
    assert_rate_limited(locked)
    assert 25 <= int(locked.headers["Retry-After"]) <= 30
    # another account from the same address is not locked by alice's failures
    await make_user("bob")
    assert (await token(http, "bob")).status_code == 200


async def test_a_success_before_the_lock_clears_the_streak(http, make_user) -> None:
    await make_user("alice")
    for _ in range(2):
        assert (await token(http, "alice", "wrong-password")).status_code == 401
    assert (await token(http, "alice")).status_code == 200
    for _ in range(2):  # a fresh streak: two more free failures
        assert (await token(http, "alice", "wrong-password")).status_code == 401
    assert (await token(http, "alice")).status_code == 200


async def test_login_attempts_per_address(server, http, make_user) -> None:
    await make_user("alice")
    guard = server.runtime.services.auth._guard
    guard.rules = _with(guard.rules, login_per_address_per_minute=3)
    answers = [await token(http, "alice") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert_rate_limited(answers[3], limit=3)


async def test_registrations_per_address(server, http) -> None:
    guard = server.runtime.services.auth._guard
    guard.rules = _with(guard.rules, register_per_address_per_hour=2)
    answers = [
        await http.post("/v1/auth/register", json={"username": f"user{i}", "password": PASSWORD}) for i in range(3)
    ]
    assert [a.status_code for a in answers[:2]] == [201, 201]
    assert_rate_limited(answers[2], limit=2)
    assert (await token(http, "user2")).status_code == 401  # it was not registered


def _with(rules, **changes):
    return type(rules)(**{f: getattr(rules, f) for f in rules.__dataclass_fields__} | changes)


async def test_messages_per_minute_on_the_fast_path_and_the_route(server, http, pair) -> None:
    alice, bob, conversation_id = pair
    headers = {"Authorization": f"Bearer {alice.access_token}", "Content-Type": "application/json"}
    body = b'{"conversation_id": "%s", "payload": {"type": "text", "text": "hi"}}' % conversation_id.encode()
    fast = [await http.post("/v1/messages", content=body, headers=headers) for _ in range(5)]
    assert [r.status_code for r in fast] == [202] * 5
    assert_rate_limited(await http.post("/v1/messages", content=body, headers=headers), limit=5)

    async def streamed():  # a body in two chunks is left to the FastAPI route
        yield body[:10]
        yield body[10:]

    assert_rate_limited(await http.post("/v1/messages", content=streamed(), headers=headers), limit=5)
    # bob's allowance is his own
    assert (await bob.send_text(conversation_id, "still fine"))["status"] == "accepted"


async def test_recipients_per_minute_bound_fan_out(make_user) -> None:
    alice = await make_user("alice")
    members = ["bob", "carol", "dave", "erin"]
    for name in members:
        await make_user(name)
    group = (await alice.create_conversation("group", members))["conversation_id"]
    await alice.send_text(group, "one")  # 4 recipients
    await alice.send_text(group, "two")  # 8
    await alice.send_text(group, "three", to=["bob"])  # 9
    with pytest.raises(ApiError) as refused:
        await alice.send_text(group, "four")  # 13 > 12
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    await alice.send_text(group, "to a few", to=["bob", "carol"])  # 11: small sends still pass


async def test_group_size_and_groups_per_hour(make_user) -> None:
    alice = await make_user("alice")
    for name in ("bob", "carol", "dave", "erin", "frank"):
        await make_user(name)
    with pytest.raises(ApiError) as too_big:
        await alice.create_conversation("group", ["bob", "carol", "dave", "erin", "frank"])  # 6 with alice
    assert too_big.value.status == 422
    for _ in range(3):
        await alice.create_conversation("group", ["bob", "carol"])
    with pytest.raises(ApiError) as refused:
        await alice.create_conversation("group", ["bob", "carol"])
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    await alice.create_conversation("private", ["bob"])  # private conversations are not groups


async def test_probing_usernames_is_limited(make_user) -> None:
    alice = await make_user("alice")
    for _ in range(2):
        with pytest.raises(ApiError) as unknown:
            await alice.create_conversation("private", ["ghost"])
        assert unknown.value.status == 422
    with pytest.raises(ApiError) as refused:
        await alice.create_conversation("private", ["phantom"])
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")


async def test_captions_and_metadata_are_bounded_like_text(pair) -> None:
    alice, _, conversation_id = pair
    with pytest.raises(ApiError) as caption:
        await alice.send({"conversation_id": conversation_id, "payload": {"type": "file", "file_id": "x", "caption": "c" * 101}})
    assert (caption.value.status, caption.value.code) == (413, "payload_too_large")
    with pytest.raises(ApiError) as value:
        await alice.send_text(conversation_id, "hi", metadata={"note": "n" * 101})
    assert (value.value.status, value.value.code) == (413, "payload_too_large")
    with pytest.raises(ApiError) as whole:
        await alice.send_text(conversation_id, "hi", metadata={f"k{i}": "v" * 90 for i in range(4)})
    assert (whole.value.status, whole.value.code) == (413, "payload_too_large")
    assert (await alice.send_text(conversation_id, "hi", metadata={"note": "n" * 100}))["status"] == "accepted"


async def test_a_history_page_has_a_byte_budget(server, pair) -> None:
    alice, bob, conversation_id = pair
    guard = server.runtime.services.messages._guard
    guard.rules = _with(guard.rules, send_messages_per_minute=100, send_recipients_per_minute=100)
    sent = [(await alice.send_text(conversation_id, f"{i:02d}" + "x" * 90))["message_id"] for i in range(12)]
    await persisted(alice, sent[-1])
    first = await bob.conversation_messages(conversation_id, limit=100)
    assert 1 <= len(first["items"]) < 12  # 12 messages of ~400 bytes do not fit in 2000
    seen = [m["message_id"] for m in first["items"]]
    since = first["next_since"]
    while True:
        page = await bob.conversation_messages(conversation_id, since=since, limit=100)
        if not page["items"]:
            break
        seen += [m["message_id"] for m in page["items"]]
        since = page["next_since"]
    assert seen == sent


# WebSocket -------------------------------------------------------------------------------------


async def closed_with(socket, timeout: float = 10.0) -> tuple[int, str]:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await socket.receive(timeout=timeout)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_users_sockets_are_capped_and_the_oldest_is_closed(make_user) -> None:
    bob = await make_user("bob")
    async with bob.websocket() as first, bob.websocket() as second:
        await second.ping()
        assert (await second.receive())["type"] == "pong"
        async with bob.websocket() as third:
            assert (await closed_with(first))[0] == 1008
            for socket in (second, third):  # the newer ones keep working
                await socket.ping()
                assert (await socket.receive())["type"] == "pong"


async def test_a_frame_too_large_closes_the_socket_with_1009(make_user) -> None:
    bob = await make_user("bob")
    async with bob.websocket() as socket:
        await socket.send({"type": "ack", "message_ids": ["x" * 36] * 200})  # ~8 KB > 4 KiB
        assert (await closed_with(socket))[0] == 1009


async def test_pinging_too_fast_closes_the_socket_with_1008(make_user) -> None:
    bob = await make_user("bob")
    async with bob.websocket() as socket:
        for _ in range(5):
            await socket.ping()
            assert (await socket.receive())["type"] == "pong"
        await socket.ping()  # the sixth within the minute
        code, reason = await closed_with(socket)
        assert code == 1008 and "ping" in reason
