"""The chaos suite's measures (tests/chaos/traffic.py) say what they claim."""

from __future__ import annotations

from tests.chaos.traffic import Accepted, Attempt, longest_outage, p99_recovery


def test_the_outage_is_the_longest_run_of_failures_of_one_client() -> None:
    attempts = [
        Attempt(0, 0.0, 0.1, True),
        Attempt(0, 1.0, 1.0, False),  # refused at once ...
        Attempt(0, 1.0, 4.0, True),  # ... and accepted, slowly, by the other node: not an outage
        Attempt(1, 2.0, 7.0, False),  # timed out after 5 s
        Attempt(1, 7.2, 7.2, False),
        Attempt(1, 7.4, 7.5, True),
        Attempt(2, 9.0, 9.5, False),  # a run the phase ended in
    ]
    assert longest_outage(attempts) == 5.2
    assert longest_outage([Attempt(0, 0.0, 0.1, True)]) == 0.0


def test_p99_is_back_when_every_later_second_is_under_the_bar() -> None:
    fast = [Accepted(t / 10, t / 10 + 0.05) for t in range(0, 200)]
    slow = [Accepted(12.0 + t / 10, 12.0 + t / 10 + 0.5) for t in range(0, 30)]  # seconds 2..4 after the fault
    assert p99_recovery(fast + slow, fault_at=10.0) == 5.0
    assert p99_recovery(fast, fault_at=10.0) == 0.0
