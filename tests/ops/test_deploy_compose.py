"""deploy/compose: valid against the Compose specification, every Chat4All process has the
settings its role needs, ports are those of scripts/services.sh and scripts/up.sh, and every
dependency waits for a health check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.deploy_helpers import (
    ROOT,
    DEPLOY,
    EMBEDDED_VALUES,
    REQUIRED_ENV,
    SETTINGS_ENV,
    role_of,
    run,
    services_ports,
    tool,
    up_ports,
)

COMPOSE = DEPLOY / "compose" / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _chat4all(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image", "").startswith("${CHAT4ALL_IMAGE")}


def _published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of ``127.0.0.1:HOST:CONTAINER`` entries."""
    return [tuple(int(x) for x in p.split(":")[-2:]) for p in service.get("ports", [])]  # type: ignore[misc]


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_production_stack_is_all_there(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    assert {"postgres", "kafka", "redis", "etcd", "minio", "jaeger", "prometheus", "alertmanager", "grafana", "gateway"} <= services
    roles = sorted(role_of(s["command"]) for s in _chat4all(compose).values())
    assert roles == ["api", "api", "migrate", "router", "router", "webhooks"]
    assert compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft


def test_each_chat4all_process_has_every_setting_its_role_needs_and_only_settings_the_app_reads(
    compose: dict[str, Any],
) -> None:
    for name, service in _chat4all(compose).items():
        env = service["environment"]
        role = role_of(service["command"])
        unknown = sorted(k for k in env if k.startswith("CHAT4ALL_") and k not in SETTINGS_ENV)
        assert not unknown, f"{name} sets variables the app never reads: {unknown}"
        missing = sorted(REQUIRED_ENV[role] - set(env))
        assert not missing, f"{name} ({role}) lacks {missing}"
        assert not [k for k, v in env.items() if v in EMBEDDED_VALUES], f"{name} falls back to an embedded backend"
        assert env["CHAT4ALL_PORT"] == "8080"
        if role != "migrate":
            assert env["CHAT4ALL_NODE_ID"] == name.replace("webhooks", "webhooks-1")
    assert len({s["environment"]["CHAT4ALL_NODE_ID"] for n, s in _chat4all(compose).items() if n != "migrate"}) == 5


def test_the_backend_urls_name_the_compose_services_on_their_ports(compose: dict[str, Any]) -> None:
    env = compose["services"]["api-1"]["environment"]
    ports = services_ports()
    assert env["CHAT4ALL_DATABASE_URL"].split("@")[1].startswith(f"postgres:{ports['PG_PORT']}/")
    assert env["CHAT4ALL_EVENT_LOG_URL"] == f"kafka://kafka:{ports['KAFKA_PORT']}"
    assert env["CHAT4ALL_PRESENCE_URL"] == f"redis://redis:{ports['REDIS_PORT']}/0"
    assert env["CHAT4ALL_METADATA_URL"] == f"etcd://etcd:{ports['ETCD_PORT']}"
    assert env["CHAT4ALL_BLOB_URL"].startswith("s3://chat4all?endpoint=http://minio:9000&")
    assert env["CHAT4ALL_OTLP_ENDPOINT"] == f"http://jaeger:{ports['JAEGER_OTLP_PORT']}/v1/traces"


def test_published_ports_are_those_of_services_sh_and_up_sh(compose: dict[str, Any]) -> None:
    ports = services_ports()
    s = compose["services"]
    expected = {
        "postgres": [(ports["PG_PORT"], 5432)],
        "kafka": [(ports["KAFKA_PORT"], 9092)],
        "redis": [(ports["REDIS_PORT"], 6379)],
        "etcd": [(ports["ETCD_PORT"], 2379)],
        "minio": [(ports["S3_PORT"], 9000)],
        "prometheus": [(ports["PROMETHEUS_PORT"], 9090)],
        "alertmanager": [(ports["ALERTMANAGER_PORT"], 9093)],
        "jaeger": [(ports["JAEGER_OTLP_PORT"], 4318), (ports["JAEGER_QUERY_PORT"], 16686)],
    }
    for name, published in expected.items():
        assert _published(s[name]) == published, name
    for role, host_ports in up_ports().items():
        named = sorted(n for n, svc in _chat4all(compose).items() if role_of(svc["command"]) == role)
        assert sorted(_published(s[n])[0][0] for n in named) == sorted(host_ports), role
        assert all(_published(s[n])[0][1] == 8080 for n in named)
    for svc in s.values():
        assert all(p.startswith("127.0.0.1:") for p in svc.get("ports", [])), "published on loopback only"


def test_every_dependency_waits_for_a_health_check_or_a_completed_job(compose: dict[str, Any]) -> None:
    s = compose["services"]
    for name, service in s.items():
        for dep, rule in (service.get("depends_on") or {}).items():
            condition = rule["condition"]
            if condition == "service_healthy":
                check = s[dep].get("healthcheck")
                assert check and not check.get("disable"), f"{name} waits for {dep}, which has no health check"
            elif condition == "service_completed_successfully":
                assert s[dep].get("restart") in (None, "no"), f"{dep} is a one-off job"
            else:  # only traces may be missing for a while: spans are dropped, nothing waits
                assert (dep, condition) == ("jaeger", "service_started"), f"{name} → {dep}: {condition}"
    for name in ("postgres", "kafka", "redis", "etcd", "minio", "prometheus", "alertmanager", "grafana"):
        assert s[name]["healthcheck"]["test"], name
    for name, service in _chat4all(compose).items():
        deps = service["depends_on"]
        if name != "migrate":
            assert deps["migrate"]["condition"] == "service_completed_successfully"
            assert {"kafka", "redis", "etcd"} <= set(deps)


def test_state_lives_in_named_volumes_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used: set[str] = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                # ./tls holds the operator's certificate: never committed
                assert (COMPOSE.parent / source).exists() or source == "./tls", f"{name} mounts missing {source}"
            else:
                used.add(source)
    assert used == declared
    stateful = ("postgres", "kafka", "redis", "etcd", "minio", "prometheus", "alertmanager", "grafana")
    for name in stateful:
        assert any(v.split(":")[0] in declared for v in compose["services"][name]["volumes"]), name


def test_no_secret_value_is_committed(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for variable in ("POSTGRES_PASSWORD", "MINIO_SECRET_KEY", "CHAT4ALL_JWT_SECRET", "GRAFANA_ADMIN_PASSWORD"):
        assert f"${{{variable}:?" in text, f"{variable} must come from .env"
        assert f"{variable}=\n" in (COMPOSE.parent / ".env.example").read_text()


def test_grafana_provisioning_points_at_the_compose_prometheus_and_mounts_the_dashboards(
    compose: dict[str, Any],
) -> None:
    sources = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "chat4all.yml").read_text())
    default = [d for d in sources["datasources"] if d.get("isDefault")]
    assert len(default) == 1 and default[0]["type"] == "prometheus"
    assert default[0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "chat4all.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"../grafana/dashboards:{path}:ro" in compose["services"]["grafana"]["volumes"]


def test_the_gateway_reads_the_committed_compose_rendering_of_deploy_nginx(tmp_path: Path) -> None:
    """deploy/nginx/compose is nginx.conf.template rendered for the two API containers."""
    gateway = yaml.safe_load(COMPOSE.read_text())["services"]["gateway"]
    assert "../nginx/compose:/etc/chat4all/nginx:ro" in gateway["volumes"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "nginx" / "render.py"), "--compose", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("nginx.conf", "headers.conf", "proxy.conf", "gateway.js"):
        assert (tmp_path / name).read_text() == (ROOT / "deploy" / "nginx" / "compose" / name).read_text(), name
    conf = (tmp_path / "nginx.conf").read_text()
    assert "server api-1:8080 " in conf and "server api-2:8080 " in conf
