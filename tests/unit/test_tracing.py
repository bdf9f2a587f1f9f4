"""W3C trace context: continue a valid incoming trace, start a new one otherwise (R13.2)."""

from __future__ import annotations

import re

import pytest

from chat4all.observability.tracing import continue_trace, new_traceparent, trace_id_of

TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-01$")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


def parts(traceparent: str) -> tuple[str, str]:
    match = TRACEPARENT.match(traceparent)
    assert match, f"not a valid traceparent: {traceparent!r}"
    return match.group(1), match.group(2)


@pytest.mark.parametrize("header", [VALID, f"00-{TRACE_ID}-{SPAN_ID}-00"])
def test_a_valid_header_keeps_its_trace_id_under_a_new_span(header: str) -> None:
    trace_id, span_id = parts(continue_trace(header))

    assert trace_id == TRACE_ID
    assert span_id != SPAN_ID


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",  # trace id too short
        f"00-{TRACE_ID}-{SPAN_ID}",  # no flags
        f"00-{TRACE_ID.replace('4', 'g')}-{SPAN_ID}-01",  # not hex
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
    ],
)
def test_an_invalid_header_starts_a_new_trace(header: str | None) -> None:
    trace_id, _ = parts(continue_trace(header))

    assert trace_id != TRACE_ID
    assert trace_id != "0" * 32


def test_new_traces_are_distinct() -> None:
    assert len({parts(continue_trace("garbage"))[0] for _ in range(50)}) == 50


def test_trace_id_of_reads_the_trace_id_back() -> None:
    assert trace_id_of(new_traceparent(TRACE_ID)) == TRACE_ID
    assert trace_id_of(continue_trace(VALID)) == TRACE_ID
    assert trace_id_of("garbage") is None
    assert trace_id_of(None) is None
