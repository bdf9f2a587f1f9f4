"""`make up-ha` itself: it brings the HA profile up behind its own gateway, both API nodes
serve (a message sent through the gateway reaches a socket held by a node directly, and one
sent to a node reaches a socket through the gateway), and Ctrl-C stops the Chat4All processes
and the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from chat4all.client import Chat4AllClient
from tests.chaos.cluster import ROOT, services
from tests.conftest import PASSWORD, server_missing

pytestmark = [pytest.mark.e2e, pytest.mark.chaos, pytest.mark.timeout(600)]
API_NODES = ("http://127.0.0.1:18001", "http://127.0.0.1:18002")
GATEWAY = "https://127.0.0.1:18443"


def _wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float) -> list[str]:
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            raise AssertionError(f"scripts/up.sh --ha exited with {proc.returncode}:\n{''.join(seen)[-3000:]}")
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(seen)[-3000:]}")


async def test_make_up_ha_serves_on_both_nodes_and_stops_on_interrupt(tmp_path: Path) -> None:
    if os.environ.get("CHAT4ALL_CHAOS") == "0":
        server_missing("CHAT4ALL_CHAOS=0: the HA profile is switched off")
    was_up = "stopped" not in services("status", "--ha")
    env = {**os.environ, "CHAT4ALL_DATA_DIR": str(tmp_path / "data"), "CHAT4ALL_BCRYPT_ROUNDS": "4"}
    proc = subprocess.Popen(
        ["make", "-s", "up-ha"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        await asyncio.to_thread(_wait_for_line, proc, "Chat4All HA profile is up", 420)
        async with httpx.AsyncClient() as http:
            for url in API_NODES:
                assert (await http.get(f"{url}/health/ready")).status_code == 200
        state = Path(os.environ.get("CHAT4ALL_SERVICES_DIR") or ROOT / ".services")  # as scripts/up.sh
        ca = ssl.create_default_context(cafile=state / "gateway-ha" / "tls" / "ca.crt")
        async with httpx.AsyncClient(verify=ca) as https:
            assert (await https.get(f"{GATEWAY}/health/ready")).status_code == 200
        suffix = os.urandom(3).hex()
        async with Chat4AllClient(GATEWAY, verify=ca) as alice, Chat4AllClient(API_NODES[1]) as bob:
            for client, name in ((alice, f"alice-{suffix}"), (bob, f"bob-{suffix}")):
                await client.register(name, PASSWORD)
                await client.login(name, PASSWORD)
            conv = await alice.create_conversation("private", [f"bob-{suffix}"])
            async with bob.websocket() as socket:
                first = await alice.send_text(conv["conversation_id"], "through the gateway")
                frame = await socket.receive(timeout=30)
                assert frame["type"] == "message" and frame["message"]["message_id"] == first["message_id"]
            async with alice.websocket() as socket:
                sent = await bob.send_text(conv["conversation_id"], "to a socket behind the gateway")
                frame = await socket.receive(timeout=30)
                while frame["type"] == "status":  # her first message's statuses may still come first
                    assert frame["status"]["message_id"] == first["message_id"]
                    frame = await socket.receive(timeout=30)
                assert frame["type"] == "message" and frame["message"]["message_id"] == sent["message_id"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        if not was_up:
            await asyncio.to_thread(services, "down", "--ha")
    async with httpx.AsyncClient(verify=False) as http:
        for url in (*API_NODES, GATEWAY):
            with pytest.raises(httpx.TransportError):
                await http.get(f"{url}/health/live", timeout=2)
