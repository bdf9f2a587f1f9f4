"""API v2 history over real HTTP on both profiles: the latest page, pages before and after a
sequence number with their cursors, a message with its context, and the send alias."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chat4all.client import ApiError
from chat4all.config import Settings
from tests.api.v2_support import profiled, timeline
from tests.conftest import persisted


@pytest.fixture(params=["embedded", "production"])
async def settings(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Settings]:
    async for s in profiled(request, settings):
        yield s


def _seqs(page: dict) -> list[int]:
    return [m["sequence_number"] for m in page["items"]]


async def test_history_pages_both_ways_from_the_latest_from_any_sequence_and_around_a_message(pair) -> None:
    alice, bob, cid = pair
    sent = [await alice.v2_send_text(cid, f"m{i}") for i in range(1, 11)]
    await timeline(bob, cid, 10)

    latest = await bob.v2_messages(cid, limit=4)
    assert _seqs(latest) == [7, 8, 9, 10]
    assert (latest["prev_cursor"], latest["next_cursor"]) == (7, None)
    older = await bob.v2_messages(cid, limit=4, before=latest["prev_cursor"])
    assert _seqs(older) == [3, 4, 5, 6] and (older["prev_cursor"], older["next_cursor"]) == (3, 6)
    oldest = await bob.v2_messages(cid, limit=4, before=older["prev_cursor"])
    assert _seqs(oldest) == [1, 2] and (oldest["prev_cursor"], oldest["next_cursor"]) == (None, 2)

    newer = await bob.v2_messages(cid, limit=3, after=oldest["next_cursor"])
    assert _seqs(newer) == [3, 4, 5] and newer["next_cursor"] == 5
    last = await bob.v2_messages(cid, limit=10, after=8)
    assert _seqs(last) == [9, 10] and last["next_cursor"] is None
    assert (await bob.v2_messages(cid, after=10))["items"] == []

    around = await bob.v2_messages(cid, limit=5, around=sent[4]["message_id"])  # m5 is sequence 5
    assert _seqs(around) == [3, 4, 5, 6, 7] and (around["prev_cursor"], around["next_cursor"]) == (3, 7)
    at_start = await bob.v2_messages(cid, limit=4, around=sent[0]["message_id"])
    assert _seqs(at_start) == [1, 2, 3, 4] and at_start["prev_cursor"] is None  # the page is filled after

    message = latest["items"][-1]
    assert message == {
        "message_id": sent[-1]["message_id"], "conversation_id": cid, "sequence_number": 10, "kind": "user",
        "from": "alice", "to": ["bob"], "channels": ["internal"], "payload": {"type": "text", "text": "m10"},
        "metadata": {}, "created_at": message["created_at"], "edited_at": None, "deleted": False,
    }
    assert await bob.v2_message(sent[-1]["message_id"]) == message

    for bad in ({"before": 3, "after": 1}, {"limit": 0}, {"limit": 201}, {"before": -1}):
        with pytest.raises(ApiError) as caught:
            await bob.v2_messages(cid, **bad)
        assert caught.value.status == 422
    with pytest.raises(ApiError) as caught:
        await bob.v2_messages(cid, around="00000000-0000-4000-8000-000000000000")
    assert caught.value.status == 404


async def test_the_v2_send_is_v1_send_with_the_same_answers_and_status(pair) -> None:
    alice, bob, cid = pair
    message_id = "7d0f6a52-8a4e-4f7e-9d7c-1c3f5b2a9e10"
    first = await alice.v2_send_text(cid, "once", message_id=message_id)
    assert first == {"message_id": message_id, "conversation_id": cid, "status": "accepted"}
    await persisted(alice, message_id)
    again = await alice.v2_send_text(cid, "once", message_id=message_id)
    assert again["duplicate"] is True and again["status"] == "SENT"
    status = await alice.v2_message_status(message_id)
    assert status == await alice.message_status(message_id)
    assert status["recipients"][0]["username"] == "bob"
    with pytest.raises(ApiError) as caught:
        await bob.v2_message_status(message_id)  # only the sender follows the status
    assert caught.value.status == 404
