"""A third-party connector, installed as a separate distribution, is picked up with no core
change (R9.2): its own pyproject declares an entry point in ``chat4all.connectors``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.connector_helpers import chat4all, wait_statuses
from tests.e2e.processes import Process, free_port

pytestmark = pytest.mark.e2e

DISTRIBUTION = "acme-chat4all-connector"

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "acme-chat4all-connector"
version = "1.0.0"
description = "Chat4All connector for the ACME messenger (a test plugin)"

[tool.setuptools]
py-modules = ["acme_chat4all"]

[project.entry-points."chat4all.connectors"]
acme = "acme_chat4all:AcmeConnector"
"""

# written only against the public plugin API: chat4all.connectors.base
MODULE = '''\
"""ACME messenger: writes what it "sends" to a file, one JSON line per message."""

import json
from pathlib import Path

from chat4all.connectors.base import (
    Capabilities, DeliveryResult, Forbidden, InboundMessage, InvalidInput, PermanentError,
)


class AcmeConnector:
    capabilities = Capabilities(max_file_bytes=None)

    def __init__(self, context):
        self.outbox = Path(context.options["outbox"])
        self.key = context.options.get("key", "")
        self.count = 0

    async def connect(self):
        self.outbox.parent.mkdir(parents=True, exist_ok=True)

    async def send_message(self, message):
        if message.external_id.startswith("nobody"):
            raise PermanentError("acme: no such account")
        self.count += 1
        line = {"to": message.external_id, "text": message.text, "message_id": message.message_id}
        with self.outbox.open("a") as out:
            out.write(json.dumps(line) + "\\n")
        return DeliveryResult(delivered=True, provider_message_ids=(f"acme-{message.message_id}",))

    async def send_file(self, message):
        return await self.send_message(message)

    async def handle_webhook(self, request):
        if request.headers.get("x-acme-key") != self.key:
            raise Forbidden("wrong key")
        try:
            data = json.loads(request.body)
            return [InboundMessage(external_id=data["from"], text=data["text"], provider_message_id=data["id"])]
        except (ValueError, KeyError) as exc:
            raise InvalidInput("not an ACME event") from exc

    async def disconnect(self):
        pass
'''


def _pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture
def acme_installed(tmp_path: Path) -> Iterator[None]:
    source = tmp_path / "acme-dist"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "acme_chat4all.py").write_text(MODULE)
    installed = _pip("install", "--no-deps", "--no-build-isolation", "--quiet", str(source))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        yield
    finally:
        _pip("uninstall", "--yes", "--quiet", DISTRIBUTION)


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    p = Process(tmp_path / "data", free_port(), tmp_path / "server.log")
    yield p
    if p.proc is not None and p.proc.poll() is None:
        p.kill(signal.SIGTERM)


async def test_a_connector_installed_as_its_own_distribution_delivers_and_takes_webhooks(
    acme_installed: None, process: Process, tmp_path: Path
) -> None:
    outbox = tmp_path / "acme-outbox.jsonl"
    assert "acme\tacme_chat4all:AcmeConnector" in chat4all(process.data_dir, "connectors", "plugins")
    chat4all(process.data_dir, "connectors", "set", "acme", "-o", f"outbox={outbox}", "-o", "key=acme-key")
    process.start()
    await process.ready()
    async with Chat4AllClient(process.base_url) as alice, Chat4AllClient(process.base_url) as bob:
        for client, name in ((alice, "alice"), (bob, "bob")):
            await client.register(name, PASSWORD)
            await client.login(name, PASSWORD)
        # a channel the core has never heard of, and still the identity is proven through it
        claim = await bob.set_channel("acme", "bob@acme")
        proof = {"from": "bob@acme", "text": f"code {claim['code']}", "id": "acme-claim"}
        async with httpx.AsyncClient() as http:
            answer = await http.post(
                f"{process.base_url}/v1/connectors/acme/webhook", json=proof, headers={"x-acme-key": "acme-key"}
            )
        assert answer.status_code == 200, answer.text
        assert (await bob.me())["channels"] == {"acme": "bob@acme"}
        conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]
        direct = await alice.send_text(conversation_id, "via acme", channels=["acme"])
        everywhere = await alice.send_text(conversation_id, "via all", channels=["all"])
        await wait_statuses(alice, direct["message_id"], {"acme": "DELIVERED"})
        final = await wait_statuses(alice, everywhere["message_id"], {"acme": "DELIVERED"})
        assert sorted(c for _, c in final) == ["acme", "internal"]
        lines = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert lines == [
            {"to": "bob@acme", "text": "via acme", "message_id": direct["message_id"]},
            {"to": "bob@acme", "text": "via all", "message_id": everywhere["message_id"]},
        ]

        async with httpx.AsyncClient() as http:
            url = f"{process.base_url}/v1/connectors/acme/webhook"
            refused = await http.post(url, json={"from": "bob@acme", "text": "x", "id": "1"}, headers={"x-acme-key": "no"})
            answer = await http.post(url, json={"from": "bob@acme", "text": "hi from acme", "id": "1"}, headers={"x-acme-key": "acme-key"})
        assert refused.status_code == 403 and answer.json() == {"ok": True, "accepted": 1, "ignored": 0}

        async def answered() -> dict | None:
            items = (await alice.conversation_messages(conversation_id))["items"]
            return items[-1] if items[-1]["from"] == "bob" else None

        message = await wait_until(answered, what="bob's message from acme")
        assert message["payload"]["text"] == "hi from acme" and message["metadata"] == {"via": "acme"}
    assert "acme" not in (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()  # no core change
