"""API v2 edits and deletes over real HTTP, sockets and webhooks, on both profiles: versions
kept, tombstones that keep their sequence number, who may do it, and the frames and signed
callbacks (message.updated, message.deleted, conversation.updated) that reach the users concerned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import pytest

from chat4all.client import ApiError
from chat4all.config import Settings
from tests.api.test_webhooks import register
from tests.api.v2_support import frames_until, is_message, profiled, timeline
from tests.conftest import wait_until
from tests.webhook_receiver import Receiver, running_receiver


@pytest.fixture(params=["embedded", "production"])
async def settings(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Settings]:
    async for s in profiled(request, settings):
        yield s


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def _same(a: dict, b: dict) -> bool:
    """The same message (timestamps compared as instants: a frame writes +00:00, HTTP writes Z)."""
    stamps = ("created_at", "edited_at")
    return {k: v for k, v in a.items() if k not in stamps} == {k: v for k, v in b.items() if k not in stamps} and all(
        (a[k] is None) == (b[k] is None) and (a[k] is None or datetime.fromisoformat(a[k]) == datetime.fromisoformat(b[k]))
        for k in stamps
    )


async def _error(call, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiError) as caught:
        await call
    assert (caught.value.status, caught.value.code) == (status, code), caught.value


async def test_the_sender_edits_and_every_version_is_kept(make_user, receiver: Receiver) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    cid = (await alice.v2_create_conversation("group", ["bob", "carol"]))["conversation_id"]
    bob_hook = await register(bob, receiver.url("/bob"), events=["message.updated", "message.deleted"])
    sent = await alice.v2_send_text(cid, "helo", metadata={"draft": True})
    await timeline(bob, cid, 1)

    async with bob.websocket() as socket:
        await frames_until(socket, is_message("helo"))
        edited = await alice.v2_edit_message(sent["message_id"], text="hello")
        frame = (await frames_until(socket, lambda f: f["type"] == "message_updated"))[-1]
    assert _same(frame["message"], edited)
    assert edited["payload"] == {"type": "text", "text": "hello"} and edited["edited_at"] is not None
    assert edited["metadata"] == {"draft": True} and edited["sequence_number"] == 1

    await alice.v2_edit_message(sent["message_id"], metadata={"draft": False})
    await alice.v2_edit_message(sent["message_id"], metadata={"draft": False})  # a retry: no new version
    versions = (await bob.v2_message_versions(sent["message_id"]))["items"]
    assert [(v["version"], v["payload"]["text"], v["metadata"]) for v in versions] == [
        (1, "helo", {"draft": True}), (2, "hello", {"draft": True}), (3, "hello", {"draft": False})
    ]
    # a client that missed the frames sees the current version on its next page
    assert (await carol.v2_messages(cid))["items"][0]["payload"]["text"] == "hello"

    await _error(bob.v2_edit_message(sent["message_id"], text="mine now"), 403, "forbidden")
    await _error(alice.request("PATCH", f"/v2/messages/{sent['message_id']}", json={}), 422, "validation_error")
    await _error(
        alice.request("PATCH", f"/v2/messages/{sent['message_id']}", json={"payload": {"type": "file", "file_id": "x"}}),
        422, "validation_error",
    )

    calls = await wait_until(lambda: receiver.count(2, "/bob"), timeout=15, what="bob's message.updated callbacks")
    assert [c.json["type"] for c in calls] == ["message.updated", "message.updated"]
    assert all(c.verifies(bob_hook["secret"]) for c in calls)
    assert calls[0].json["data"]["recipient"] == "bob"
    assert calls[0].json["data"]["message"]["payload"]["text"] == "hello"


async def test_a_delete_leaves_a_tombstone_and_admins_may_delete_others_messages(make_user, receiver: Receiver) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    cid = (await alice.v2_create_conversation("group", ["bob", "carol"]))["conversation_id"]
    hook = await register(carol, receiver.url("/carol"), events=["message.deleted", "conversation.updated"])
    mine = await bob.v2_send_text(cid, "oops")
    theirs = await carol.v2_send_text(cid, "spam")
    kept = await carol.v2_send_text(cid, "fine")
    await timeline(alice, cid, 3)
    assert (await alice.v2_conversation(cid))["unread_count"] == 3

    await _error(carol.v2_delete_message(mine["message_id"]), 403, "forbidden")  # a member deletes only their own
    await bob.v2_delete_message(mine["message_id"])
    await bob.v2_delete_message(mine["message_id"])  # idempotent
    async with carol.websocket() as socket:
        await socket.ping()  # the socket is in the hub once it answers
        await frames_until(socket, lambda f: f["type"] == "pong")
        await alice.v2_delete_message(theirs["message_id"])  # the owner deletes anyone's
        deleted = (
            await frames_until(
                socket, lambda f: f["type"] == "message_updated" and f["message"]["message_id"] == theirs["message_id"]
            )
        )[-1]["message"]
    assert (deleted["deleted"], deleted["payload"], deleted["metadata"]) == (True, None, {})

    items = (await alice.v2_messages(cid))["items"]
    assert [(m["sequence_number"], m["deleted"], m["payload"]) for m in items] == [
        (1, True, None), (2, True, None), (3, False, {"type": "text", "text": "fine"})
    ]
    assert (await alice.v2_conversation(cid))["unread_count"] == 1  # tombstones are not unread
    await _error(bob.v2_edit_message(mine["message_id"], text="back"), 409, "conflict")
    assert (await bob.v2_message_versions(mine["message_id"]))["items"] == []
    assert (await carol.v2_message(kept["message_id"]))["deleted"] is False

    await alice.v2_update_conversation(cid, topic="be nice")
    calls = await wait_until(lambda: receiver.count(3, "/carol"), timeout=15, what="carol's callbacks")
    assert sorted(c.json["type"] for c in calls) == ["conversation.updated", "message.deleted", "message.deleted"]
    assert all(c.verifies(hook["secret"]) for c in calls)
    update = next(c.json["data"] for c in calls if c.json["type"] == "conversation.updated")
    assert update["event"] == "updated" and update["conversation"]["topic"] == "be nice"
