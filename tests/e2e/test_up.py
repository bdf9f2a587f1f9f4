"""`make up` itself: the production profile behind the gateway starts, serves through
https://…:<gateway port>, keeps its API nodes on loopback, and stops cleanly on Ctrl-C. Every port
is a free one (the defaults, 8443/8088/8101-8121, may be in use by a developer's own `make up`)."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.processes import free_port
from tests.e2e.test_production import Stack, stack  # noqa: F401  (the fixture: a database, a namespace)

pytestmark = [pytest.mark.e2e, pytest.mark.production]

ROOT = Path(__file__).resolve().parents[2]


def listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) with a socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                found.append(address)
    return found


@pytest.mark.timeout(400)
async def test_make_up_serves_through_the_gateway_and_stops_on_ctrl_c(stack: Stack, tmp_path: Path) -> None:  # noqa: F811
    apis, routers, webhooks = [free_port(), free_port()], [free_port(), free_port()], free_port()
    https, http = free_port(), free_port()
    gateway_dir = tmp_path / "gateway"
    env = {
        **os.environ,
        **stack.env,
        "CHAT4ALL_UP_API_PORTS": " ".join(map(str, apis)),
        "CHAT4ALL_UP_ROUTER_PORTS": " ".join(map(str, routers)),
        "CHAT4ALL_UP_WEBHOOKS_PORTS": str(webhooks),
        "CHAT4ALL_GATEWAY_HTTPS_PORT": str(https),
        "CHAT4ALL_GATEWAY_HTTP_PORT": str(http),
        "CHAT4ALL_GATEWAY_DIR": str(gateway_dir),
        "CHAT4ALL_UP_LOGS": str(tmp_path / "logs"),
        "CHAT4ALL_BCRYPT_ROUNDS": "4",
    }
    if os.environ.get("CHAT4ALL_TEST_S3_URL"):
        env["CHAT4ALL_BLOB_URL"] = os.environ["CHAT4ALL_TEST_S3_URL"]
    output = tmp_path / "make-up.out"
    with output.open("wb") as out:
        make = subprocess.Popen(["make", "up"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        async def up() -> bool:
            assert make.poll() is None, output.read_text()[-3000:]
            return "production profile is up" in output.read_text()

        await wait_until(up, timeout=300, interval=0.5, what="make up to say it is up")
        text = output.read_text()
        url = f"https://127.0.0.1:{https}"
        assert f"API      {url}" in text  # the address it tells people to use is the gateway's

        trust = ssl.create_default_context(cafile=str(gateway_dir / "tls" / "ca.crt"))
        async with httpx.AsyncClient(base_url=url, verify=trust) as client:
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.get("/api-docs")).status_code == 200
        async with httpx.AsyncClient() as plain:
            assert (await plain.get(f"http://127.0.0.1:{http}/api-docs")).headers["location"] == f"{url}/api-docs"
        async with Chat4AllClient(url, verify=trust) as alice:
            await alice.register("up-alice", PASSWORD)
            await alice.login("up-alice", PASSWORD)
            assert (await alice.me())["username"] == "up-alice"
        for port in apis:  # the API nodes listen on loopback only; clients come through the gateway
            assert listening(port) == ["0100007F"], listening(port)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
        try:
            make.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    for port in [*apis, *routers, webhooks, https, http]:
        assert listening(port) == [], f"port {port} still served after make up stopped"
    assert not (gateway_dir / "nginx.pid").exists()
    assert "stopping Chat4All processes and the gateway" in output.read_text()
