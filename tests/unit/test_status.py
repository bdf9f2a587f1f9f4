"""The delivery status rules (R6.1–R6.3): statuses only move forward."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat4all.domain.status import TERMINAL, DeliveryStatus, aggregate, can_move, lower_statuses, steps_to

SENT, DELIVERED, READ, FAILED = (
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
)
ALL = list(DeliveryStatus)
# the order a delivery goes through; FAILED sits apart (reachable from SENT only)
RANK = {SENT: 0, DELIVERED: 1, READ: 2, FAILED: 3}

# every (current, new) pair and whether the move is allowed
ALLOWED = {
    (SENT, DELIVERED),
    (SENT, READ),
    (SENT, FAILED),
    (DELIVERED, READ),
}


@pytest.mark.parametrize("current", ALL)
@pytest.mark.parametrize("new", ALL)
def test_can_move_allows_exactly_the_forward_steps(current: DeliveryStatus, new: DeliveryStatus) -> None:
    assert can_move(current, new) is ((current, new) in ALLOWED)


@pytest.mark.parametrize("status", ALL)
def test_no_status_moves_to_itself(status: DeliveryStatus) -> None:
    assert can_move(status, status) is False


@pytest.mark.parametrize("terminal", [READ, FAILED])
def test_read_and_failed_are_terminal(terminal: DeliveryStatus) -> None:
    assert terminal in TERMINAL
    assert not any(can_move(terminal, new) for new in ALL)


def test_a_delivered_message_cannot_fail_afterwards() -> None:
    assert can_move(DELIVERED, FAILED) is False


@pytest.mark.parametrize(
    ("current", "new", "steps"),
    [
        (SENT, DELIVERED, [DELIVERED]),
        (SENT, READ, [DELIVERED, READ]),  # a read implies the delivery
        (SENT, FAILED, [FAILED]),
        (DELIVERED, READ, [READ]),
        (DELIVERED, DELIVERED, []),
        (READ, DELIVERED, []),
        (READ, READ, []),
        (DELIVERED, FAILED, []),
        (FAILED, READ, []),
        (DELIVERED, SENT, []),
    ],
)
def test_steps_to_lists_the_statuses_recorded_by_a_move(
    current: DeliveryStatus, new: DeliveryStatus, steps: list[DeliveryStatus]
) -> None:
    assert steps_to(current, new) == steps


@pytest.mark.parametrize("new", ALL)
def test_lower_statuses_are_those_a_move_is_allowed_from(new: DeliveryStatus) -> None:
    assert set(lower_statuses(new)) == {current for current in ALL if (current, new) in ALLOWED}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([SENT], SENT),
        ([READ, DELIVERED, READ], DELIVERED),  # the least advanced
        ([READ, SENT], SENT),
        ([READ, READ], READ),
        ([READ, FAILED], READ),  # a failed channel does not hold the others back
        ([FAILED, DELIVERED, FAILED], DELIVERED),
        ([FAILED], FAILED),
        ([FAILED, FAILED], FAILED),  # every delivery failed
    ],
)
def test_aggregate_is_the_least_advanced_live_delivery(
    statuses: list[DeliveryStatus], expected: DeliveryStatus
) -> None:
    assert aggregate(statuses) is expected


def test_aggregate_accepts_any_iterable() -> None:
    assert aggregate(s for s in [DELIVERED, READ]) is DELIVERED


@given(start=st.sampled_from(ALL), attempts=st.lists(st.sampled_from(ALL), max_size=30))
def test_applying_any_sequence_of_moves_through_can_move_never_goes_back(
    start: DeliveryStatus, attempts: list[DeliveryStatus]
) -> None:
    current = start
    for new in attempts:
        before = current
        if can_move(current, new):
            current = new
        assert RANK[current] >= RANK[before]
        if before in TERMINAL:
            assert current is before
        # what a store records for the move ends where the move ends
        steps = steps_to(before, new)
        assert (steps[-1] if steps else before) is current
