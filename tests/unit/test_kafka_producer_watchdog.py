"""The Kafka producer bridge bounds every append without a timer per call: librdkafka reports a
record it could not write within its message timeout, and a watchdog fails what is still
unanswered a second after that, so a stalled report thread cannot hang a caller. No broker:
nothing listens on the bootstrap address, and the report thread is stopped."""

from __future__ import annotations

import asyncio

import pytest

from chat4all.adapters.kafka import _Producer


async def test_a_record_without_a_delivery_report_fails_with_a_timeout_after_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    producer = _Producer(
        {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 60_000}, loop, timeout_s=0.5
    )
    producer._polling = False  # no delivery reports are served any more
    await asyncio.to_thread(producer._thread.join)
    started = loop.time()
    future = producer.produce("t", b"k", b"v")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(future, timeout=10)
    waited = loop.time() - started
    assert 1.5 <= waited < 4.0  # the deadline (0.5 s + 1 s), found by a check every second
    producer._watchdog.cancel()


async def test_answered_records_leave_the_watchdog_and_later_ones_are_still_watched() -> None:
    loop = asyncio.get_running_loop()
    producer = _Producer({"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 60_000}, loop, timeout_s=0.2)
    producer._polling = False
    await asyncio.to_thread(producer._thread.join)
    answered = producer.produce("t", b"k", b"v1")
    answered.set_result(None)  # as a delivery report would
    pending = producer.produce("t", b"k", b"v2")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pending, timeout=10)
    assert answered.result() is None and not producer._unanswered
    producer._watchdog.cancel()
