#!/usr/bin/env python3
"""Renders the Chat4All gateway (nginx.conf.template, headers.conf, proxy.conf, gateway.js)
into a directory, from the environment variables listed at the top of nginx.conf.template.

    python3 deploy/nginx/render.py DIR      # writes DIR/nginx.conf (+ includes), prints its path
    python3 deploy/nginx/render.py --kubernetes deploy/nginx/k8s
    python3 deploy/nginx/render.py --compose deploy/nginx/compose
                                            # the gateways of deploy/k8s and deploy/compose (committed)

Standard library only: scripts/services.sh runs it with the system python3. The TLS files are
not made here (scripts/services.sh makes a local CA and server certificate in DIR/tls).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STATIC = ("headers.conf", "proxy.conf", "gateway.js")
HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9a-fA-F:.]+\](:\d{1,5})?$")


class ConfigError(ValueError):
    pass


def _int(env: dict[str, str], name: str, default: int, *, minimum: int = 1, maximum: int = 10**9) -> int:
    raw = env.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, not {value}")
    return value


def _upstreams(raw: str) -> list[str]:
    nodes = raw.replace(",", " ").split()
    if not nodes:
        raise ConfigError("CHAT4ALL_GATEWAY_UPSTREAMS names no API node")
    for node in nodes:
        m = HOST_PORT.match(node)
        if not m or not 0 < int(m.group(2)) < 65536:
            raise ConfigError(f"CHAT4ALL_GATEWAY_UPSTREAMS: {node!r} is not host:port")
    return nodes


def _origins(raw: str) -> list[str]:
    origins = [o.strip().rstrip("/") for o in raw.split(",") if o.strip()]
    for origin in origins:
        if origin != "*" and not ORIGIN.match(origin):
            raise ConfigError(f"CHAT4ALL_CORS_ORIGINS: {origin!r} is not an origin (scheme://host[:port])")
    return origins


def _networks(raw: str) -> list[str]:
    nets = [n.strip() for n in raw.split(",") if n.strip()]
    for net in nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"CHAT4ALL_GATEWAY_REAL_IP_FROM: {net!r} is not an address or CIDR") from None
    return nets


def values(env: dict[str, str], out: Path) -> dict[str, str]:
    rate = _int(env, "CHAT4ALL_GATEWAY_RATE_PER_MINUTE", 1000)
    burst = _int(env, "CHAT4ALL_GATEWAY_BURST", 100, minimum=0)
    auth_rate = _int(env, "CHAT4ALL_GATEWAY_AUTH_RATE_PER_MINUTE", 60)
    auth_burst = _int(env, "CHAT4ALL_GATEWAY_AUTH_BURST", 20, minimum=0)
    max_fails = _int(env, "CHAT4ALL_GATEWAY_MAX_FAILS", 2, minimum=0)
    fail_timeout = _int(env, "CHAT4ALL_GATEWAY_FAIL_TIMEOUT_S", 5)
    host = env.get("CHAT4ALL_GATEWAY_HOST", "").strip() or "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    workers = env.get("CHAT4ALL_GATEWAY_WORKERS", "").strip() or "auto"
    if workers != "auto":
        workers = str(_int(env, "CHAT4ALL_GATEWAY_WORKERS", 1))
    origins = _origins(env.get("CHAT4ALL_CORS_ORIGINS", ""))
    if "*" in origins:  # any origin, echoed; the gateway never sends Allow-Credentials
        cors = '        "~." $http_origin;'
    else:
        cors = "\n".join(f'        "{o}" $http_origin;' for o in origins)
    real_ip = "".join(f"    set_real_ip_from {n};\n" for n in _networks(env.get("CHAT4ALL_GATEWAY_REAL_IP_FROM", "")))
    if real_ip:
        real_ip += "    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"
    servers = "\n".join(
        f"        server {node} max_fails={max_fails} fail_timeout={fail_timeout}s;"
        for node in _upstreams(env.get("CHAT4ALL_GATEWAY_UPSTREAMS", "127.0.0.1:8101 127.0.0.1:8102"))
    )
    return {
        "WORKERS": workers,
        "HOST": host,
        "HTTPS_PORT": str(_int(env, "CHAT4ALL_GATEWAY_HTTPS_PORT", 8443, maximum=65535)),
        "HTTP_PORT": str(_int(env, "CHAT4ALL_GATEWAY_HTTP_PORT", 8088, maximum=65535)),
        "UPSTREAM_SERVERS": servers,
        "RATE": str(rate),
        "BURST": str(burst),
        "AUTH_RATE": str(auth_rate),
        "AUTH_BURST": str(auth_burst),
        # a refused client may try again once one request's worth has leaked out of its bucket;
        # the bucket is empty again (the full burst available) after burst requests' worth
        "RETRY_AFTER": str(max(1, math.ceil(60 / rate))),
        "RESET": str(max(1, math.ceil(burst * 60 / rate))),
        "CORS_ORIGINS": cors,
        "REAL_IP": real_ip,
        "MAX_BODY": str(_int(env, "CHAT4ALL_MAX_BODY_BYTES", 1_048_576)),
        "MAX_PART": str(_int(env, "CHAT4ALL_FILE_PART_BYTES", 8 * 1024**2) + 1024),
        "CERT": env.get("CHAT4ALL_GATEWAY_CERT", "").strip() or str(out / "tls" / "server.crt"),
        "KEY": env.get("CHAT4ALL_GATEWAY_KEY", "").strip() or str(out / "tls" / "server.key"),
    }


def render(env: dict[str, str], out: Path) -> Path:
    out = out.resolve()
    text = (HERE / "nginx.conf.template").read_text()
    for key, value in values(env, out).items():
        text = text.replace(f"@@{key}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise ConfigError(f"the template names unknown settings: {sorted(set(left))}")
    # where nginx will read the files: the render directory, or (Kubernetes) the ConfigMap's mount
    config_dir = env.get("CHAT4ALL_GATEWAY_CONFIG_DIR", "").strip() or str(out)
    text = text.replace("js_import gateway from gateway.js;", f"js_import gateway from {config_dir}/gateway.js;")
    for sub in () if env.get("CHAT4ALL_GATEWAY_CONFIG_DIR") else ("logs", "tmp", "tls"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name in STATIC:
        shutil.copyfile(HERE / name, out / name)
    conf = out / "nginx.conf"
    tmp = out / "nginx.conf.new"
    tmp.write_text(text)
    tmp.replace(conf)
    return conf


# The containers' gateways: this configuration mounted at /etc/chat4all/nginx, the certificate
# at /etc/chat4all/tls; behind it, the API Service (deploy/k8s/base/gateway.yaml, the ConfigMap
# chat4all-gateway and the Secret chat4all-gateway-tls) or the two API containers of Compose.
_CONTAINER = {
    "CHAT4ALL_GATEWAY_HOST": "0.0.0.0",
    "CHAT4ALL_GATEWAY_CERT": "/etc/chat4all/tls/tls.crt",
    "CHAT4ALL_GATEWAY_KEY": "/etc/chat4all/tls/tls.key",
    "CHAT4ALL_GATEWAY_CONFIG_DIR": "/etc/chat4all/nginx",
}
PROFILES = {
    "--kubernetes": {**_CONTAINER, "CHAT4ALL_GATEWAY_UPSTREAMS": "chat4all-api:8080"},
    "--compose": {**_CONTAINER, "CHAT4ALL_GATEWAY_UPSTREAMS": "api-1:8080 api-2:8080"},
}


def main(argv: list[str]) -> int:
    env = dict(os.environ)
    if len(argv) == 3 and argv[1] in PROFILES:
        env, argv = dict(PROFILES[argv[1]]), [argv[0], argv[2]]
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        print(render(env, Path(argv[1])))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
