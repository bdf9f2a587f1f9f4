"""One attempt at an external delivery (R4.3, R14.4, R14.5): build what the connector needs,
send it through the channel's circuit breaker, and record the outcome.

- accepted → the delivery leaves the queue (DELIVERED at once if the provider confirms it,
  else SENT until a receipt comes through the webhook); the provider's ids are kept so that
  replies find their conversation;
- transient failure (5xx, timeout, throttled, breaker open) → due again after the backoff
  (1, 2, 4, 8 s with jitter, or the provider's retry-after), the reason in the delivery's
  ``error``;
- permanent failure, or the last attempt failed → FAILED with the reason, and a DeadLetter on
  the dead-letter topic (appended first: a crash in between repeats it, never loses it).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import timedelta

from opentelemetry.trace import SpanKind, StatusCode

from chat4all.connectors.base import (
    ConnectorError,
    DeliveryResult,
    OutboundFile,
    OutboundMessage,
    PermanentError,
    RateLimited,
    TransientError,
)
from chat4all.connectors.hub import LiveConnector
from chat4all.connectors.resilience import RetryPolicy
from chat4all.domain.clock import Clock, system_clock
from chat4all.domain.connectors import DeadLetter
from chat4all.domain.files import FileStatus
from chat4all.observability import metrics
from chat4all.observability.logging import get_logger
from chat4all.observability.tracing import current_traceparent, end_span, start_span, traceparent_of
from chat4all.ports import (
    BlobStore,
    ClaimedDelivery,
    ConnectorLink,
    EventLog,
    FileStore,
    MetadataStore,
)
from chat4all.services.deliveries import DeliveryService

log = get_logger(__name__)


class CircuitOpen(TransientError):
    """Refused without calling the provider: its breaker is open."""


@dataclass(frozen=True, slots=True)
class ConnectorSendRules:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    download_url_ttl_s: float = 3600.0


class ConnectorSender:
    def __init__(
        self,
        *,
        metadata: MetadataStore,
        deliveries: DeliveryService,
        log: EventLog,
        files: FileStore | None = None,
        blobs: BlobStore | None = None,
        rules: ConnectorSendRules | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self._metadata = metadata
        self._deliveries = deliveries
        self._log = log
        self._files = files
        self._blobs = blobs
        self._rules = rules or ConnectorSendRules()

    async def deliver(self, claimed: ClaimedDelivery, live: LiveConnector) -> None:
        """One attempt. With tracing on it is a CLIENT span, child of the router's span for the
        message (kept in the delivery row); the status changes it records carry this span."""
        key = claimed.key
        span = start_span(
            f"send {key.channel}",
            parent=claimed.traceparent,
            kind=SpanKind.CLIENT,
            attributes={
                "messaging.message.id": key.message_id,
                "chat4all.channel": key.channel,
                "chat4all.recipient": key.username,
                "chat4all.attempt": claimed.attempts + 1,
            },
        )
        token = current_traceparent.set(claimed.traceparent if span is None else traceparent_of(span))
        try:
            outcome = await self._attempt(claimed, live)
        except BaseException as exc:
            end_span(span, exc)
            raise
        finally:
            current_traceparent.reset(token)
        if span is not None:
            span.set_attribute("chat4all.outcome", outcome)
            if outcome != "sent":
                span.set_status(StatusCode.ERROR, outcome)
        end_span(span)

    async def _attempt(self, claimed: ClaimedDelivery, live: LiveConnector) -> str:
        attempt = claimed.attempts + 1
        try:
            outbound = await self._outbound(claimed, live, attempt)
        except PermanentError as exc:
            await self._give_up(claimed, attempts=attempt, reason=exc.reason, permanent=True)
            return "failed"
        except Exception as exc:  # noqa: BLE001 - e.g. the metadata or blob store is down: try again later
            await self._failed(claimed, attempt, TransientError(f"preparing the message failed: {exc}"), live)
            return "retry"
        result, error = await self._send(live, outbound)
        if error is None:
            assert result is not None
            await self._accepted(claimed, outbound, attempt, result)
            return "sent"
        if error.permanent:
            await self._give_up(claimed, attempts=attempt, reason=error.reason, permanent=True)
            return "failed"
        await self._failed(claimed, attempt, error, live)
        return "retry"

    async def reject(self, claimed: ClaimedDelivery, reason: str) -> None:
        """No connector can take it (the channel is not configured, disabled or broken)."""
        await self._give_up(claimed, attempts=claimed.attempts, reason=reason, permanent=True)

    # building --------------------------------------------------------------------------------

    async def _outbound(self, claimed: ClaimedDelivery, live: LiveConnector, attempt: int) -> OutboundMessage:
        m, key = claimed.message, claimed.key
        external_id = (await self._metadata.get_channels(key.username)).get(key.channel)
        if not external_id:
            raise PermanentError(f"{key.username} has no {key.channel} identity mapped")
        text: str | None = None
        file: OutboundFile | None = None
        if m.payload.get("type") == "text":
            text = str(m.payload.get("text", ""))
        elif m.payload.get("type") == "file":
            caption = m.payload.get("caption")
            file = await self._file(str(m.payload.get("file_id", "")))
            limit = live.connector.capabilities.max_file_bytes
            if limit is None or file.size > limit:
                # beyond what the channel takes: a download link instead (valid for the URL's lifetime)
                text = link_text(caption, file)
                file = None
            else:
                text = caption
        else:
            raise PermanentError(f"payload type {m.payload.get('type')!r} cannot be sent to {key.channel}")
        return OutboundMessage(
            message_id=m.message_id,
            conversation_id=m.conversation_id,
            sequence_number=m.sequence_number,
            sender=m.sender,
            recipient=key.username,
            external_id=external_id,
            text=text,
            file=file,
            metadata=m.metadata,
            created_at=m.created_at,
            attempt=attempt,
        )

    async def _file(self, file_id: str) -> OutboundFile:
        record = await self._files.get_file(file_id) if self._files is not None else None
        if record is None or record.status is not FileStatus.COMPLETED or self._blobs is None:
            raise PermanentError("the file is no longer available")
        expires_at = self._clock() + timedelta(seconds=self._rules.download_url_ttl_s)
        url = await self._blobs.download_url(
            record.storage_key, filename=record.filename, content_type=record.content_type, expires_at=expires_at
        )
        return OutboundFile(
            file_id=record.file_id,
            filename=record.filename,
            size=record.size,
            content_type=record.content_type,
            url=url,
            url_expires_at=expires_at,
            sha256=record.sha256,
        )

    # sending ---------------------------------------------------------------------------------

    async def _send(
        self, live: LiveConnector, outbound: OutboundMessage
    ) -> tuple[DeliveryResult | None, ConnectorError | None]:
        channel, breaker = live.channel, live.breaker
        if not breaker.allow():
            metrics.CONNECTOR_ATTEMPTS.labels(channel, "circuit_open").inc()
            metrics.CONNECTOR_ERRORS.labels(channel).inc()
            return None, CircuitOpen(f"the {channel} circuit breaker is open (last error: {breaker.last_error})")
        timeout_s = live.config.limits.send_timeout_s
        started = time.perf_counter()
        error: ConnectorError | None = None
        result: DeliveryResult | None = None
        try:
            async with asyncio.timeout(timeout_s):
                await live.ensure_connected()
                send = live.connector.send_file if outbound.file is not None else live.connector.send_message
                result = await send(outbound)
        except ConnectorError as exc:
            error = exc
        except TimeoutError:
            error = TransientError(f"{channel}: no answer within {timeout_s:g} s")
        except Exception as exc:  # a connector's bug is the provider's failure, not the dispatcher's
            log.exception("connector raised", channel=channel, message_id=outbound.message_id)
            error = TransientError(f"{channel} connector error: {type(exc).__name__}: {exc}")
        metrics.CONNECTOR_LATENCY.labels(channel).observe(time.perf_counter() - started)
        if error is None:
            breaker.success()
            metrics.CONNECTOR_ATTEMPTS.labels(channel, "ok").inc()
            return result, None
        metrics.CONNECTOR_ERRORS.labels(channel).inc()
        if error.permanent:
            breaker.success()  # the provider answered: it is up, the request was wrong
            metrics.CONNECTOR_ATTEMPTS.labels(channel, "permanent").inc()
        elif isinstance(error, RateLimited):
            breaker.neutral()
            metrics.CONNECTOR_ATTEMPTS.labels(channel, "rate_limited").inc()
        else:
            breaker.failure(error.reason)
            metrics.CONNECTOR_ATTEMPTS.labels(channel, "transient").inc()
        return None, error

    # recording -------------------------------------------------------------------------------

    async def _accepted(
        self, claimed: ClaimedDelivery, outbound: OutboundMessage, attempt: int, result: DeliveryResult
    ) -> None:
        m, key = claimed.message, claimed.key
        now = self._clock()
        links = [
            ConnectorLink(
                channel=key.channel,
                external_id=outbound.external_id,
                provider_message_id=pid,
                message_id=m.message_id,
                conversation_id=m.conversation_id,
                username=key.username,
                created_at=now,
            )
            for pid in result.provider_message_ids
        ]
        await self._deliveries.handed_over(
            key, attempts=attempt, links=links, delivered=result.delivered, detail=result.detail
        )
        log.info("sent to an external channel", channel=key.channel, message_id=m.message_id, attempt=attempt)

    async def _failed(self, claimed: ClaimedDelivery, attempt: int, error: ConnectorError, live: LiveConnector) -> None:
        policy = self._rules.retry
        delay = policy.next_delay_s(attempt, retry_after_s=error.retry_after_s)
        if delay is None:
            reason = f"gave up after {attempt} attempts: {error.reason}"
            await self._give_up(claimed, attempts=attempt, reason=reason, permanent=False)
            return
        if isinstance(error, CircuitOpen):  # no use trying before the breaker lets a probe through
            delay = max(delay, live.breaker.retry_in_s())
        await self._deliveries.retry_later(
            claimed.key,
            attempts=attempt,
            at=self._clock() + timedelta(seconds=delay),
            error=f"attempt {attempt} of {policy.max_attempts} failed: {error.reason}; next in {delay:.1f} s",
        )
        log.info(
            "external delivery will be retried",
            channel=claimed.key.channel,
            message_id=claimed.message.message_id,
            attempt=attempt,
            retry_in_s=round(delay, 3),
            error=error.reason,
        )

    async def _give_up(self, claimed: ClaimedDelivery, *, attempts: int, reason: str, permanent: bool) -> None:
        m, key = claimed.message, claimed.key
        now = self._clock()
        letter = DeadLetter(
            message_id=m.message_id,
            conversation_id=m.conversation_id,
            sender=m.sender,
            username=key.username,
            channel=key.channel,
            attempts=attempts,
            permanent=permanent,
            reason=reason,
            failed_at=now,
        )
        await self._log.append(DeadLetter.topic, letter.key(), letter.encode())
        await self._deliveries.give_up(key, attempts=attempts, reason=reason)
        metrics.CONNECTOR_DEAD_LETTERS.labels(key.channel).inc()
        log.warning(
            "external delivery failed; sent to the dead-letter queue",
            channel=key.channel,
            message_id=m.message_id,
            username=key.username,
            attempts=attempts,
            permanent=permanent,
            reason=reason,
        )


def link_text(caption: str | None, file: OutboundFile) -> str:
    line = f"{file.filename} ({_size(file.size)}): {file.url}"
    return f"{caption}\n{line}" if caption else line


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
