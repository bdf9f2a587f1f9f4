"""R3: private and group conversations, listing with a cursor, visibility."""

from __future__ import annotations

import pytest

from chat4all.client import ApiError


async def test_private_conversation_is_unique_per_pair_and_includes_the_caller(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    first = await alice.create_conversation("private", ["bob"])
    assert first["type"] == "private"
    assert first["members"] == ["alice", "bob"]
    assert first["created_by"] == "alice"
    again = await bob.create_conversation("private", ["alice"])
    assert again["conversation_id"] == first["conversation_id"]


async def test_private_needs_exactly_one_other_member(make_user) -> None:
    alice = await make_user("alice")
    await make_user("bob")
    await make_user("carol")
    for members in (["alice"], ["bob", "carol"]):
        with pytest.raises(ApiError) as refused:
            await alice.create_conversation("private", members)
        assert refused.value.status == 422


async def test_unknown_members_are_422_unknown_user_without_naming_them(make_user) -> None:
    alice = await make_user("alice")
    await make_user("bob")
    with pytest.raises(ApiError) as refused:
        await alice.create_conversation("group", ["ghost", "bob", "phantom"])
    assert (refused.value.status, refused.value.code) == (422, "unknown_user")
    # how many, not which: the answer does not tell which of the names exist
    assert refused.value.details == {"unknown_count": 2}
    assert "ghost" not in refused.value.message and "bob" not in refused.value.message


async def test_group_with_name_and_metadata(make_user) -> None:
    alice = await make_user("alice")
    await make_user("bob")
    await make_user("carol")
    group = await alice.create_conversation("group", ["bob", "carol"], name="Team", metadata={"topic": "launch"})
    assert group["members"] == ["alice", "bob", "carol"]
    assert (group["name"], group["metadata"]) == ("Team", {"topic": "launch"})


async def test_non_members_get_404_and_listing_shows_only_mine(make_user) -> None:
    alice = await make_user("alice")
    bob = await make_user("bob")
    carol = await make_user("carol")
    ab = await alice.create_conversation("private", ["bob"])
    await bob.create_conversation("private", ["carol"])

    with pytest.raises(ApiError) as hidden:
        await carol.get_conversation(ab["conversation_id"])
    assert (hidden.value.status, hidden.value.code) == (404, "not_found")
    assert (await alice.get_conversation(ab["conversation_id"]))["members"] == ["alice", "bob"]

    listed = await alice.list_conversations()
    assert [c["conversation_id"] for c in listed["items"]] == [ab["conversation_id"]]
    assert listed["next_cursor"] is None
    assert len((await bob.list_conversations())["items"]) == 2


async def test_listing_pages_with_a_cursor_without_gaps_or_repeats(make_user) -> None:
    alice = await make_user("alice")
    names = [f"user{i}" for i in range(7)]
    for name in names:
        await make_user(name)
    created = [(await alice.create_conversation("private", [n]))["conversation_id"] for n in names]

    seen: list[str] = []
    cursor = None
    while True:
        page = await alice.list_conversations(limit=3, cursor=cursor)
        seen.extend(c["conversation_id"] for c in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))  # newest first


async def test_a_bad_cursor_or_limit_is_422(make_user) -> None:
    alice = await make_user("alice")
    for params in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": 1000}):
        with pytest.raises(ApiError) as refused:
            await alice.request("GET", "/v1/conversations", params=params)
        assert (refused.value.status, refused.value.code) == (422, "validation_error")
