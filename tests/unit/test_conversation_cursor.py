"""The opaque cursor of GET /v1/conversations: what a page hands out comes back as the keyset
(created_at, conversation_id) of its last item; anything else is invalid input (422, never 500)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from chat4all.domain.errors import InvalidInput
from chat4all.domain.models import Conversation, ConversationType
from chat4all.services.conversations import ConversationService, _encode_cursor

T0 = datetime(2026, 3, 1, 12, 0, 0, 654_321, tzinfo=UTC)


class ListOnlyStore:
    """A ConversationStore that serves a fixed list and remembers the ``after`` it was given."""

    def __init__(self, conversations: list[Conversation]) -> None:
        self._conversations = sorted(conversations, key=lambda c: (c.created_at, c.conversation_id), reverse=True)
        self.afters: list[tuple[datetime, str] | None] = []

    async def list_conversations(
        self, username: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Conversation]:
        self.afters.append(after)
        items = [c for c in self._conversations if after is None or (c.created_at, c.conversation_id) < after]
        return items[:limit]


def conversation(at: datetime) -> Conversation:
    return Conversation(
        conversation_id=str(uuid.uuid4()),
        type=ConversationType.GROUP,
        name=None,
        members=("alice", "bob"),
        created_by="alice",
        created_at=at,
    )


def service(store: Any) -> ConversationService:
    return ConversationService(conversations=store, metadata=None)  # type: ignore[arg-type]


def cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


async def test_a_page_cursor_brings_back_the_keyset_of_its_last_item() -> None:
    items = [conversation(T0 + timedelta(seconds=i)) for i in range(5)]
    store = ListOnlyStore(items)

    first = await service(store).list("alice", limit=2)
    second = await service(store).list("alice", limit=2, cursor=first.next_cursor)
    third = await service(store).list("alice", limit=2, cursor=second.next_cursor)

    last = first.items[-1]
    assert store.afters[1] == (last.created_at, last.conversation_id)
    assert store.afters[1][0].tzinfo is not None
    assert [c.conversation_id for c in first.items + second.items + third.items] == [
        c.conversation_id for c in reversed(items)
    ]
    assert third.next_cursor is None


def test_a_cursor_is_url_safe() -> None:
    cursor = _encode_cursor(conversation(T0))

    assert cursor.isascii() and not set(cursor) & set("+/=&?#% ")


@pytest.mark.parametrize(
    "cursor",
    [
        "%%%not-base64%%%",
        "é",
        cursor_of("just a string"),
        cursor_of(5),
        cursor_of({"created_at": "2026-03-01T12:00:00+00:00"}),
        cursor_of(["2026-03-01T12:00:00+00:00"]),  # too few parts
        cursor_of(["2026-03-01T12:00:00+00:00", "id", "extra"]),  # too many parts
        cursor_of(["yesterday", "id"]),
        cursor_of([12345, "id"]),
        cursor_of(["2026-03-01T12:00:00", "id"]),  # no offset: which instant is it?
        base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
    ],
)
async def test_an_invalid_cursor_is_invalid_input(cursor: str) -> None:
    store = ListOnlyStore([])

    with pytest.raises(InvalidInput):
        await service(store).list("alice", cursor=cursor)
    assert store.afters == []  # rejected before reaching the store


async def test_a_cursor_whose_instant_has_no_utc_form_is_invalid_input() -> None:
    """0001-01-01T00:00+14:00 is in year 0 in UTC: the database layer cannot store or compare
    it (OverflowError → 500), so the cursor has to be refused as invalid input."""
    store = ListOnlyStore([])

    with pytest.raises(InvalidInput):
        await service(store).list("alice", cursor=cursor_of(["0001-01-01T00:00:00+14:00", "id"]))


@pytest.mark.parametrize("limit", [0, -1, 201])
async def test_a_limit_out_of_range_is_invalid_input(limit: int) -> None:
    with pytest.raises(InvalidInput):
        await service(ListOnlyStore([])).list("alice", limit=limit)
