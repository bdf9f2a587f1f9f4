"""`chat4all demo chat|channels|offline` end to end, each against a server process it starts,
and a failed check that stops a demo loudly."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chat4all.demos.narrate import DemoFailed, Narrator

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("demo", "must_say"),
    [
        ("chat", ["its history is SENT → DELIVERED → READ", "the history has both, once each, in order"]),
        ("channels", ["WhatsApp and Instagram each report DELIVERED then READ", "in the same conversation"]),
        ("offline", ["the socket pushes all 5 first, in the order sent", "nothing acknowledged is pushed again"]),
    ],
)
def test_each_demo_runs_as_a_person_would_run_it(demo: str, must_say: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "chat4all", "demo", demo], capture_output=True, text=True, timeout=170
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for line in must_say:
        assert line in run.stdout, run.stdout
    assert "✗" not in run.stdout and f"{demo} demo:" in run.stdout


def test_a_failed_check_stops_the_demo_and_says_what_failed() -> None:
    lines: list[str] = []
    narrator = Narrator(lines.append)
    narrator.check(True, "this holds")
    with pytest.raises(DemoFailed, match="the tick is READ 'SENT'"):
        narrator.check(False, "the tick is READ", "'SENT'")
    assert lines == ["  ✓ this holds", "  ✗ FAILED: the tick is READ 'SENT'"]


def test_a_demo_against_a_server_that_is_not_there_fails_with_exit_1() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "chat4all", "demo", "chat", "--url", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1 and "demo FAILED: the server could not be reached" in run.stderr, run.stderr
