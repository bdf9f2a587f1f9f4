"""API v2 inbox and read cursors over real HTTP (and sockets) on both profiles: order by last
activity with the last message, unread counts that follow reads, edits and deletes, pagination,
the ``since`` sync, and a read cursor that marks every message READ in one step."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat4all.client import ApiError
from chat4all.config import Settings
from tests.api.test_webhooks import register
from tests.api.v2_support import frames_until, profiled, timeline
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


def _ids(page: dict) -> list[str]:
    return [c["conversation_id"] for c in page["items"]]


async def test_the_inbox_orders_by_last_activity_with_last_message_and_unread_count(make_user) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    with_bob = (await alice.v2_create_conversation("private", ["bob"]))["conversation_id"]
    group = (await alice.v2_create_conversation("group", ["bob", "carol"], name="Team"))["conversation_id"]
    quiet = (await carol.v2_create_conversation("private", ["alice"]))["conversation_id"]
    assert (await alice.v2_create_conversation("private", ["carol"]))["conversation_id"] == quiet  # one per pair

    await bob.v2_send_text(with_bob, "one")
    await bob.v2_send_text(with_bob, "two")
    await timeline(alice, with_bob, 2)
    await carol.v2_send_text(group, "news")
    await timeline(alice, group, 1)

    inbox = await alice.v2_inbox()
    assert _ids(inbox) == [group, with_bob, quiet]
    first = inbox["items"][0]
    assert first["last_message"]["payload"]["text"] == "news" and first["unread_count"] == 1
    assert (first["last_sequence"], first["read_up_to"], first["membership"]) == (1, 0, "member")
    assert inbox["items"][1]["unread_count"] == 2 and inbox["items"][2]["last_message"] is None
    assert (await bob.v2_conversation(with_bob))["unread_count"] == 0  # your own messages are never unread

    page1 = await alice.v2_inbox(limit=2)
    page2 = await alice.v2_inbox(limit=2, cursor=page1["next_cursor"])
    assert _ids(page1) + _ids(page2) == [group, with_bob, quiet] and page2["next_cursor"] is None

    await alice.v2_send_text(with_bob, "my answer")  # activity moves it to the top
    await timeline(alice, with_bob, 3)
    assert _ids(await alice.v2_inbox())[0] == with_bob

    with pytest.raises(ApiError) as caught:
        await alice.v2_inbox(cursor="not-a-cursor")
    assert (caught.value.status, caught.value.code) == (422, "validation_error")


async def test_a_read_cursor_marks_everything_up_to_it_read_in_one_step(make_user, receiver: Receiver) -> None:
    alice, bob = await make_user("alice"), await make_user("bob")
    cid = (await alice.v2_create_conversation("private", ["bob"]))["conversation_id"]
    await register(alice, receiver.url(), events=["message.status"])
    sent = [await alice.v2_send_text(cid, f"m{i}") for i in range(1, 6)]
    await timeline(bob, cid, 5)
    assert (await bob.v2_conversation(cid))["unread_count"] == 5

    async with bob.websocket() as other_device:
        await frames_until(other_device, lambda f: f.get("message", {}).get("sequence_number") == 5)
        answer = await bob.v2_mark_read(cid, 3)
        assert answer == {"conversation_id": cid, "read_up_to": 3, "unread_count": 2}
        frame = await frames_until(other_device, lambda f: f["type"] == "read_cursor")
        assert frame[-1] == {"type": "read_cursor", "conversation_id": cid, "up_to_sequence": 3, "unread_count": 2}

    for m in sent[:3]:
        assert (await alice.v2_message_status(m["message_id"]))["status"] == "READ"
    assert (await alice.v2_message_status(sent[3]["message_id"]))["status"] != "READ"
    # one READ callback per message, as v1's READ
    reads = await wait_until(
        lambda: _reads(receiver, 3), timeout=15, what="a READ callback per message read"
    )
    assert sorted(reads) == sorted(m["message_id"] for m in sent[:3])

    assert (await bob.v2_mark_read(cid, 1))["read_up_to"] == 3  # forward only
    assert (await bob.v2_mark_read(cid, 10**6))["read_up_to"] == 5  # never past the last message
    assert (await bob.v2_conversation(cid))["unread_count"] == 0


async def _reads(receiver: Receiver, n: int) -> list[str] | None:
    reads = [
        r.json["data"]["message_id"]
        for r in receiver.requests
        if r.json["type"] == "message.status" and r.json["data"]["status"] == "READ"
    ]
    return reads if len(reads) >= n else None


async def test_a_v1_read_moves_the_cursor_and_the_sync_token_returns_only_what_changed(make_user) -> None:
    alice, bob, carol = [await make_user(u) for u in ("alice", "bob", "carol")]
    private = (await alice.v2_create_conversation("private", ["bob"]))["conversation_id"]
    group = (await alice.v2_create_conversation("group", ["bob", "carol"]))["conversation_id"]
    sent = [await alice.v2_send_text(private, f"m{i}") for i in range(1, 4)]
    await timeline(bob, private, 3)
    await bob.ack([sent[1]["message_id"]], status="read")  # v1's per-message READ
    summary = await wait_until(
        lambda: _with_cursor(bob, private, 2), what="the v1 READ to move the read cursor"
    )
    assert summary["unread_count"] == 1

    token = (await carol.v2_inbox())["sync_token"]
    unchanged = await carol.v2_inbox(since=token)
    # a sync repeats what changed within its safety margin, never misses anything; nothing newer here
    assert all(c["conversation_id"] == group for c in unchanged["items"])
    await alice.v2_remove_member(group, "carol")
    synced = await carol.v2_inbox(since=unchanged["sync_token"])
    assert [(c["conversation_id"], c["membership"]) for c in synced["items"]] == [(group, "left")]
    assert _ids(await carol.v2_inbox()) == []

    with pytest.raises(ApiError) as caught:
        await carol.v2_inbox(since="garbage")
    assert (caught.value.status, caught.value.code) == (422, "validation_error")


async def _with_cursor(client, cid: str, up_to: int) -> dict | None:  # type: ignore[no-untyped-def]
    summary = await client.v2_conversation(cid)
    return summary if summary["read_up_to"] == up_to else None
