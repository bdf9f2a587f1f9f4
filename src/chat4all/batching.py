"""Group commit: callers submit one item each; what arrives while a flush is in flight goes
together in the next one.

Under load this turns per-item round trips (a transaction, a produce request) into one per
batch without adding a timer: an idle system flushes at once, a busy one batches by itself.
Each caller gets the result of its own item, or the exception of the flush that carried it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self, flush: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, max_batch: int = 1000, linger_s: float = 0.0
    ) -> None:
        """``flush`` takes a batch and returns one result per item, in order. ``linger_s`` lets a
        flush wait that long for company: for work where a few ms matter less than the cost of
        a transaction per item."""
        self._flush = flush
        self._max_batch = max_batch
        self._linger_s = linger_s
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None or self._drainer.done():
            # a task of its own, so that a caller that goes away does not strand the others
            self._drainer = asyncio.create_task(self._drain(), name="group-commit")
        # shielded: a cancelled caller stops waiting, its item is still written with the batch
        return await asyncio.shield(future)

    async def wait_idle(self) -> None:
        """Returns once everything submitted so far has been flushed."""
        while self._drainer is not None and not self._drainer.done():
            await asyncio.shield(self._drainer)

    async def _drain(self) -> None:
        while self._pending:
            if self._linger_s and len(self._pending) < self._max_batch:
                await asyncio.sleep(self._linger_s)
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:  # noqa: BLE001 - whatever failed the flush fails each caller
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
