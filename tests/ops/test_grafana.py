"""deploy/grafana: the dashboards (R13.4) load as Grafana dashboards, every query is one the
real Prometheus accepts, and every metric they chart is one Chat4All exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.conftest import exported_metric_names

DASHBOARDS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_the_three_dashboards_are_there_with_unique_ids_and_laid_out_panels() -> None:
    dashboards = [_load(p) for p in DASHBOARDS]
    assert sorted(d["uid"] for d in dashboards) == ["chat4all-connectors", "chat4all-overview", "chat4all-performance"]
    for d in dashboards:
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), d["uid"]
        for panel in d["panels"]:
            assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"])
            assert panel["datasource"]["uid"] == "${datasource}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_charted_metric_is_exported(path: Path) -> None:
    named = {m for q in _queries(_load(path)) for m in re.findall(r"\b((?:chat4all|process)_\w+)", q)}
    assert named, "a dashboard charts something"
    unknown = sorted(named - exported_metric_names())
    assert not unknown, f"{path.name} charts metrics Chat4All does not export: {unknown}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
async def test_every_query_is_valid_promql(path: Path, prometheus: httpx.AsyncClient) -> None:
    for query in _queries(_load(path)):
        answer = await prometheus.get("/api/v1/query", params={"query": query})
        assert answer.status_code == 200 and answer.json()["status"] == "success", (query, answer.text)


def test_the_provisioning_gives_the_dashboards_the_data_source_they_ask_for() -> None:
    import yaml

    provisioning = DASHBOARDS[0].parents[1] / "provisioning"
    sources = yaml.safe_load((provisioning / "datasources" / "chat4all.yml").read_text())["datasources"]
    (default,) = [s for s in sources if s.get("isDefault")]
    for path in DASHBOARDS:
        (variable,) = [v for v in _load(path)["templating"]["list"] if v["name"] == "datasource"]
        assert variable["type"] == "datasource" and variable["query"] == default["type"] == "prometheus"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "chat4all.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/var/lib/grafana/dashboards")
