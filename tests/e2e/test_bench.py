"""`chat4all bench` runs end to end and reports what it promises (a short run, so it cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_a_short_embedded_bench_reports_no_loss_and_writes_its_chart(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "chat4all", "bench", "--profile", "embedded", "--rate", "50", "--duration", "3",
         "--conversations", "10", "--recipients", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    for key in ("rate_target", "sent", "accepted", "delivered", "throughput_per_s", "accept_ms", "e2e_ms", "lost",
                "duplicates", "order_violations", "server_cpu_s", "server_peak_rss_mb"):
        assert key in result, key
    assert result["sent"] == result["accepted"] == 150
    assert result["delivered"] == 300  # two recipients each
    assert (result["lost"], result["duplicates"], result["order_violations"]) == (0, 0, 0)
    assert result["lost_sample"] == [] and result["sockets_closed"] == []
    assert set(result["accept_ms"]) == {"p50", "p90", "p99", "max"}
    assert result["server_cpu_s"] > 0 and result["server_peak_rss_mb"] > 0
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
