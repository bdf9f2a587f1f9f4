"""R13.2 for real: one message is one trace in Jaeger (scripts/services.sh runs it, built from the
Go module proxy), across three processes and the broker — the request that accepts it, the
publish to Kafka, the router's persist and push, the WhatsApp send and the webhook callback,
the later hops joined through the traceparent kept in the delivery and outbox rows."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from chat4all.client import Chat4AllClient
from tests.conftest import PASSWORD, wait_until
from tests.e2e.processes import Process, free_port
from tests.ops.production import production_env, required_url
from tests.webhook_receiver import running_receiver

pytestmark = [pytest.mark.e2e, pytest.mark.production]


def _spans(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Each span with its process's role (the chat4all.role resource attribute) as "role"."""
    roles = {
        pid: {t["key"]: t["value"] for t in p["tags"]}.get("chat4all.role") for pid, p in trace["processes"].items()
    }
    return [{**s, "role": roles[s["processID"]]} for s in trace["spans"]]


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


@pytest.mark.timeout(300)
async def test_one_message_to_whatsapp_with_a_webhook_is_one_trace_in_jaeger(tmp_path: Path) -> None:
    jaeger = required_url("CHAT4ALL_TEST_JAEGER_URL")
    otlp = required_url("CHAT4ALL_TEST_OTLP_ENDPOINT")
    async with production_env("traces") as env, running_receiver() as receiver:
        api_port = free_port()
        env |= {
            "CHAT4ALL_OTLP_ENDPOINT": otlp,
            "CHAT4ALL_TRACE_SAMPLE_RATIO": "1.0",
            "CHAT4ALL_CONNECTORS_SIMULATED": "true",
            "CHAT4ALL_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",  # where the provider's receipts go
            "CHAT4ALL_WEBHOOKS_ALLOWED_NETWORKS": "127.0.0.0/8",
            "CHAT4ALL_WEBHOOKS_POLL_INTERVAL_S": "0.1",
            "CHAT4ALL_VERIFY_CHANNEL_IDENTITIES": "false",  # the subject is the trace, not the claim
        }
        processes = [
            Process(tmp_path / role, port, tmp_path / f"{role}.log", role=role, env={**env, "CHAT4ALL_NODE_ID": f"{role}-traces"})
            for role, port in (("api", api_port), ("router", free_port()), ("webhooks", free_port()))
        ]
        try:
            for p in processes:
                p.start()
            for p in processes:
                await p.ready(timeout=90)  # three processes starting at once on 2 cores
            api = processes[0].base_url
            alice, bob = Chat4AllClient(api), Chat4AllClient(api)
            for client, name in ((alice, "alice"), (bob, "bob")):
                await client.register(name, PASSWORD)
                await client.login(name, PASSWORD)
            await bob.set_channel("whatsapp", "+5511999990000")
            await alice.request("POST", "/v1/webhooks", json={"url": receiver.url()}, expect=(201,))
            conversation_id = (await alice.create_conversation("private", ["bob"]))["conversation_id"]

            trace_id = secrets.token_hex(16)
            async with httpx.AsyncClient(base_url=api) as http:
                answer = await http.post(
                    "/v1/messages",
                    json={"conversation_id": conversation_id, "channels": ["internal", "whatsapp"],
                          "payload": {"type": "text", "text": "traced across every hop"}},
                    headers={"Authorization": f"Bearer {alice.access_token}", "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                )
            assert answer.status_code == 202, answer.text
            message_id = answer.json()["message_id"]

            async def whatsapp_sent_callback() -> bool:
                return any(
                    r.json["data"]["message_id"] == message_id and r.json["data"]["channel"] == "whatsapp"
                    for r in receiver.requests
                )

            await wait_until(whatsapp_sent_callback, timeout=60, what="the whatsapp delivery's callback")

            wanted = {
                ("api", "POST /v1/messages"),
                ("api", "publish message.events"),
                ("router", "route message"),
                ("router", "persist"),
                ("router", "push"),
                ("router", "send whatsapp"),
                ("webhooks", "webhook message.status"),
            }

            async def complete_trace() -> list[dict[str, Any]] | None:
                async with httpx.AsyncClient(base_url=jaeger, timeout=5) as http:
                    found = await http.get(f"/api/traces/{trace_id}")
                if found.status_code != 200 or not found.json().get("data"):
                    return None
                (trace,) = found.json()["data"]
                spans = _spans(trace)
                return spans if wanted <= {(s["role"], s["operationName"]) for s in spans} else None

            # the processes export every few seconds (the SDK's batch processor)
            spans = await wait_until(complete_trace, timeout=60, interval=0.5, what=f"trace {trace_id} in Jaeger")
        finally:
            for p in processes:
                if p.proc is not None and p.proc.poll() is None:
                    p.kill(15)

    assert {s["traceID"] for s in spans} == {trace_id}
    by_id = {s["spanID"]: s for s in spans}
    named = {s["operationName"]: s for s in spans}

    def parent_of(name: str) -> str:
        return by_id[_parent(named[name])]["operationName"]

    # one chain: request → publish → route (→ persist, push, send) ...
    assert parent_of("publish message.events") == "POST /v1/messages"
    assert parent_of("route message") == "publish message.events"
    assert parent_of("persist") == parent_of("push") == parent_of("send whatsapp") == "route message"
    # ... and the callbacks hang under the hop that made their status: the router (SENT) or
    # the WhatsApp send (a DELIVERED the provider confirmed at once)
    callbacks = [s for s in spans if s["operationName"] == "webhook message.status"]
    assert {by_id[_parent(c)]["operationName"] for c in callbacks} <= {"route message", "send whatsapp"}
    tags = {t["key"]: t["value"] for t in named["send whatsapp"]["tags"]}
    assert tags["chat4all.outcome"] == "sent" and tags["messaging.message.id"] == message_id
    assert all(
        {t["key"]: t["value"] for t in c["tags"]}["http.response.status_code"] == 200 for c in callbacks
    )
    # the receiver was handed the trace too
    assert any(r.headers.get("traceparent", "").split("-")[1] == trace_id for r in receiver.requests)
