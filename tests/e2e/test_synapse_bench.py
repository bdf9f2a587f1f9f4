"""scripts/synapse-bench.sh runs end to end: Synapse installed (once, from PyPI), started, the
bench's load measured against it, Synapse stopped, its database dropped. A tiny run, so that the
recipe of docs/performance.md ("Synapse on the same box") cannot rot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import server_missing

pytestmark = [pytest.mark.e2e, pytest.mark.synapse]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "synapse-bench.sh"


def _state_dir() -> Path:
    default = Path(os.environ.get("CHAT4ALL_SERVICES_DIR", ROOT / ".services")) / "synapse"
    return Path(os.environ.get("SYNAPSE_BENCH_DIR", default)).resolve()


def _env() -> dict[str, str]:
    return {**os.environ, "BENCH_PYTHON": sys.executable}


@pytest.fixture(scope="module")
def synapse_installed() -> None:
    done = subprocess.run([str(SCRIPT), "--install-only"], capture_output=True, text=True, timeout=900, env=_env())
    if done.returncode != 0:
        server_missing(f"matrix-synapse does not install here: {done.stderr[-1500:]}")


def _homeservers_running() -> list[int]:
    """Synapse processes started from this recipe's run directory."""
    config = str(_state_dir() / "run" / "homeserver.yaml").encode()
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and config in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _databases(prefix: str) -> list[str] | None:
    done = subprocess.run(
        ["psql", "-X", "-Atq", "-h", "127.0.0.1", "-p", "5432", "-U", "chat4all", "-d", "postgres",
         "-c", f"SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%'"],
        capture_output=True, text=True, env={**os.environ, "PGPASSWORD": "chat4all"}, timeout=30,
    )
    return done.stdout.split() if done.returncode == 0 else None


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_tiny_synapse_run_reports_every_message_once_in_order_and_leaves_nothing_running(
    synapse_installed: None, database: str, tmp_path: Path
) -> None:
    if database == "postgres" and _databases("synapse_bench_") is None:
        server_missing("PostgreSQL from scripts/services.sh is not reachable as chat4all")
    out = tmp_path / "synapse"
    args = [str(SCRIPT), "--rate", "5", "--duration", "3", "--rooms", "2", "--drain", "20", "--out", str(out)]
    done = subprocess.run(
        [*args, "--postgres"] if database == "postgres" else args, capture_output=True, text=True, timeout=300, env=_env()
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((out / "result.json").read_text())
    assert result["profile"] == "synapse" and f"({database}" in result["server"]
    assert (result["rate_target"], result["duration_s"], result["conversations"]) == (5, 3, 2)
    assert result["sent"] == result["accepted"] == 15 and result["answers"] == {"200": 15}
    assert result["delivered"] == 15  # one recipient per room, each message seen once in its /sync
    assert (result["lost"], result["duplicates"], result["order_violations"]) == (0, 0, 0)
    assert result["lost_sample"] == [] and result["sockets_closed"] == [] and result["sync_gaps"] == 0
    accept, e2e = result["accept_ms"], result["e2e_ms"]
    assert set(accept) == set(e2e) == {"p50", "p90", "p99", "max"}
    assert 0 < accept["p50"] <= accept["p99"] <= accept["max"]
    assert 0 < e2e["p50"] <= e2e["p99"] <= e2e["max"]
    assert result["server_cpu_s"] > 0 and result["server_peak_rss_mb"] > 0
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert _homeservers_running() == []
    if database == "postgres":
        name = result["server"].rsplit("database ", 1)[1].rstrip(")")
        assert _databases(name) == []
