"""The bench finds the engines' processes from services.sh's pid files, PostgreSQL's backends
with them (processes made here stand in for the engines: named so, they are only sleeps)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chat4all.bench.stack import _children, engine_cpu_s, engine_pids


@pytest.fixture
def postmaster() -> Iterator[subprocess.Popen[bytes]]:
    """A process named ``postgres`` with two children, as a postmaster with its backends."""
    proc = subprocess.Popen(["bash", "-c", 'exec -a postgres bash -c "sleep 60 & sleep 60 & wait"'])
    try:
        deadline = time.monotonic() + 10
        while len(_children({proc.pid})) < 2:  # bash starts its two children
            assert time.monotonic() < deadline, "the stand-in postmaster did not start its children"
            time.sleep(0.01)
        yield proc
    finally:
        for child in _children({proc.pid}):
            subprocess.run(["kill", str(child)], check=False)
        proc.kill()
        proc.wait()


def test_postgres_is_its_postmaster_and_every_child_of_it(tmp_path: Path, postmaster: subprocess.Popen[bytes]) -> None:
    (tmp_path / "postgres" / "data").mkdir(parents=True)
    (tmp_path / "postgres" / "data" / "postmaster.pid").write_text(f"{postmaster.pid}\n/data\n")
    pids = engine_pids(tmp_path)["postgres"]
    assert pids[0] == postmaster.pid
    assert sorted(pids[1:]) == sorted(_children({postmaster.pid})) and len(pids) == 3
    assert engine_cpu_s(tmp_path)["postgres"] >= 0


def test_a_pid_file_naming_another_program_is_not_believed(tmp_path: Path, postmaster: subprocess.Popen[bytes]) -> None:
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "redis.pid").write_text(f"{postmaster.pid}\n")  # a stale file: the pid is not redis now
    assert postmaster.pid not in engine_pids(tmp_path).get("redis", [])
