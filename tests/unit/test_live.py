"""services/live.py: typing's relay limits and presence's coalescing, over the in-process hub."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
import pytest

from chat4all.adapters.memory import MemoryPush
from chat4all.services.hub import LocalHub
from chat4all.domain.errors import NotFound
from chat4all.domain.frames import Frame
from chat4all.services.live import LiveService


@dataclass
class _Conversation:
    conversation_id: str
    members: tuple[str, ...]


@dataclass
class _Page:
    items: list[_Conversation]
    next_cursor: str | None = None


class _Conversations:
    """The two calls LiveService makes of ConversationService, over one conversation."""

    def __init__(self, conversation: _Conversation) -> None:
        self.conversation = conversation
        self.lookups = 0

    async def get(self, conversation_id: str, *, viewer: str) -> _Conversation:
        self.lookups += 1
        if conversation_id != self.conversation.conversation_id or viewer not in self.conversation.members:
            raise NotFound("no such conversation")
        return self.conversation

    async def list(self, viewer: str, *, limit: int, cursor: str | None = None) -> _Page:
        return _Page([self.conversation] if viewer in self.conversation.members else [])


class _Socket:
    def __init__(self) -> None:
        self.frames: list[dict] = []

    def offer(self, frame: Frame) -> None:
        self.frames.append(orjson.loads(frame.data))

    def missed(self) -> None:
        pass


@pytest.fixture
def setup():
    hub = LocalHub()
    conversations = _Conversations(_Conversation("c1", ("alice", "bob")))
    bob = _Socket()
    hub.add("bob", bob)
    live = LiveService(conversations=conversations, push=MemoryPush(hub), presence_min_interval_s=0.2)  # type: ignore[arg-type]
    return live, conversations, bob


async def test_one_start_per_two_seconds_and_a_stop_only_after_a_start(setup) -> None:
    live, conversations, bob = setup
    assert await live.typing("alice", "c1", "stop") is False  # nothing started
    assert await live.typing("alice", "c1", "start") is True
    assert await live.typing("alice", "c1", "start") is False  # within 2 s: dropped
    assert conversations.lookups == 1  # the dropped one cost no lookup
    assert await live.typing("alice", "c1", "stop") is True
    assert await live.typing("alice", "c1", "start") is True  # a stop ends the window
    assert [(f["username"], f["state"]) for f in bob.frames] == [("alice", "start"), ("alice", "stop"), ("alice", "start")]
    with pytest.raises(NotFound):
        await live.typing("mallory", "c1", "start")


async def _frames(socket: _Socket, n: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while len(socket.frames) < n:
        assert loop.time() < deadline, socket.frames
        await asyncio.sleep(0.01)


async def test_a_flapping_user_is_pushed_at_most_once_per_interval_ending_on_the_latest_state(setup) -> None:
    live, _, bob = setup
    await live.presence_changed("alice", "online")
    await _frames(bob, 1)
    for status in ("offline", "online", "offline", "online", "offline"):  # within the interval
        await live.presence_changed("alice", status)
    await _frames(bob, 2)
    await asyncio.sleep(0.5)  # two more intervals: nothing more comes
    assert [f["status"] for f in bob.frames] == ["online", "offline"]
    # the interval over, the next transition is pushed at once
    await live.presence_changed("alice", "online")
    await _frames(bob, 3)
    assert bob.frames[-1]["status"] == "online"
