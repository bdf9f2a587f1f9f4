"""`chat4all bench` refuses a spike it could not run before it starts anything."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from chat4all.cli import app


@pytest.mark.parametrize(
    "spike",
    [
        ["--spike-rate", "10", "--spike-at", "25", "--spike-duration", "10"],  # ends after the load
        ["--spike-rate", "10", "--spike-at", "5"],  # no duration
    ],
)
def test_a_spike_that_does_not_fit_the_load_is_refused(spike: list[str]) -> None:
    result = CliRunner().invoke(app, ["bench", "--duration", "30", *spike])
    assert result.exit_code == 2
    assert "must end within --duration" in " ".join(result.output.replace("│", " ").split())  # rich wraps it in a box


def test_a_negative_warm_up_is_refused() -> None:
    result = CliRunner().invoke(app, ["bench", "--warmup", "-1"])
    assert result.exit_code == 2 and "--warmup" in result.output


def test_a_server_python_that_does_not_exist_is_refused() -> None:
    result = CliRunner().invoke(app, ["bench", "--server-python", "/nonexistent/python"])
    assert result.exit_code == 2 and "no such interpreter" in " ".join(result.output.replace("│", " ").split())


def test_the_servers_run_on_the_python_given(monkeypatch: pytest.MonkeyPatch) -> None:
    from chat4all.bench import stack

    monkeypatch.delenv("CHAT4ALL_BENCH_SERVER_PYTHON", raising=False)
    assert stack.server_python() == sys.executable
    monkeypatch.setenv("CHAT4ALL_BENCH_SERVER_PYTHON", "/other/venv/bin/python")
    assert stack.server_python() == "/other/venv/bin/python"
