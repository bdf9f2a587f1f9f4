"""deploy/k8s: both overlays build with kustomize and pass kubernetes-validate --strict, and what
they ask of the app is what the app does: probes on its health routes, its port, its settings
and roles, the consumer-lag metric it exports, the partition count as the router ceiling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chat4all.api.routes import health
from chat4all.config import Settings
from chat4all.workers.router import RouterWorker
from tests.ops.conftest import exported_metric_names
from tests.ops.deploy_helpers import (
    DEPLOY,
    EMBEDDED_VALUES,
    REQUIRED_ENV,
    ROOT,
    SETTINGS_ENV,
    role_of,
    run,
    tool,
)

K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
APP_ROLES = ("api", "router", "webhooks")


@pytest.fixture(scope="module")
def kustomize() -> str:
    """kustomize, built from the Go module proxy by scripts/tools.sh (cached after the first build)."""
    result = run(str(ROOT / "scripts" / "tools.sh"), "path", "kustomize", timeout=1200)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def deploy_tree() -> Path:
    return DEPLOY


def _build(kustomize: str, tree: Path, overlay: str) -> str:
    result = run(kustomize, "build", str(tree / "k8s" / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def manifests(kustomize: str, deploy_tree: Path) -> dict[str, str]:
    return {o: _build(kustomize, deploy_tree, o) for o in OVERLAYS}


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def _env(docs: list[dict[str, Any]]) -> dict[str, str]:
    config = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("chat4all-config")]
    assert len(config) == 1
    return config[0]["data"]


def _secret_keys(overlay: str) -> set[str]:
    example = K8S / "overlays" / overlay / "secrets.env.example"
    return {line.split("=", 1)[0] for line in example.read_text().splitlines() if line and not line.startswith("#")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_passes_kubernetes_validate_strict(overlay: str, manifests: dict[str, str]) -> None:
    result = run(tool("kubernetes-validate"), "--strict", "-", stdin=manifests[overlay])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    kinds = {d["kind"] for d in _docs(manifests[overlay])}
    assert {
        "Deployment", "Service", "ConfigMap", "Job", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
        "ServiceAccount",
    } <= kinds
    assert "Secret" not in kinds, "no secret value is committed: chat4all-secrets is created outside git"


def test_the_etcd_statefulset_of_the_stores_passes_kubernetes_validate_strict() -> None:
    result = run(tool("kubernetes-validate"), "--strict", str(K8S / "stores" / "etcd.yaml"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_role_runs_its_command_with_probes_on_the_app_health_routes_and_its_port(
    overlay: str, manifests: dict[str, str]
) -> None:
    docs = _docs(manifests[overlay])
    env = _env(docs)
    port = int(env["CHAT4ALL_PORT"])
    routes = {getattr(r, "path", None) for r in health.router.routes}
    assert {"/health/live", "/health/ready", "/metrics"} <= routes  # what every role serves (api/app.py)
    for role in APP_ROLES:
        deployment = _one(docs, "Deployment", f"chat4all-{role}")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert role_of(container["args"]) == role
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        probes = {p: container[f"{p}Probe"]["httpGet"] for p in ("startup", "readiness", "liveness")}
        assert probes["readiness"]["path"] == "/health/ready"
        assert probes["liveness"]["path"] == probes["startup"]["path"] == "/health/live"
        assert all(p["port"] == "http" for p in probes.values())
        service = _one(docs, "Service", f"chat4all-{role}")
        assert service["spec"]["ports"][0]["targetPort"] == "http"
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_non_root_read_only_and_bounded(overlay: str, manifests: dict[str, str]) -> None:
    docs = _docs(manifests[overlay])
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] == "Deployment"]
    pods.append(_one(docs, "Job", "chat4all-migrate")["spec"]["template"]["spec"])
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= c["resources"]["requests"].keys() <= c["resources"]["limits"].keys()
            # a read-only root: what the app writes goes to volumes
            if c["image"].split("/")[-1].startswith("chat4all"):
                mounts = {m["mountPath"] for m in c["volumeMounts"]}
                assert {"/tmp", "/var/lib/chat4all"} <= mounts


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_ones_the_app_reads_and_each_role_gets_all_it_needs(overlay: str, manifests: dict[str, str]) -> None:
    docs = _docs(manifests[overlay])
    env = _env(docs)
    secret = _secret_keys(overlay)
    assert not (set(env) | secret) - SETTINGS_ENV, "every key is a setting of src/chat4all/config.py"
    assert not set(env) & secret
    assert "CHAT4ALL_JWT_SECRET" in secret and "CHAT4ALL_JWT_SECRET" not in env
    assert not [k for k, v in env.items() if v in EMBEDDED_VALUES]
    for role in (*APP_ROLES, "migrate"):
        kind, name = ("Job", "chat4all-migrate") if role == "migrate" else ("Deployment", f"chat4all-{role}")
        (container,) = _one(docs, kind, name)["spec"]["template"]["spec"]["containers"]
        refs = [next(iter(r.values()))["name"] for r in container["envFrom"]]
        assert refs[0].startswith("chat4all-config-") and refs[1] == "chat4all-secrets"
        provided = set(env) | secret | {e["name"] for e in container.get("env", [])}
        assert not REQUIRED_ENV[role] - provided, f"{overlay} {role} lacks {REQUIRED_ENV[role] - provided}"
    Settings.model_validate({k.removeprefix("CHAT4ALL_").lower(): v for k, v in env.items()})


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_scales_on_cpu_and_routers_on_lag_up_to_the_partition_count(overlay: str, manifests: dict[str, str]) -> None:
    docs = _docs(manifests[overlay])
    api = _one(docs, "HorizontalPodAutoscaler", "chat4all-api")["spec"]
    assert api["scaleTargetRef"]["name"] == "chat4all-api"
    assert api["metrics"][0]["resource"]["name"] == "cpu"
    router = _one(docs, "HorizontalPodAutoscaler", "chat4all-router")["spec"]
    assert router["scaleTargetRef"]["name"] == "chat4all-router"
    assert router["maxReplicas"] == int(_env(docs)["CHAT4ALL_LOG_PARTITIONS"]), "no router beyond the partitions"
    assert router["minReplicas"] <= router["maxReplicas"]
    (metric,) = router["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "chat4all_consumer_lag"
    assert "chat4all_consumer_lag" in exported_metric_names()
    # the labels the router's consumer reports (workers/base.py: worker=<name>, topic=<topic>)
    assert metric["external"]["metric"]["selector"]["matchLabels"] == {"worker": RouterWorker.name, "topic": "message.events"}


def test_prometheus_adapter_exposes_the_metric_the_router_hpa_asks_for(manifests: dict[str, str]) -> None:
    docs = _docs(manifests["prod"])
    adapter = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "chat4all-prometheus-adapter")
    (rule,) = yaml.safe_load(adapter["data"]["config.yaml"])["externalRules"]
    assert rule["seriesQuery"].startswith("chat4all_consumer_lag{")
    assert rule["name"]["as"] == "chat4all_consumer_lag"
    assert "by (worker, topic)" in rule["metricsQuery"]


def test_prod_keeps_two_of_every_role_through_disruptions(manifests: dict[str, str]) -> None:
    docs = _docs(manifests["prod"])
    for role in (*APP_ROLES, "gateway"):
        budget = _one(docs, "PodDisruptionBudget", f"chat4all-{role}")["spec"]
        deployment = _one(docs, "Deployment", f"chat4all-{role}")["spec"]
        assert budget["minAvailable"] == 2
        assert budget["selector"]["matchLabels"] == deployment["selector"]["matchLabels"]
        assert deployment["replicas"] > budget["minAvailable"], "a drain can still move one"
    for name in ("chat4all-api", "chat4all-router"):
        assert _one(docs, "HorizontalPodAutoscaler", name)["spec"]["minReplicas"] >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_reaches_the_api_and_the_app_reaches_its_engines(overlay: str, manifests: dict[str, str]) -> None:
    docs = _docs(manifests[overlay])
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = _one(docs, "NetworkPolicy", "chat4all-default-deny")["spec"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"} and "ingress" not in deny and "egress" not in deny

    def selects(policy: dict[str, Any], component: str) -> bool:
        selector = policy["spec"]["podSelector"]
        labels = {"app.kubernetes.io/name": "chat4all", "app.kubernetes.io/component": component, "chat4all.io/engines-client": "true"}
        if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
            return False
        return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))

    sources = [
        peer
        for p in policies
        if selects(p, "api") and "Ingress" in p["spec"]["policyTypes"]
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [{"anywhere": True}])
    ]
    pods = [s["podSelector"]["matchLabels"] for s in sources if "podSelector" in s]
    namespaces = [s["namespaceSelector"]["matchLabels"] for s in sources if "namespaceSelector" in s]
    assert pods == [{"app.kubernetes.io/name": "chat4all", "app.kubernetes.io/component": "gateway"}]
    assert namespaces == [{"kubernetes.io/metadata.name": "monitoring"}], "besides the gateway, only Prometheus"
    assert len(sources) == 2, "no rule lets anyone else in"
    engines = _one(docs, "NetworkPolicy", "chat4all-app-to-engines")["spec"]
    ports = {p["port"] for rule in engines["egress"] for p in rule.get("ports", [])}
    assert {5432, 9092, 6379, 2379, 9000, 4318, 53} <= ports
    for role in APP_ROLES:
        labels = _one(docs, "Deployment", f"chat4all-{role}")["spec"]["template"]["metadata"]["labels"]
        assert labels["chat4all.io/engines-client"] == "true"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_runs_the_app_migrate_command_before_the_rollout(overlay: str, manifests: dict[str, str]) -> None:
    job = _one(_docs(manifests[overlay]), "Job", "chat4all-migrate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert role_of(container["args"]) == "migrate"
    assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_the_gateway_mounts_the_deploy_nginx_configuration(manifests: dict[str, str]) -> None:
    docs = _docs(manifests["prod"])
    config = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("chat4all-gateway-")]
    assert len(config) == 1 and sorted(config[0]["data"]) == ["gateway.js", "headers.conf", "nginx.conf", "proxy.conf"]
    conf = config[0]["data"]["nginx.conf"]
    assert "@@" not in conf and "server chat4all-api:8080 " in conf
    assert "js_import gateway from /etc/chat4all/nginx/gateway.js;" in conf
    assert "ssl_certificate /etc/chat4all/tls/tls.crt;" in conf
    pod = _one(docs, "Deployment", "chat4all-gateway")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config[0]["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["command"][:5] == ["nginx", "-c", "/etc/chat4all/nginx/nginx.conf", "-p", "/tmp/nginx/"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/chat4all/nginx", "/etc/chat4all/tls", "/tmp/nginx/logs", "/tmp/nginx/tmp"} <= mounts
    assert any(e["name"] == "CHAT4ALL_JWT_SECRET" for e in container["env"])


def test_the_committed_kubernetes_gateway_is_the_template_rendered_today(tmp_path: Path) -> None:
    """deploy/nginx/k8s is generated: it must not drift from nginx.conf.template."""
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "nginx" / "render.py"), "--kubernetes", str(tmp_path)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in ("nginx.conf", "headers.conf", "proxy.conf", "gateway.js"):
        assert (tmp_path / name).read_text() == (DEPLOY / "nginx" / "k8s" / name).read_text(), (
            f"deploy/nginx/k8s/{name} is stale: python3 deploy/nginx/render.py --kubernetes deploy/nginx/k8s"
        )


def test_prod_points_at_stores_replicated_three_times(manifests: dict[str, str]) -> None:
    stores = {p.stem: _docs(p.read_text()) for p in (K8S / "stores").glob("*.yaml")}
    (pg,) = stores["postgresql"]
    assert pg["kind"] == "Cluster" and pg["spec"]["instances"] >= 3 and pg["spec"]["minSyncReplicas"] >= 1
    pool, kafka = stores["kafka"]
    assert pool["spec"]["replicas"] >= 3 and set(pool["spec"]["roles"]) == {"controller", "broker"}
    assert kafka["spec"]["kafka"]["config"]["default.replication.factor"] >= 3
    assert kafka["spec"]["kafka"]["config"]["min.insync.replicas"] >= 2
    etcd = next(d for d in stores["etcd"] if d["kind"] == "StatefulSet")
    assert etcd["spec"]["replicas"] >= 3
    env = _env(_docs(manifests["prod"]))
    assert env["CHAT4ALL_EVENT_LOG_URL"] == f"kafka://{kafka['metadata']['name']}-kafka-bootstrap.chat4all-data:9092"
    members = env["CHAT4ALL_METADATA_URL"].removeprefix("etcd://").split(",")
    assert len(members) == etcd["spec"]["replicas"]
    assert all(f".{etcd['metadata']['name']}.chat4all-data:2379" in m for m in members)
    database = [line for line in (K8S / "overlays" / "prod" / "secrets.env.example").read_text().splitlines()
                if line.startswith("CHAT4ALL_DATABASE_URL=")]
    assert f"@{pg['metadata']['name']}-rw.chat4all-data:5432/" in database[0]
