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
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry.trace import SpanKind, StatusCode

from chat4all.domain.clock import Clock, system_clock
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
from chat4all.observability.tracing import end_span, start_span, traceparent_of
from chat4all.ports import (
    Attempt,
    CallbackTransport,
    ClaimedCallback,
    WebhookOutbox,
    WebhookRegistry,
)
from chat4all.workers.claim_loop import ClaimLoop

log = get_logger(__name__)
ATTEMPT_HEADER = "Chat4All-Delivery-Attempt"
PRUNE_EVERY_S = 600.0


@dataclass(frozen=True, slots=True)
class CallbackRules:
    timeout_s: float = 5.0
    max_retries: int = 3
    retry_base_s: float = 1.0
    disable_after: int = 20
    poll_interval_s: float = 0.5
    max_in_flight: int = 32
    claim_ttl_s: float = 30.0
    retention_s: float = 7 * 24 * 3600


class CallbackDispatcher(ClaimLoop):
    """Started and stopped by the runtime; ``wake()`` says new callbacks are due."""

    name = "webhook-delivery"

    def __init__(
        self,
        *,
        outbox: WebhookOutbox,
        registry: WebhookRegistry,
        transport: CallbackTransport,
        node_id: str,
        rules: CallbackRules,
        release_all_claims_on_start: bool = False,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(
            node_id=node_id,
            poll_interval_s=rules.poll_interval_s,
            release_all_claims_on_start=release_all_claims_on_start,
            clock=clock,
        )
        self._outbox = outbox
        self._registry = registry
        self._transport = transport
        self._rules = rules
        self._next_prune = 0.0

    async def start(self) -> None:
        await self._transport.start()
        await super().start()

    async def close(self) -> None:
        await super().close()
        await self._transport.close()

    async def _release(self, *, claimer: str | None, now: datetime) -> int:
        return await self._outbox.release(claimer=claimer, now=now)

    def _work_timeout_s(self) -> float:
        return self._rules.timeout_s

    async def _round(self) -> bool:
        free = self._rules.max_in_flight - len(self._in_flight)
        claimed: list[ClaimedCallback] = []
        if free > 0:  # else a delivery that finishes wakes the loop
            claimed = await self._outbox.claim(
                now=self._clock(), limit=free, claimer=self._node_id, lease_s=self._rules.claim_ttl_s
            )
            await self._dispatch(claimed)
        await self._prune_now_and_then()
        return bool(claimed) and len(claimed) == free

    async def _dispatch(self, claimed: list[ClaimedCallback]) -> None:
        if not claimed:
            return
        keys = sorted({(c.owner, c.webhook_id) for c in claimed})
        found = await asyncio.gather(*(self._registry.get(owner, webhook_id) for owner, webhook_id in keys))
        webhooks = dict(zip(keys, found, strict=True))
        for callback in claimed:
            self._start(
                self._deliver(callback, webhooks[(callback.owner, callback.webhook_id)]),
                webhook_id=callback.webhook_id,
                event_id=callback.event_id,
            )

    async def _deliver(self, callback: ClaimedCallback, webhook: Webhook | None) -> None:
        if webhook is None:  # deleted after the callback was enqueued
            await self._outbox.forget(callback.webhook_id)
            return
        if not webhook.active:
            cancelled = await self._outbox.cancel(webhook.webhook_id, reason="the webhook is disabled", now=self._clock())
            metrics.WEBHOOK_CALLBACKS.labels("cancelled").inc(cancelled)
            return
        attempt = await self._attempt(callback, webhook)
        await self._record(callback, webhook, attempt)

    async def _attempt(self, callback: ClaimedCallback, webhook: Webhook) -> Attempt:
        number = callback.attempts + 1
        headers = {
            SIGNATURE_HEADER: sign(webhook.secret, callback.body, timestamp=int(self._clock().timestamp())),
            EVENT_ID_HEADER: callback.event_id,
            EVENT_TYPE_HEADER: callback.type,
            ATTEMPT_HEADER: str(number),
        }
        # with tracing on, a CLIENT span in the trace of the event it reports (kept in the outbox
        # row); the receiver gets it as its traceparent, so its own spans can join too
        span = start_span(
            f"webhook {callback.type}",
            parent=callback.traceparent,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": "POST",
                "chat4all.webhook_id": callback.webhook_id,
                "chat4all.event_id": callback.event_id,
                "chat4all.attempt": number,
            },
        )
        if span is not None:
            headers["traceparent"] = traceparent_of(span)
        at = self._clock()
        started = time.perf_counter()
        try:
            status_code, error = await self._transport.post(
                webhook.url, body=callback.body, headers=headers, timeout_s=self._rules.timeout_s
            )
        except BaseException as exc:
            end_span(span, exc)
            raise
        if span is not None:
            if status_code:
                span.set_attribute("http.response.status_code", status_code)
            if error or not (status_code and 200 <= status_code < 300):
                span.set_status(StatusCode.ERROR, error or f"HTTP {status_code}")
        end_span(span)
        latency = time.perf_counter() - started
        metrics.WEBHOOK_LATENCY.observe(latency)
        metrics.WEBHOOK_ATTEMPTS.labels(f"{status_code // 100}xx" if status_code else "error").inc()
        return Attempt(attempt=number, at=at, status_code=status_code, latency_ms=round(latency * 1000), error=error)

    async def _record(self, callback: ClaimedCallback, webhook: Webhook, attempt: Attempt) -> None:
        now = self._clock()
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
        if await self._registry.disable(webhook.owner, webhook.webhook_id, reason=reason, at=self._clock()):
            log.warning("webhook disabled", webhook_id=webhook.webhook_id, owner=webhook.owner, reason=reason)
        cancelled = await self._outbox.cancel(webhook.webhook_id, reason="the webhook was disabled", now=self._clock())
        metrics.WEBHOOK_CALLBACKS.labels("cancelled").inc(cancelled)

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        pruned = await self._outbox.prune(finished_before=self._clock() - timedelta(seconds=self._rules.retention_s))
        if pruned:
            log.info("finished webhook callbacks pruned", count=pruned)
