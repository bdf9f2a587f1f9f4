"""Alerting for real (R13.5): a Chat4All router dies, Prometheus evaluates the shipped NodeDown
rule on its scrape, Alertmanager routes the page with the shipped routing tree to a webhook
receiver; the router comes back and the receiver is told the alert resolved.

The chain runs on its own Prometheus and Alertmanager (the binaries scripts/services.sh
installs) so that it can be quick and bounded: the rules are the shipped ones with `for: 2s`,
evaluated every second; the Alertmanager configuration is the shipped one with the receivers'
URLs pointed at the test's receiver and 1 s grouping. The shipped files keep their production
timings. The Alertmanager of scripts/services.sh itself is checked against the shipped file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import server_missing, wait_until
from tests.e2e.processes import Process, free_port
from tests.ops.deploy_helpers import DEPLOY, services_ports
from tests.ops.production import production_env
from tests.webhook_receiver import Receiver, running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.production]

ALERT = "Chat4AllNodeDown"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if not found:
        server_missing(f"{name} is not installed (scripts/services.sh up prometheus alertmanager installs it)")
    return found


def _fast_rules(path: Path) -> Path:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            rule["for"] = "2s"
    path.write_text(yaml.safe_dump(rules))
    return path


def _prometheus_config(tmp: Path, alertmanager_port: int) -> Path:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(_fast_rules(tmp / "alerts-fast.yml"))]
    (am,) = config["alerting"]["alertmanagers"]
    am["static_configs"] = [{"targets": [f"127.0.0.1:{alertmanager_port}"]}]
    (job,) = config["scrape_configs"]
    job["scrape_interval"] = "1s"
    job["scrape_timeout"] = "500ms"
    job["file_sd_configs"] = [{"files": [str(tmp / "targets" / "*.json")], "refresh_interval": "1s"}]
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alertmanager_config(tmp: Path, receiver: Receiver) -> Path:
    config = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())

    def quick(route: dict[str, Any]) -> None:
        for key in ("group_wait", "group_interval"):
            if key in route:
                route[key] = "1s"
        for child in route.get("routes", []):
            quick(child)

    quick(config["route"])
    for r in config["receivers"]:
        for hook in r["webhook_configs"]:
            hook["url"] = receiver.base_url + httpx.URL(hook["url"]).path
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def _server(cmd: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async def answering() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            async with httpx.AsyncClient(timeout=2) as http:
                return (await http.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(answering, timeout=90, interval=0.2, what=url)  # a loaded 2-core machine


def _notifications(receiver: Receiver, status: str, instance: str) -> list[dict[str, Any]]:
    return [
        alert
        for request in receiver.to("/chat4all/pages")
        for alert in request.json["alerts"]
        if alert["labels"]["alertname"] == ALERT and alert["labels"]["instance"] == instance and alert["status"] == status
    ]


@pytest.mark.timeout(300)
async def test_a_dead_router_pages_on_call_through_alertmanager_and_the_page_resolves_when_it_returns(
    tmp_path: Path,
) -> None:
    prometheus, alertmanager = _binary("prometheus"), _binary("prometheus-alertmanager")
    async with production_env("alerts") as env, running_receiver() as receiver:
        router = Process(tmp_path / "router", free_port(), tmp_path / "router.log", role="router",
                         env={**env, "CHAT4ALL_NODE_ID": "router-alerts"})
        router.start()
        await _ready(f"{router.base_url}/health/ready", router.proc, router.log)
        instance = f"127.0.0.1:{router.port}"
        (tmp_path / "targets").mkdir()
        (tmp_path / "targets" / "router.json").write_text(
            json.dumps([{"targets": [instance], "labels": {"role": "router"}}])
        )
        am_port, prom_port = free_port(), free_port()
        am_cmd = [
            alertmanager, f"--config.file={_alertmanager_config(tmp_path, receiver)}",
            f"--storage.path={tmp_path / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ]
        prom_cmd = [
            prometheus, f"--config.file={_prometheus_config(tmp_path, am_port)}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
        ]
        with _server(am_cmd, tmp_path / "alertmanager.log") as am, _server(prom_cmd, tmp_path / "prometheus.log") as prom:
            await _ready(f"http://127.0.0.1:{am_port}/-/ready", am, tmp_path / "alertmanager.log")
            await _ready(f"http://127.0.0.1:{prom_port}/-/ready", prom, tmp_path / "prometheus.log")
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{prom_port}", timeout=5) as api:

                async def scraped(value: str) -> bool:
                    answer = (await api.get("/api/v1/query", params={"query": f'up{{instance="{instance}"}}'})).json()
                    return [r["value"][1] for r in answer["data"]["result"]] == [value]

                await wait_until(lambda: scraped("1"), timeout=30, what="Prometheus to scrape the router")
                assert not _notifications(receiver, "firing", instance)

                router.kill(signal.SIGTERM)
                await wait_until(lambda: scraped("0"), timeout=30, what="the scrape to fail")
                firing = await wait_until(
                    lambda: _async(_notifications(receiver, "firing", instance)), timeout=60,
                    what="the NodeDown page at the receiver",
                )
                assert firing[0]["labels"]["severity"] == "page"
                assert firing[0]["annotations"]["summary"] == f"{instance} does not answer /metrics"

                router.start()
                await _ready(f"{router.base_url}/health/ready", router.proc, router.log)
                await wait_until(
                    lambda: _async(_notifications(receiver, "resolved", instance)), timeout=60,
                    what="the page to resolve at the receiver",
                )
        warnings = receiver.to("/chat4all/warnings")
        assert not warnings, "a page goes to on-call only"
        router.kill(signal.SIGTERM)


async def _async(value: Any) -> Any:
    return value or None


async def test_the_alertmanager_of_services_sh_runs_the_shipped_routes_where_prometheus_sends() -> None:
    url = os.environ.get("CHAT4ALL_TEST_ALERTMANAGER_URL")
    if not url:
        server_missing("CHAT4ALL_TEST_ALERTMANAGER_URL is not set; run `scripts/services.sh up alertmanager`")
    port = services_ports()["ALERTMANAGER_PORT"]
    assert url.endswith(f":{port}")
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        status = (await http.get("/api/v2/status")).json()
    running = yaml.safe_load(status["config"]["original"])
    shipped = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    assert [r["name"] for r in running["receivers"]] == [r["name"] for r in shipped["receivers"]]
    assert running["route"]["receiver"] == shipped["route"]["receiver"]
    assert len(running["route"]["routes"]) == len(shipped["route"]["routes"])
    assert status["cluster"]["status"] == "disabled"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]
    assert port != services_ports()["KAFKA_CONTROLLER_PORT"]
