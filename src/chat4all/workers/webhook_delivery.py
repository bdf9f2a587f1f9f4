"""Webhook delivery: POSTs the outbox's due callbacks, signed, and records every attempt.

The loop claims due callbacks (at most one per webhook and subject at a time, so callbacks
about one message keep their order), delivers up to ``max_in_flight`` at once, and records each
attempt: delivered on a 2xx; otherwise retried after base, 2×base, 4×base … up to
``max_retries`` times, then failed. A webhook whose callbacks failed ``disable_after`` times in
a row is disabled and its pending callbacks cancelled. The state is in the outbox rows: a
worker that dies holding a claim leaves it to lapse (or released at its next start), and the
callback goes out again with the same event_id — at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta

from chat4all.domain.errors import Unavailable
from chat4all.domain.ids import utcnow
from chat4all.domain.webhooks import (
    EVENT_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    Webhook,
    retry_delay_s,
    sign,
)
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.ports import (
    Attempt,
    CallbackTransport,
    ClaimedCallback,
    WebhookOutbox,
    WebhookRegistry,
)

log = get_logger(__name__)
ATTEMPT_HEADER = "Chat4All-Delivery-Attempt"
PRUNE_EVERY_S = 600.0


@dataclass(frozen=True, slots=True)
class DeliveryRules:
    timeout_s: float = 5.0
    max_retries: int = 3
    retry_base_s: float = 1.0
    disable_after: int = 20
    poll_interval_s: float = 0.5
    max_in_flight: int = 32
    claim_ttl_s: float = 30.0
    retention_s: float = 7 * 24 * 3600


class WebhookDispatcher:
    """Started and stopped by the runtime; ``wake()`` says new callbacks are due."""

    def __init__(
        self,
        *,
        outbox: WebhookOutbox,
        registry: WebhookRegistry,
        transport: CallbackTransport,
        node_id: str,
        rules: DeliveryRules,
        release_all_claims_on_start: bool = False,
    ) -> None:
        self._outbox = outbox
        self._registry = registry
        self._transport = transport
        self._node_id = node_id
        self._rules = rules
        # only when this is the one delivery worker there is (the embedded profile)
        self._release_all = release_all_claims_on_start
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._next_prune = 0.0

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self._transport.start()
        released = await self._outbox.release(claimer=None if self._release_all else self._node_id, now=utcnow())
        if released:
            log.info("webhook callbacks held before a restart are due again", count=released)
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def close(self) -> None:
        """Stops claiming, lets the attempts in flight finish (bounded by the timeout), then stops."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:
            _, late = await asyncio.wait(self._in_flight, timeout=self._rules.timeout_s + 1)
            for task in late:  # their claims lapse, or are released at the next start
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._transport.close()

    async def ping(self) -> None:
        if self._task is None or self._task.done():
            raise Unavailable("webhook delivery is not running")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            free = self._rules.max_in_flight - len(self._in_flight)
            claimed: list[ClaimedCallback] = []
            try:
                if free > 0:
                    claimed = await self._outbox.claim(
                        now=utcnow(), limit=free, claimer=self._node_id, lease_s=self._rules.claim_ttl_s
                    )
                    await self._dispatch(claimed)
                await self._prune_now_and_then()
            except Exception:
                metrics.WORKER_ERRORS.labels("webhook-delivery").inc()
                log.exception("webhook delivery round failed; retrying")
            if claimed and len(claimed) == free:
                continue  # more may be due
            await self._idle()

    async def _idle(self) -> None:
        """Until woken (new callbacks, a delivery finished) or the poll interval passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._rules.poll_interval_s)

    async def _dispatch(self, claimed: list[ClaimedCallback]) -> None:
        if not claimed:
            return
        keys = sorted({(c.owner, c.webhook_id) for c in claimed})
        found = await asyncio.gather(*(self._registry.get(owner, webhook_id) for owner, webhook_id in keys))
        webhooks = dict(zip(keys, found, strict=True))
        for callback in claimed:
            task = asyncio.create_task(self._deliver(callback, webhooks[(callback.owner, callback.webhook_id)]))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, callback: ClaimedCallback, webhook: Webhook | None) -> None:
        try:
            if webhook is None:  # deleted after the callback was enqueued
                await self._outbox.forget(callback.webhook_id)
                return
            if not webhook.active:
                cancelled = await self._outbox.cancel(webhook.webhook_id, reason="the webhook is disabled", now=utcnow())
                metrics.WEBHOOK_CALLBACKS.labels("cancelled").inc(cancelled)
                return
            attempt = await self._attempt(callback, webhook)
            await self._record(callback, webhook, attempt)
        except Exception:
            # the claim lapses after claim_ttl_s and the callback is tried again
            metrics.WORKER_ERRORS.labels("webhook-delivery").inc()
            log.exception("webhook delivery failed", webhook_id=callback.webhook_id, event_id=callback.event_id)
        finally:
            self._wake.set()  # a slot is free, and the next callback of this subject may be due

    async def _attempt(self, callback: ClaimedCallback, webhook: Webhook) -> Attempt:
        number = callback.attempts + 1
        headers = {
            SIGNATURE_HEADER: sign(webhook.secret, callback.body, timestamp=int(time.time())),
            EVENT_ID_HEADER: callback.event_id,
            EVENT_TYPE_HEADER: callback.type,
            ATTEMPT_HEADER: str(number),
        }
        at = utcnow()
        started = time.perf_counter()
        status_code, error = await self._transport.post(
            webhook.url, body=callback.body, headers=headers, timeout_s=self._rules.timeout_s
        )
        latency = time.perf_counter() - started
        metrics.WEBHOOK_LATENCY.observe(latency)
        metrics.WEBHOOK_ATTEMPTS.labels(f"{status_code // 100}xx" if status_code else "error").inc()
        return Attempt(attempt=number, at=at, status_code=status_code, latency_ms=round(latency * 1000), error=error)

    async def _record(self, callback: ClaimedCallback, webhook: Webhook, attempt: Attempt) -> None:
        now = utcnow()
        retry_at = None
        if not attempt.ok and attempt.attempt <= self._rules.max_retries:
            retry_at = now + timedelta(seconds=retry_delay_s(attempt.attempt, base_s=self._rules.retry_base_s))
        streak = await self._outbox.record(callback, attempt, retry_at=retry_at, now=now)
        if attempt.ok:
            metrics.WEBHOOK_CALLBACKS.labels("delivered").inc()
            return
        if retry_at is not None:
            return
        metrics.WEBHOOK_CALLBACKS.labels("failed").inc()
        log.warning(
            "webhook callback failed after every attempt",
            webhook_id=webhook.webhook_id,
            event_id=callback.event_id,
            attempts=attempt.attempt,
            error=attempt.error or f"HTTP {attempt.status_code}",
            streak=streak,
        )
        if streak >= self._rules.disable_after:
            await self._disable(webhook, streak, attempt)

    async def _disable(self, webhook: Webhook, streak: int, attempt: Attempt) -> None:
        last = attempt.error or f"HTTP {attempt.status_code}"
        reason = f"disabled after {streak} consecutive failed callbacks (last: {last})"
        if await self._registry.disable(webhook.owner, webhook.webhook_id, reason=reason, at=utcnow()):
            log.warning("webhook disabled", webhook_id=webhook.webhook_id, owner=webhook.owner, reason=reason)
        cancelled = await self._outbox.cancel(webhook.webhook_id, reason="the webhook was disabled", now=utcnow())
        metrics.WEBHOOK_CALLBACKS.labels("cancelled").inc(cancelled)

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        pruned = await self._outbox.prune(finished_before=utcnow() - timedelta(seconds=self._rules.retention_s))
        if pruned:
            log.info("finished webhook callbacks pruned", count=pruned)
