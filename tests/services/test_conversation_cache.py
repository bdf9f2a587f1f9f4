"""ConversationService's cache on the in-memory fakes: what misses at the same moment is read
from the store together (a fresh node's first second is a few reads, not one per conversation),
each caller gets its own conversation (or None), and a hit does not read at all."""

from __future__ import annotations

import asyncio
import uuid

from chat4all.services.conversations import ConversationService
from tests.fakes.clock import FakeClock
from tests.fakes.users import FakeMetadataStore
from tests.fakes.world import FakeWorld

from .conftest import group


async def test_cache_misses_at_the_same_moment_are_one_store_read(
    world: FakeWorld, metadata: FakeMetadataStore, clock: FakeClock
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(50)]
    for conversation_id in ids:
        await group(world, clock, conversation_id, "alice", "bob")
    service = ConversationService(conversations=world.conversations, metadata=metadata, clock=clock)
    unknown = str(uuid.uuid4())

    found = await asyncio.gather(*(service.find(c) for c in [*ids, ids[0], unknown]))

    assert [c.conversation_id if c else None for c in found] == [*ids, ids[0], None]
    assert world.conversations.batch_reads == 1
    assert (await service.find(ids[7])) is found[7]  # cached: no read
    assert world.conversations.batch_reads == 1
