"""deploy/prometheus: the config and alert rules are valid, their unit tests pass, every metric
they name is one Chat4All exports, and the real Prometheus from scripts/services.sh scrapes a
running node through the config's file discovery."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import yaml

from tests.conftest import RunningServer, wait_until
from tests.ops.conftest import exported_metric_names

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
# series Prometheus makes itself, not Chat4All
NOT_OURS = {"up"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (scripts/services.sh installs it)"
    return subprocess.run([promtool, *args], check=False, cwd=DEPLOY, capture_output=True, text=True, timeout=60)


def test_the_config_and_its_rules_are_valid() -> None:
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = sum(len(g["rules"]) for g in yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"])
    assert f"{rules} rules found" in checked.stdout


def test_each_alert_fires_on_what_it_describes() -> None:
    tested = _promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = set(re.findall(r"^\s+- alert: (\w+)$", (DEPLOY / "alerts.yml").read_text(), re.MULTILINE))
    covered = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts_test.yml").read_text()))
    assert rules == covered, f"alerts without a unit test: {sorted(rules - covered)}"


def test_every_metric_the_rules_name_is_exported() -> None:
    named = set(re.findall(r"\b(chat4all_\w+|up)\b", (DEPLOY / "alerts.yml").read_text()))
    unknown = sorted(named - exported_metric_names() - NOT_OURS)
    assert not unknown, f"the rules name metrics Chat4All does not export: {unknown}"


async def test_prometheus_discovers_and_scrapes_a_running_node(
    server: RunningServer, prometheus: httpx.AsyncClient
) -> None:
    # the targets folder of the config this Prometheus runs with (maybe another checkout's)
    config_file = (await prometheus.get("/api/v1/status/flags")).json()["data"]["config.file"]
    instance = server.base_url.removeprefix("http://")
    targets = Path(config_file).parent / "targets" / f"test-{uuid.uuid4().hex}.json"
    targets.write_text(json.dumps([{"targets": [instance], "labels": {"role": "all"}}]))
    try:

        async def scraped() -> bool:
            query = f'chat4all_websocket_connections{{job="chat4all",instance="{instance}",role="all"}}'
            result = (await prometheus.get("/api/v1/query", params={"query": query})).json()["data"]["result"]
            return len(result) == 1

        await wait_until(scraped, timeout=60, interval=0.5, what="Prometheus to scrape the node")
        up = (await prometheus.get("/api/v1/query", params={"query": f'up{{instance="{instance}"}}'})).json()
        assert up["data"]["result"][0]["value"][1] == "1"
    finally:
        targets.unlink()
