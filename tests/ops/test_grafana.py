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
