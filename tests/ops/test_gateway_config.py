"""The gateway's renderer (deploy/nginx/render.py): settings become a config that Debian's nginx
accepts, and bad settings are refused by name before nginx ever sees them."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import server_missing

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gateway_render", ROOT / "deploy" / "nginx" / "render.py")
render = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["gateway_render"] = render
_spec.loader.exec_module(render)  # type: ignore[union-attr]


def nginx_accepts(conf: Path) -> None:
    if shutil.which("nginx") is None:  # a fresh machine: the project's script installs it
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "services.sh"), "gateway-config"],
            env={**os.environ, "CHAT4ALL_GATEWAY_DIR": str(conf.parent / "installed")}, capture_output=True, timeout=600,
        )
    if shutil.which("nginx") is None:
        server_missing("nginx is not installed (scripts/services.sh gateway-config installs it)")
    tls = conf.parent / "tls"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-keyout", str(tls / "server.key"), "-out", str(tls / "server.crt"), "-subj", "/CN=localhost"],
        check=True, capture_output=True,
    )
    checked = subprocess.run(
        ["nginx", "-t", "-p", f"{conf.parent}/", "-c", str(conf), "-g", f"pid {conf.parent}/nginx.pid; error_log stderr;"],
        capture_output=True, text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_defaults_are_the_platform_s(tmp_path: Path) -> None:
    conf = render.render({}, tmp_path).read_text()
    assert "listen 127.0.0.1:8443 ssl http2;" in conf and "listen 127.0.0.1:8088;" in conf
    assert "server 127.0.0.1:8101 max_fails=2 fail_timeout=5s;" in conf and "server 127.0.0.1:8102" in conf
    assert "rate=1000r/m" in conf and "burst=100 nodelay" in conf
    assert "add_header RateLimit-Limit 1000 always;" in conf and "client_max_body_size 1048576;" in conf
    assert "least_conn;" in conf and "proxy_next_upstream error timeout non_idempotent;" in conf
    nginx_accepts(tmp_path / "nginx.conf")


def test_every_setting_reaches_the_config_and_nginx_accepts_it(tmp_path: Path) -> None:
    env = {
        "CHAT4ALL_GATEWAY_HOST": "0.0.0.0",
        "CHAT4ALL_GATEWAY_HTTPS_PORT": "18443",
        "CHAT4ALL_GATEWAY_HTTP_PORT": "18088",
        "CHAT4ALL_GATEWAY_UPSTREAMS": "10.0.0.1:8080,10.0.0.2:8080 [::1]:8080",
        "CHAT4ALL_GATEWAY_RATE_PER_MINUTE": "120",
        "CHAT4ALL_GATEWAY_BURST": "30",
        "CHAT4ALL_GATEWAY_AUTH_RATE_PER_MINUTE": "10",
        "CHAT4ALL_GATEWAY_AUTH_BURST": "2",
        "CHAT4ALL_GATEWAY_MAX_FAILS": "3",
        "CHAT4ALL_GATEWAY_FAIL_TIMEOUT_S": "7",
        "CHAT4ALL_GATEWAY_REAL_IP_FROM": "10.1.0.0/16, 192.0.2.10",
        "CHAT4ALL_GATEWAY_WORKERS": "2",
        "CHAT4ALL_CORS_ORIGINS": "https://app.example.com, http://localhost:5173/",
        "CHAT4ALL_MAX_BODY_BYTES": "2000000",
    }
    conf = render.render(env, tmp_path).read_text()
    for expected in (
        "listen 0.0.0.0:18443 ssl http2;", "listen 0.0.0.0:18088;", "server [::1]:8080 max_fails=3 fail_timeout=7s;",
        "server 10.0.0.2:8080", "rate=120r/m", "burst=30 nodelay", "rate=10r/m", "burst=2 nodelay",
        "set_real_ip_from 10.1.0.0/16;", "set_real_ip_from 192.0.2.10;", "worker_processes 2;",
        '"https://app.example.com" $http_origin;', '"http://localhost:5173" $http_origin;',
        "client_max_body_size 2000000;", "add_header RateLimit-Reset 15 always;",
    ):
        assert expected in conf, expected
    nginx_accepts(tmp_path / "nginx.conf")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CHAT4ALL_GATEWAY_UPSTREAMS", "", "names no API node"),
        ("CHAT4ALL_GATEWAY_UPSTREAMS", "127.0.0.1", "is not host:port"),
        ("CHAT4ALL_GATEWAY_UPSTREAMS", "127.0.0.1:8101; evil", "is not host:port"),
        ("CHAT4ALL_GATEWAY_RATE_PER_MINUTE", "0", "between"),
        ("CHAT4ALL_GATEWAY_BURST", "many", "integer"),
        ("CHAT4ALL_GATEWAY_HTTPS_PORT", "70000", "between"),
        ("CHAT4ALL_CORS_ORIGINS", "https://ok.example.com,not an origin", "is not an origin"),
        ("CHAT4ALL_CORS_ORIGINS", 'https://x.example.com";', "is not an origin"),
        ("CHAT4ALL_GATEWAY_REAL_IP_FROM", "10.0.0.0/33", "is not an address"),
    ],
)
def test_a_bad_setting_is_refused_by_name(tmp_path: Path, name: str, value: str, says: str) -> None:
    with pytest.raises(render.ConfigError, match=says) as refused:
        render.render({name: value}, tmp_path)
    assert name in str(refused.value)
    assert not (tmp_path / "nginx.conf").exists()


def test_any_origin_is_echoed_and_never_with_credentials(tmp_path: Path) -> None:
    conf = render.render({"CHAT4ALL_CORS_ORIGINS": "*"}, tmp_path).read_text()
    assert '"~." $http_origin;' in conf
    assert "Access-Control-Allow-Credentials" not in (tmp_path / "headers.conf").read_text()
