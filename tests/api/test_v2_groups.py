"""API v2 group management over real HTTP (and the v1 socket for what reaches users), on the
embedded and the production profile: roles and who may do what, system messages in the
timeline, members in and out, leaving, and what a removed member can still see."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chat4all.client import ApiError, Chat4AllClient
from chat4all.config import Settings
from tests.api.v2_support import frames_until, is_message, profiled, system_events, timeline
from tests.api.test_files import content, upload


@pytest.fixture(params=["embedded", "production"])
async def settings(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Settings]:
    async for s in profiled(request, settings):
        yield s


async def _error(call, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as caught:
        await call
    assert (caught.value.status, caught.value.code) == (status, code), caught.value


def _roles(summary: dict) -> dict[str, str]:
    return {m["username"]: m["role"] for m in summary["members"]}


async def test_roles_decide_who_may_change_a_group_and_every_change_is_a_system_message(make_user) -> None:
    alice, bob, carol, dave = [await make_user(u) for u in ("alice", "bob", "carol", "dave")]
    group = await alice.v2_create_conversation("group", ["bob", "carol"], name="Team", topic="launch")
    cid = group["conversation_id"]
    assert _roles(group) == {"alice": "owner", "bob": "member", "carol": "member"}
    assert (group["name"], group["topic"], group["unread_count"], group["read_up_to"]) == ("Team", "launch", 0, 0)

    await _error(bob.v2_update_conversation(cid, name="Mine"), 403, "forbidden")
    await _error(bob.v2_add_members(cid, ["dave"]), 403, "forbidden")
    await _error(bob.v2_set_role(cid, "carol", "admin"), 403, "forbidden")

    renamed = await alice.v2_update_conversation(cid, name="Launch team", topic="Friday")
    assert (renamed["name"], renamed["topic"]) == ("Launch team", "Friday")
    promoted = await alice.v2_set_role(cid, "bob", "admin")
    assert _roles(promoted)["bob"] == "admin"

    async with dave.websocket() as dave_socket:
        await dave_socket.ping()
        await frames_until(dave_socket, lambda f: f["type"] == "pong")
        added = await bob.v2_add_members(cid, ["dave", "carol"])  # carol is a member already: ignored
        frame = (await frames_until(dave_socket, lambda f: f["type"] == "conversation"))[-1]
    assert frame["event"] == "member_added" and frame["conversation"]["conversation_id"] == cid
    assert frame["conversation"]["membership"] == "member" and frame["conversation"]["name"] == "Launch team"
    assert _roles(added) == {"alice": "owner", "bob": "admin", "carol": "member", "dave": "member"}
    await _error(bob.v2_remove_member(cid, "alice"), 403, "forbidden")  # an admin removes members only
    await bob.v2_remove_member(cid, "carol")
    await bob.v2_remove_member(cid, "carol")  # a retry: 204, and no second system message
    await _error(bob.v2_remove_member(cid, "zed"), 404, "not_found")

    items = await timeline(alice, cid, 5)
    assert system_events(items) == ["renamed", "topic_changed", "role_changed", "member_added", "member_removed"]
    assert [m["sequence_number"] for m in items] == [1, 2, 3, 4, 5]
    added_message = items[3]
    assert added_message["from"] == "bob" and added_message["payload"] == {
        "type": "system", "event": "member_added", "actor": "bob", "usernames": ["dave"]
    }
    assert items[4]["payload"]["usernames"] == ["carol"]
    # dave joined at sequence 4: what came before is not his
    dave_items = await timeline(dave, cid, 2)
    assert [m["sequence_number"] for m in dave_items] == [4, 5]


async def test_a_removed_member_stops_receiving_and_cannot_read_what_comes_after(make_user) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    cid = (await alice.v2_create_conversation("group", ["bob", "carol"]))["conversation_id"]
    before = await alice.v2_send_text(cid, "before")
    await timeline(carol, cid, 1)

    async with carol.websocket() as carol_socket, bob.websocket() as bob_socket:
        await frames_until(carol_socket, is_message("before"))
        await alice.v2_remove_member(cid, "carol")
        after = await alice.v2_send_text(cid, "after")
        await frames_until(bob_socket, is_message("after"))
        # carol's socket: the removal reaches her (frame and system message), then nothing more
        seen: list[dict] = []
        removal_message = is_message("member_removed")
        while not (any(map(removal_message, seen)) and any(f["type"] == "conversation" for f in seen)):
            seen += await frames_until(carol_socket, lambda f: removal_message(f) or f["type"] == "conversation")
        await carol_socket.ping()
        seen += await frames_until(carol_socket, lambda f: f["type"] == "pong")
    assert all(f.get("message", {}).get("message_id") != after["message_id"] for f in seen)
    removal = [f for f in seen if f["type"] == "conversation"]
    assert [(f["event"], f["conversation"]["membership"]) for f in removal] == [("member_removed", "left")]

    carol_items = await timeline(carol, cid, 2)
    assert [m["payload"].get("text") or m["payload"]["event"] for m in carol_items] == ["before", "member_removed"]
    await _error(carol.v2_conversation(cid), 404, "not_found")
    await _error(carol.v2_send_text(cid, "still here?"), 403, "forbidden")
    await _error(carol.v2_edit_message(before["message_id"], text="x"), 403, "forbidden")
    assert cid not in [c["conversation_id"] for c in (await carol.v2_inbox())["items"]]


async def test_an_owner_who_leaves_passes_ownership_and_private_conversations_stay_two_party(make_user) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    cid = (await alice.v2_create_conversation("group", ["bob", "carol"]))["conversation_id"]
    await alice.v2_set_role(cid, "carol", "admin")
    await alice.v2_leave(cid)
    await alice.v2_leave(cid)  # a retry
    summary = await bob.v2_conversation(cid)
    assert _roles(summary) == {"bob": "member", "carol": "owner"}
    items = await timeline(bob, cid, 3)
    assert system_events(items) == ["role_changed", "member_left", "role_changed"]
    await _error(alice.v2_conversation(cid), 404, "not_found")

    handed = await carol.v2_set_role(cid, "bob", "owner")  # giving ownership makes the giver an admin
    assert _roles(handed) == {"bob": "owner", "carol": "admin"}

    private = (await alice.v2_create_conversation("private", ["bob"]))["conversation_id"]
    await _error(alice.v2_add_members(private, ["carol"]), 422, "not_a_group")
    await _error(alice.v2_leave(private), 422, "not_a_group")
    await _error(alice.v2_remove_member(private, "bob"), 422, "not_a_group")
    await _error(alice.v2_update_conversation(private, name="x"), 422, "not_a_group")
    await _error(alice.v2_add_members(cid, ["carol"]), 404, "not_found")  # alice left


@pytest.fixture
async def plain() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


async def test_a_removed_member_keeps_the_files_shared_before_and_not_those_after(make_user, plain) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    cid = (await alice.v2_create_conversation("group", ["bob", "carol"]))["conversation_id"]
    before = await upload(alice, plain, content(2048, seed=1), name="before.bin")
    await alice.send_file(cid, before["file_id"])
    await timeline(carol, cid, 1)
    await alice.v2_remove_member(cid, "carol")
    after = await upload(alice, plain, content(2048, seed=2), name="after.bin")
    await alice.send_file(cid, after["file_id"])
    await timeline(bob, cid, 3)

    assert (await carol.get_file(before["file_id"]))["status"] == "completed"
    await _error(carol.get_file(after["file_id"]), 404, "not_found")
    assert (await bob.get_file(after["file_id"]))["status"] == "completed"
