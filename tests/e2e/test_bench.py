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
                "duplicates", "order_violations", "server_cpu_s", "server_peak_rss_mb", "windows", "cpu"):
        assert key in result, key
    assert result["sent"] == result["accepted"] == 150
    assert result["delivered"] == 300  # two recipients each
    assert (result["lost"], result["duplicates"], result["order_violations"]) == (0, 0, 0)
    assert result["lost_sample"] == [] and result["sockets_closed"] == []
    assert "warmup" not in result and "spike" not in result
    assert set(result["accept_ms"]) == {"p50", "p90", "p99", "max"}
    assert result["server_cpu_s"] > 0 and result["server_peak_rss_mb"] > 0
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_warm_up_and_a_spike_are_reported_apart_from_the_measured_load(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = subprocess.run(
        [sys.executable, "-m", "chat4all", "bench", "--profile", "embedded", "--rate", "40", "--duration", "4",
         "--warmup", "2", "--spike-rate", "40", "--spike-at", "1", "--spike-duration", "1",
         "--conversations", "10", "--recipients", "2", "--out", str(out)],
        capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "result.json").read_text())
    warmup, spike, windows, cpu = result["warmup"], result["spike"], result["windows"], result["cpu"]

    # 160 base + 40 spike messages measured; the warm-up's 80 only in its own section
    assert result["sent"] == result["accepted"] == 200 and result["delivered"] == 400
    assert (warmup["duration_s"], warmup["sent"], warmup["accepted"], warmup["delivered"]) == (2, 80, 80, 160)
    for part in (result, warmup):
        assert (part["lost"], part["duplicates"], part["order_violations"]) == (0, 0, 0)
    assert warmup["accept_ms"]["p99"] is not None

    assert (spike["from_s"], spike["to_s"], spike["rate"]) == (1, 2, 40)
    assert (spike["sent"], spike["sent_extra"], spike["lost"]) == (80, 40, 0)
    assert len(spike["per_second_accept_p99_ms"]) == 4
    assert spike["recovered_after_s"] is None or 0 <= spike["recovered_after_s"] <= 2

    # the whole measured load is in the first ten seconds
    assert (windows["first"]["sent"], windows["rest"]["sent"]) == (200, 0)
    assert windows["first"]["accept_ms"]["p99"] == result["accept_ms"]["p99"]

    assert set(cpu["server_s"]) == {"all"} and cpu["server_s"]["all"] > 0
    assert cpu["server_cpu_ms_per_message"] == round(cpu["server_total_s"] * 1000 / 400, 3)
    assert cpu["bench_s"] > 0 and cpu["engines_s"] is None  # engines: production profile only
    assert result["server_cpu_s"] == round(cpu["server_total_s"], 1)
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
