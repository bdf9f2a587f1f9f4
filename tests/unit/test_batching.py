"""GroupCommit: what arrives during a flush goes in the next one; each caller gets its own result."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from chat4all.batching import GroupCommit


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("disk full")
        return [i * 10 for i in items]


async def test_items_submitted_during_a_flush_share_the_next_one() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.flush)

    first = asyncio.create_task(commit.submit(1))
    while not recorder.batches:  # the first flush is in flight
        await asyncio.sleep(0)
    rest = [asyncio.create_task(commit.submit(i)) for i in (2, 3, 4)]
    await asyncio.sleep(0)
    recorder.release.set()

    assert await first == 10
    assert [await t for t in rest] == [20, 30, 40]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_a_batch_is_cut_at_max_batch() -> None:
    recorder = Recorder()
    recorder.release.set()
    commit = GroupCommit(recorder.flush, max_batch=2)

    results = await asyncio.gather(*(commit.submit(i) for i in range(5)))

    assert results == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1], [2, 3], [4]]


async def test_a_failed_flush_fails_its_callers_only() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.flush)
    recorder.fail_next = True

    doomed = asyncio.create_task(commit.submit(1))
    while not recorder.batches:
        await asyncio.sleep(0)
    later = asyncio.create_task(commit.submit(2))
    recorder.release.set()

    with pytest.raises(RuntimeError, match="disk full"):
        await doomed
    assert await later == 20


async def test_a_caller_that_goes_away_does_not_take_its_item_or_the_others_with_it() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.flush)

    leaving = asyncio.create_task(commit.submit(1))
    staying = asyncio.create_task(commit.submit(2))
    while not recorder.batches:
        await asyncio.sleep(0)
    leaving.cancel()
    recorder.release.set()

    assert await staying == 20
    await commit.wait_idle()
    assert recorder.batches == [[1, 2]]


async def test_a_linger_lets_items_that_arrive_meanwhile_join_the_first_flush() -> None:
    recorder = Recorder()
    recorder.release.set()
    commit = GroupCommit(recorder.flush, linger_s=0.05)

    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)  # the drainer is lingering now
    second = asyncio.create_task(commit.submit(2))

    assert (await first, await second) == (10, 20)
    assert recorder.batches == [[1, 2]]
