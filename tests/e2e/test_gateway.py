"""The gateway for real: Debian's nginx rendered from deploy/nginx/ in front of two API nodes of
the production profile (PostgreSQL, Kafka, Redis, etcd from scripts/services.sh) and a router."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
import websockets

from chat4all.bench.stack import bench_limits
from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from chat4all.adapters.kafka import delete_namespace
from tests.e2e.gateway import Gateway
from tests.e2e.test_production import Stack, _urls

pytestmark = [pytest.mark.e2e, pytest.mark.production]

ALLOWED_ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Two API nodes and a router of the production profile, shared by this module's tests (each
    starts gateways of its own in front of them, and uses usernames of its own)."""
    urls = _urls()
    suffix = secrets.token_hex(4)
    pg = sa.engine.make_url(urls["CHAT4ALL_TEST_POSTGRES_URL"])
    database = f"chat4all_gw_{suffix}"
    admin = dict(host=pg.host, port=pg.port or 5432, user=pg.username, password=pg.password, database=pg.database)
    asyncio.run(_admin(admin, f'CREATE DATABASE "{database}"'))
    env = {
        "CHAT4ALL_DATABASE_URL": pg.set(database=database).render_as_string(hide_password=False),
        "CHAT4ALL_EVENT_LOG_URL": urls["CHAT4ALL_TEST_KAFKA_URL"],
        "CHAT4ALL_PRESENCE_URL": urls["CHAT4ALL_TEST_REDIS_URL"],
        "CHAT4ALL_METADATA_URL": urls["CHAT4ALL_TEST_ETCD_URL"],
        "CHAT4ALL_NAMESPACE": f"gw-{suffix}",
        "CHAT4ALL_JWT_SECRET": secrets.token_urlsafe(32),
        # the limits under test here are the gateway's; the nodes' own (one user's k6 load in the
        # failover test, many logins from one address) are lifted as the bench lifts them
        **bench_limits(flooding=False),
    }
    s = Stack(tmp_path_factory.mktemp("gateway"), env)
    try:
        migrate = subprocess.run(
            [sys.executable, "-m", "chat4all", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=300
        )
        assert migrate.returncode == 0, migrate.stderr
        start_nodes(s)
        yield s
    finally:
        s.stop_all()
        asyncio.run(_admin(admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        asyncio.run(delete_namespace(urls["CHAT4ALL_TEST_KAFKA_URL"], env["CHAT4ALL_NAMESPACE"]))


async def _admin(dsn: dict, sql: str) -> None:
    conn = await asyncpg.connect(**dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def start_nodes(stack: Stack) -> None:
    """api-1, api-2 and router-1, started and ready (a loaded machine takes a while to import them)."""
    stack.process("api", "api-1")
    stack.process("api", "api-2")
    stack.process("router", "router-1")
    for p in [*stack.apis, *stack.routers]:
        p.start()
    deadline = time.monotonic() + 120
    for p in [*stack.apis, *stack.routers]:
        while True:
            assert p.proc is not None and p.proc.poll() is None, p.log.read_text()[-2000:]
            try:
                if httpx.get(f"{p.base_url}/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{p.log.stem} not ready after 120s"
            time.sleep(0.2)


@pytest.fixture
async def gateways() -> AsyncIterator[list[Gateway]]:
    """The gateways a test started (start_gateway), stopped at its end."""
    made: list[Gateway] = []
    yield made
    for g in made:
        g.stop()


async def start_gateway(nodes: Stack, made: list[Gateway], **settings: str) -> Gateway:
    upstreams = [f"127.0.0.1:{p.port}" for p in nodes.apis]
    directory = nodes.tmp / f"gateway-{secrets.token_hex(3)}"
    g = Gateway(directory, upstreams, jwt_secret=nodes.env["CHAT4ALL_JWT_SECRET"], **settings)
    made.append(g)
    await g.start()
    return g


async def user(g: Gateway, username: str) -> Any:
    """A new user (the name made unique: the module's tests share one database)."""
    client = Chat4AllClient(g.url, verify=g.trust())
    username = f"{username}-{secrets.token_hex(3)}"
    client.username = username  # type: ignore[attr-defined]
    await client.register(username, PASSWORD)
    await client.login(username, PASSWORD)
    return client


def assert_gateway_error(response: httpx.Response, status: int, code: str) -> dict:
    """The platform's error shape (SPEC §2), as the gateway answers it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "trace_id"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert len(body["error"]["trace_id"]) == 32 and body["error"]["trace_id"] == response.headers["x-trace-id"]
    return body["error"]


# ---------------------------------------------------------------- TLS, redirect, headers


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_with_the_local_ca_http2_hsts_and_plain_http_redirects(nodes: Stack, gateways: list[Gateway]) -> None:
    g = await start_gateway(nodes, gateways)
    async with g.client() as http:  # verify=the CA: a certificate that does not chain to it fails here
        ready = await http.get("/health/ready")
        docs = await http.get("/api-docs")
        app = await http.get("/")
        script = re.search(r'src="(/assets/[^"]+\.js)"', app.text)
        app_js = await http.get(script.group(1)) if script else None
        spec = await http.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
        traced = await http.get("/health/live", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01", "X-Request-Id": "req-1"})
        metrics = await http.get("/metrics")
        too_large = await http.post("/v1/messages", content=b"x" * (1_048_576 + 1), headers={"Content-Type": "application/json"})
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.headers["strict-transport-security"].startswith("max-age=")
    assert ready.headers["x-content-type-options"] == "nosniff" and ready.headers["x-frame-options"] == "DENY"
    assert len(ready.headers["x-request-id"]) == 32 and ready.headers["x-trace-id"] == ready.headers["x-request-id"]
    assert docs.status_code == 200 and "swagger" in docs.text.lower()  # Swagger UI through the gateway
    assert app.status_code == 200 and app_js is not None and app_js.status_code == 200  # the web app too
    assert spec.status_code == 200 and spec.headers["content-encoding"] == "gzip" and "/v1/messages" in spec.json()["paths"]
    assert traced.headers["x-trace-id"] == "ab" * 16 and traced.headers["x-request-id"] == "req-1"
    assert_gateway_error(metrics, 404, "not_found")  # node metrics are scraped on the nodes, not at the edge
    assert_gateway_error(too_large, 413, "payload_too_large")  # the app's 1 MiB, refused at the edge

    with pytest.raises(httpx.ConnectError):  # the system's trust store does not know the local CA
        async with httpx.AsyncClient(verify=True) as untrusted:
            await untrusted.get(f"{g.url}/health/live")

    def handshake(alpn: list[str], version: ssl.TLSVersion | None = None) -> tuple[str | None, str | None]:
        context = g.trust()
        context.set_alpn_protocols(alpn)
        if version is not None:
            context.minimum_version = context.maximum_version = version
        with socket.create_connection(("127.0.0.1", g.https_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.selected_alpn_protocol(), tls.version()

    assert handshake(["h2", "http/1.1"])[0] == "h2"
    assert handshake(["http/1.1"], ssl.TLSVersion.TLSv1_2) == ("http/1.1", "TLSv1.2")
    with pytest.raises(ssl.SSLError):  # TLS 1.1 and below are refused
        handshake(["http/1.1"], ssl.TLSVersion.TLSv1_1)

    async with httpx.AsyncClient() as plain:
        redirect = await plain.get(f"http://127.0.0.1:{g.http_port}/v1/users/me?x=1")
    assert redirect.status_code == 301
    assert redirect.headers["location"] == f"https://127.0.0.1:{g.https_port}/v1/users/me?x=1"


# ---------------------------------------------------------------- WebSocket and the access log


async def test_a_socket_through_the_gateway_receives_a_message_sent_through_it_and_no_token_is_logged(
    nodes: Stack, gateways: list[Gateway]
) -> None:
    g = await start_gateway(nodes, gateways)
    alice, bob = await user(g, "alice"), await user(g, "bob")
    conversation_id = (await alice.create_conversation("private", [bob.username]))["conversation_id"]

    async with bob.websocket() as socket:  # wss:// through the gateway, token in the header
        await socket.ping()
        assert (await socket.receive())["type"] == "pong"
        sent = await alice.send_text(conversation_id, "through the gateway", message_id=str(uuid.uuid4()))
        frame = await socket.receive(timeout=15)
        assert frame["type"] == "message" and frame["message"]["message_id"] == sent["message_id"]

    # a socket authenticated by ?token= (a browser cannot set headers on a WebSocket)
    context = g.trust()
    wss = g.url.replace("https://", "wss://") + f"/v1/ws?token={bob.access_token}"
    async with websockets.connect(wss, ssl=context) as ws:
        await ws.send('{"type":"ping"}')
        frames = [await asyncio.wait_for(ws.recv(), 10) for _ in range(2)]  # the unacked message, then pong
        assert any('"pong"' in f for f in frames), frames

    # the v2 socket (docs/api-v2.md) is upgraded by the gateway too, the token in the subprotocol
    v2 = g.url.replace("https://", "wss://") + "/v2/ws"
    offered = ["chat4all.v2", f"bearer.{bob.access_token}"]
    async with websockets.connect(v2, ssl=context, subprotocols=offered) as ws:  # type: ignore[arg-type]
        await ws.send('{"type":"ping"}')
        frames = [await asyncio.wait_for(ws.recv(), 10) for _ in range(2)]
        assert any('"pong"' in f for f in frames), frames

    def logged() -> list[dict]:
        return [e for e in g.access_entries() if e["path"] == "/v1/ws"]

    entries = await wait_until(lambda: _async(len(logged()) >= 2 and logged()), timeout=10, what="the access log")
    assert {e["status"] for e in entries} == {101}
    assert {e["client_key"] for e in entries} >= {f"u:{bob.username}"}  # the header socket is keyed by its user
    text = g.access_log.read_text() + g.error_log.read_text()
    for token in (alice.access_token, bob.access_token, alice.refresh_token, bob.refresh_token):
        assert token not in text
        assert token.split(".")[2] not in text  # not even the signature
    assert "token=" not in text and "Bearer" not in text and PASSWORD not in text
    for c in (alice, bob):
        await c.close()


async def _async(value):  # wait_until polls coroutines
    return value


# ---------------------------------------------------------------- rate limits


async def _burst(g: Gateway, token: str | None, count: int, path: str = "/v1/users/me", concurrency: int = 16) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    results: list[httpx.Response] = []
    queue = iter(range(count))
    async with g.client(headers=headers, limits=httpx.Limits(max_connections=concurrency)) as http:

        async def worker() -> None:
            for _ in queue:
                results.append(await http.get(path))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results


def assert_rate_limited(response: httpx.Response, *, limit: int) -> None:
    assert_gateway_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-limit"] == str(limit)
    assert response.headers["ratelimit-remaining"] == "0"
    assert int(response.headers["ratelimit-reset"]) >= 1


async def test_over_its_limit_a_client_gets_429_in_the_error_shape_while_another_is_served(
    nodes: Stack, gateways: list[Gateway]
) -> None:
    g = await start_gateway(
        nodes, gateways,
        CHAT4ALL_GATEWAY_RATE_PER_MINUTE="60", CHAT4ALL_GATEWAY_BURST="10",
        CHAT4ALL_GATEWAY_AUTH_RATE_PER_MINUTE="60", CHAT4ALL_GATEWAY_AUTH_BURST="4",
    )
    alice, bob = await user(g, "alice"), await user(g, "bob")  # 4 auth calls: within the auth burst

    started = time.monotonic()
    answers = await _burst(g, alice.access_token, 40)
    elapsed = time.monotonic() - started
    by_status = Counter(r.status_code for r in answers)
    assert set(by_status) == {200, 429}
    # a bucket of 10 + 1 per second: what got through is what the rate allows, no more
    assert 11 <= by_status[200] <= 11 + int(elapsed) + 1, (by_status, elapsed)
    for r in answers:
        if r.status_code == 429:
            assert_rate_limited(r, limit=60)

    # bob is another client: his allowance is untouched by alice's
    assert {r.status_code for r in await _burst(g, bob.access_token, 5)} == {200}
    # a token that does not verify is no way around the limit: it is counted by address
    forged = alice.access_token[:-4] + ("AAAA" if not alice.access_token.endswith("AAAA") else "BBBB")
    anonymous = Counter(r.status_code for r in await _burst(g, forged, 30, concurrency=8))
    assert anonymous[429] > 0 and set(anonymous) == {401, 429}

    # /v1/auth/* has its own, stricter zone per address: 4 at once, then 1 a second
    async with g.client() as http:
        logins = [
            await http.post("/v1/auth/token", json={"username": alice.username, "password": PASSWORD}) for _ in range(8)
        ]
    assert [r.status_code for r in logins].count(429) >= 3
    assert_rate_limited(next(r for r in logins if r.status_code == 429), limit=60)
    for c in (alice, bob):
        await c.close()


@pytest.mark.timeout(240)
async def test_the_default_1000_per_minute_refuses_the_excess_of_1100_requests(
    nodes: Stack, gateways: list[Gateway], tmp_path: Path
) -> None:
    g = await start_gateway(nodes, gateways)  # the defaults of make up: 1000/min, burst 100
    alice, bob = await user(g, "alice"), await user(g, "bob")

    # curl sends them (16 at a time over HTTP/2): a Python client on a busy 2-core machine
    # would need more than the minute
    config = tmp_path / "curl.conf"
    config.write_text(
        f'header = "Authorization: Bearer {alice.access_token}"\n'
        + f'url = "{g.url}/v1/users/me"\noutput = "/dev/null"\n' * 1100
    )
    started = time.monotonic()
    done = subprocess.run(
        ["curl", "-s", "--parallel", "--parallel-max", "16", "--http2", "--cacert", g.ca,
         "-w", "%{http_code}\\n", "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    elapsed = time.monotonic() - started
    statuses = Counter(int(code) for code in done.stdout.split())
    assert sum(statuses.values()) == 1100 and elapsed < 60, (statuses, elapsed, done.stderr[-500:])
    allowed = 101 + 1000 * elapsed / 60  # the burst, then 1000 a minute
    assert set(statuses) == {200, 429}
    assert 101 <= statuses[200] <= allowed + 2, (statuses, elapsed)
    print(f"\n1,100 requests in {elapsed:.1f}s: {statuses[200]} served, {statuses[429]} refused with 429")

    over = await _burst(g, alice.access_token, 60, concurrency=8)  # still over: refused in the error shape
    refused = [r for r in over if r.status_code == 429]
    assert refused and {r.status_code for r in over} <= {200, 429}
    for r in refused:
        assert_rate_limited(r, limit=1000)
    assert {r.status_code for r in await _burst(g, bob.access_token, 20)} == {200}  # another client is unaffected
    for c in (alice, bob):
        await c.close()


# ---------------------------------------------------------------- CORS


async def test_cors_preflight_is_answered_for_an_allowed_origin_only(nodes: Stack, gateways: list[Gateway]) -> None:
    g = await start_gateway(nodes, gateways, CHAT4ALL_CORS_ORIGINS=f"{ALLOWED_ORIGIN}, http://localhost:5173")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    async with g.client() as http:
        allowed = await http.options("/v1/messages", headers={"Origin": ALLOWED_ORIGIN, **preflight})
        other = await http.options("/v1/messages", headers={"Origin": "https://evil.example.com", **preflight})
        simple = await http.get("/health/live", headers={"Origin": ALLOWED_ORIGIN})
        simple_other = await http.get("/health/live", headers={"Origin": "https://evil.example.com"})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= {h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")}
    assert "access-control-allow-credentials" not in allowed.headers and "origin" in allowed.headers["vary"].lower()

    assert_gateway_error(other, 403, "forbidden")
    assert not any(h.startswith("access-control-") for h in other.headers)

    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-methods" not in simple.headers  # only on preflights
    assert not any(h.startswith("access-control-") for h in simple_other.headers)
