"""/v2/ws over real HTTP and WebSocket on the embedded profile: multi-device, typing, presence
(docs/api-v2.md). The production profile's cross-node twin is tests/e2e/test_v2_live_production.py."""

from __future__ import annotations

from typing import Any

import pytest

from chat4all.client import ApiError, Socket


async def next_frame(socket: Socket, kind: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """The next frame of this type, skipping others (presence and status frames interleave)."""
    while True:
        frame = await socket.receive(timeout=timeout)
        if frame["type"] == kind:
            return frame


async def quiet(socket: Socket, *, ignore: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """What the socket received before the answer to a ping sent now: frames pushed earlier are
    already queued ahead of the pong, so this proves what did NOT arrive."""
    await socket.ping()
    seen = []
    while (frame := await socket.receive())["type"] != "pong":
        if frame["type"] not in ignore:
            seen.append(frame)
    return seen


async def test_a_message_reaches_every_v2_socket_of_its_sender_marked_own_and_no_v1_socket(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation_id = (await alice.create_conversation("group", ["bob"], name="team"))["conversation_id"]
    async with (
        alice.websocket(version="v2") as phone,
        alice.websocket(version="v2", auth="frame") as laptop,
        alice.websocket() as old_app,
        bob.websocket(version="v2") as bob_socket,
    ):
        for s in (phone, laptop, old_app, bob_socket):
            await quiet(s, ignore=("presence",))
        sent = await alice.send_text(conversation_id, "hello from the phone")
        for device in (phone, laptop):
            frame = await next_frame(device, "message")
            assert frame["own"] is True
            assert frame["message"]["message_id"] == sent["message_id"]
            assert frame["message"]["sequence_number"] == 1
        received = await next_frame(bob_socket, "message")
        assert received["message"]["message_id"] == sent["message_id"] and "own" not in received
        # v1 is unchanged: its sockets never see the sender's own messages
        assert [f for f in await quiet(old_app, ignore=("status",)) if f["type"] == "message"] == []


async def test_a_read_on_one_device_reaches_the_readers_other_v2_sockets(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    async with bob.websocket(version="v2") as phone, bob.websocket(version="v2") as laptop, bob.websocket() as v1:
        sent = await alice.send_text(conversation_id, "read me")
        for s in (phone, laptop, v1):
            await next_frame(s, "message")
        await phone.read([sent["message_id"]])
        statuses = []
        while not statuses or statuses[-1]["status"] != "READ":
            statuses.append((await next_frame(laptop, "status"))["status"])
        # the read implies the delivery: both steps, each once, in order
        assert [(s["message_id"], s["username"], s["status"]) for s in statuses] == [
            (sent["message_id"], "bob", "DELIVERED"),
            (sent["message_id"], "bob", "READ"),
        ]
        # a v1 socket of the reader gets no status frames (v1 shows them to senders only)
        assert [f for f in await quiet(v1) if f["type"] == "status"] == []


async def test_typing_reaches_the_other_members_rate_limited_and_a_non_member_gets_an_error(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    conversation_id = (await alice.create_conversation("group", ["bob"], name="team"))["conversation_id"]
    async with (
        alice.websocket(version="v2") as alice_socket,
        bob.websocket(version="v2") as bob_socket,
        bob.websocket() as bob_v1,
        carol.websocket(version="v2") as carol_socket,
    ):
        for s in (alice_socket, bob_socket, bob_v1, carol_socket):  # a pong: the socket is in the hub
            await quiet(s, ignore=("presence",))
        await alice_socket.typing(conversation_id, "start")
        frame = await next_frame(bob_socket, "typing")
        assert frame["conversation_id"] == conversation_id and frame["username"] == "alice"
        assert frame["state"] == "start" and frame["expires_at"]
        # a second start within 2 s is dropped; the stop after it is the next typing frame
        await alice_socket.typing(conversation_id, "start")
        await alice_socket.typing(conversation_id, "stop")
        frame = await next_frame(bob_socket, "typing")
        assert frame["state"] == "stop" and frame["expires_at"] is None
        # the typist's own sockets and v1 sockets receive no typing frames
        assert [f for f in await quiet(alice_socket) if f["type"] == "typing"] == []
        assert [f for f in await quiet(bob_v1) if f["type"] == "typing"] == []

        await carol_socket.typing(conversation_id, "start")
        error = await next_frame(carol_socket, "error")
        assert error["error"]["code"] == "not_found"
        await carol_socket.send({"type": "typing", "conversation_id": conversation_id, "state": "dancing"})
        assert (await next_frame(carol_socket, "error"))["error"]["code"] == "validation_error"
        assert [f for f in await quiet(bob_socket) if f["type"] == "typing"] == []

        # the HTTP twin relays the same frame
        await bob.typing(conversation_id, "start")
        frame = await next_frame(alice_socket, "typing")
        assert frame["username"] == "bob" and frame["state"] == "start"
        with pytest.raises(ApiError) as refused:
            await carol.typing(conversation_id, "start")
        assert refused.value.status == 404
        with pytest.raises(ApiError) as invalid:
            await bob.request("POST", f"/v2/conversations/{conversation_id}/typing", json={"state": "x"}, expect=(204,))
        assert invalid.value.status == 422


async def test_presence_frames_reach_those_who_share_a_conversation_and_nobody_else(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    await alice.create_conversation("private", ["bob"])
    async with bob.websocket(version="v2") as bob_socket, carol.websocket(version="v2") as carol_socket:
        async with alice.websocket(version="v2"):
            online = await next_frame(bob_socket, "presence")
            assert online["username"] == "alice" and online["status"] == "online" and online["last_seen"]
            async with alice.websocket(version="v2"):  # a second device is no transition
                await quiet(bob_socket)
        frames = []
        while not frames or frames[-1]["status"] != "offline":
            frames.append(await next_frame(bob_socket, "presence"))
        assert [(f["username"], f["status"]) for f in frames] == [("alice", "offline")]
        # carol shares no conversation with alice: her frames would have gone out with bob's
        assert [f for f in await quiet(carol_socket) if f["type"] == "presence"] == []


async def test_v2_socket_answers_unknown_frames_with_the_v2_vocabulary(make_user) -> None:
    alice = await make_user("alice")
    async with alice.websocket(version="v2") as socket:
        await socket.send({"type": "dance"})
        error = await next_frame(socket, "error")
        assert "typing" in error["error"]["message"]


async def test_a_typist_who_goes_offline_is_told_to_have_stopped(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    async with bob.websocket(version="v2") as bob_socket:
        async with alice.websocket(version="v2") as alice_socket:
            await alice_socket.typing(conversation_id, "start")
            assert (await next_frame(bob_socket, "typing"))["state"] == "start"
        stopped = await next_frame(bob_socket, "typing")
        assert (stopped["username"], stopped["state"]) == ("alice", "stop")
        assert (await next_frame(bob_socket, "presence"))["status"] == "offline"


async def test_a_read_cursor_frame_marks_read_up_to_it_and_the_readers_other_devices_follow(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
    async with bob.websocket(version="v2") as phone, bob.websocket(version="v2") as laptop:
        sent = [await alice.send_text(conversation_id, f"m{i}") for i in range(3)]
        for _ in sent:
            await next_frame(phone, "message")
        await phone.send({"type": "read_cursor", "conversation_id": conversation_id, "up_to_sequence": 2})
        moved = await next_frame(laptop, "read_cursor")
        assert (moved["conversation_id"], moved["up_to_sequence"], moved["unread_count"]) == (conversation_id, 2, 1)
        statuses = [(await alice.message_status(s["message_id"]))["status"] for s in sent]
        assert statuses[:2] == ["READ", "READ"] and statuses[2] != "READ"
        # a malformed frame or a conversation the reader is not in answers an error frame
        await phone.send({"type": "read_cursor", "conversation_id": conversation_id, "up_to_sequence": -1})
        assert (await next_frame(phone, "error"))["error"]["code"] == "validation_error"
        await phone.send({"type": "read_cursor", "conversation_id": "00000000-0000-4000-8000-000000000000", "up_to_sequence": 1})
        assert (await next_frame(phone, "error"))["error"]["code"] == "not_found"
