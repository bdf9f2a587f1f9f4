"""The consume loop every worker shares: poll a batch, handle it, then commit its offsets.

A batch that fails is retried with backoff and never committed before it succeeds, so a crash
at any point means a replay of that batch, which handlers make harmless (idempotent writes).
Stopping lets the batch in hand finish and commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.ports import LogConsumer, LogRecord

log = get_logger(__name__)
LAG_EVERY_S = 5.0


class Worker:
    name = "worker"

    def __init__(self, consumer: LogConsumer, *, batch_size: int, poll_timeout_s: float = 1.0) -> None:
        self._consumer = consumer
        self._batch_size = batch_size
        self._poll_timeout_s = poll_timeout_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # a batch is in hand (between poll and commit)
        self._next_lag_report = 0.0

    async def handle(self, records: Sequence[LogRecord]) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self.run(), name=f"worker-{self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            if not self._busy:
                self._task.cancel()  # idle in poll: nothing to finish
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._consumer.stop()

    async def run(self) -> None:
        while not self._stopping.is_set():
            records = await self._consumer.poll(max_records=self._batch_size, timeout_s=self._poll_timeout_s)
            await self._report_lag()
            if not records:
                continue
            self._busy = True
            try:
                await self._handle_until_done(records)
                await self._commit(records)
            finally:
                self._busy = False

    async def _report_lag(self) -> None:
        """chat4all_consumer_lag, at most every LAG_EVERY_S (on the SQL log it is a query)."""
        now = time.monotonic()
        if now < self._next_lag_report:
            return
        self._next_lag_report = now + LAG_EVERY_S
        try:
            lag = await self._consumer.lag()
        except Exception:  # a gauge must never stop the work
            log.debug("consumer lag not measured", worker=self.name, exc_info=True)
            return
        if lag is not None:
            metrics.CONSUMER_LAG.labels(self.name, self._consumer.topic).set(lag)

    async def _commit(self, records: Sequence[LogRecord]) -> None:
        try:
            await self._consumer.commit(records)
        except Exception:
            # e.g. the partitions moved to another worker in a rebalance: it replays the batch,
            # which the handlers make harmless
            metrics.WORKER_ERRORS.labels(self.name).inc()
            log.warning("offset commit refused; the batch will be replayed", worker=self.name, exc_info=True)

    async def _handle_until_done(self, records: Sequence[LogRecord]) -> None:
        delay = 0.1
        while True:
            try:
                await self.handle(records)
                return
            except Exception:
                metrics.WORKER_ERRORS.labels(self.name).inc()
                log.exception("batch failed, retrying", worker=self.name, records=len(records), retry_in_s=delay)
            # the batch stays in hand until it succeeds; offsets are not committed meanwhile
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                raise asyncio.CancelledError  # leave the batch uncommitted: the next start replays it
            delay = min(delay * 2, 5.0)
