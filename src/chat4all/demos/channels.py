"""``chat4all demo channels``: one person on WhatsApp and Instagram too. A send to "all"
reaches them in the app and on both networks, each with its own statuses; their answer from
WhatsApp comes back into the same conversation (R14.3).

The embedded profile's WhatsApp and Instagram are the simulated providers
(connectors/simulated.py), which report receipts through the channels' signed webhooks like a
real provider. Bob proves each identity is his by sending the code the claim answers from it,
and later answers from WhatsApp: the demo posts both as the provider would, signed with the
channel's webhook secret. Against the server it starts it sets one secret for both channels
(``chat4all connectors set``); with ``--url`` give it ``--secret`` (the simulated WhatsApp's
and Instagram's ``secret`` option on that server)."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from chat4all.connectors.simulated import SIGNATURE_HEADER, sign
from chat4all.demos.narrate import DemoFailed, Narrator, next_frame, server_at, tag, user

QUICK_REFRESH = {"CHAT4ALL_CONNECTORS_REFRESH_INTERVAL_S": "0.2"}


async def _set_secret(workdir: Path, channel: str, secret: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAT4ALL_")}
    env["CHAT4ALL_DATA_DIR"] = str(workdir / "data")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chat4all", "connectors", "set", channel, "--option", f"secret={secret}",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if process.returncode:
        raise DemoFailed(f"chat4all connectors set {channel} failed: {err.decode()[-300:]}")


async def _provider_post(base: str, channel: str, secret: str, event: dict[str, Any]) -> httpx.Response:
    """What the simulated provider posts to the channel's webhook, signed."""
    body = orjson.dumps(event)
    async with httpx.AsyncClient() as http:
        return await http.post(f"{base}/v1/connectors/{channel}/webhook", content=body, headers={SIGNATURE_HEADER: sign(secret, body)})


async def run_channels_demo(
    url: str | None = None, echo: Callable[[str], None] = print, secret: str | None = None
) -> dict[str, Any]:
    n = Narrator(echo)
    async with server_at(url, echo, env=QUICK_REFRESH) as (base, workdir):
        if workdir is not None:
            secret = secrets.token_urlsafe(16)
            for channel in ("whatsapp", "instagram"):
                await _set_secret(workdir, channel, secret)
        if not secret:
            raise DemoFailed("--secret is needed with --url: the simulated channels' webhook secret on that server")
        t = tag()
        alice_name, bob_name = f"alice-{t}", f"bob-{t}"
        phone, insta = f"+55119{int(t, 16) % 10**8:08d}", f"bob.{t}"
        n.step(f"{alice_name} and {bob_name} sign up; {bob_name} links WhatsApp {phone} and Instagram {insta}")
        alice, bob = await user(base, alice_name), await user(base, bob_name)
        try:
            for channel, identity in (("whatsapp", phone), ("instagram", insta)):
                claim = await bob.set_channel(channel, identity)
                if claim["status"] == "pending":  # the server links an identity once its owner proves it
                    n.say(f"{channel}: pending until code {claim['code']} arrives from {identity}; {bob_name} sends it")
                    proof = {"type": "message", "from": identity, "id": f"claim.{channel}.{t}", "text": claim["code"]}
                    posted = await _provider_post(base, channel, secret, proof)
                    n.check(posted.status_code == 200, f"the {channel} webhook takes the code", posted.text)
            me = await bob.me()
            n.check(me["channels"] == {"whatsapp": phone, "instagram": insta}, "GET /v1/users/me lists both", me["channels"])
            cid = (await alice.create_conversation("private", [bob_name]))["conversation_id"]

            n.step(f'{alice_name} sends to "all" channels')
            async with bob.websocket() as ws:
                sent = await alice.send_text(cid, "The meeting moved to 3 pm", channels=["all"])
                mid = sent["message_id"]
                frame = await next_frame(ws, "message")
                n.check(frame["message"]["message_id"] == mid, f"{bob_name} gets it in the app")
                await ws.ack([mid])

                async def per_channel() -> dict[str, str] | None:
                    status = await alice.message_status(mid)
                    got = {r["channel"]: r["status"] for r in status["recipients"]}
                    return got if got.get("whatsapp") == "READ" and got.get("instagram") == "READ" else None

                final = await n.until(per_channel, "WhatsApp and Instagram each report DELIVERED then READ", timeout=30)
                for channel, status in sorted(final.items()):
                    n.say(f"{bob_name} on {channel}: {status}")
                n.check(set(final) == {"internal", "whatsapp", "instagram"}, "one delivery per channel, no other", sorted(final))
                n.check(final["internal"] == "DELIVERED", "in the app: DELIVERED (acknowledged by the socket)", final["internal"])
                history = await alice.message_status(mid)
                wa = [h["status"] for h in history["history"] if h["channel"] == "whatsapp"]
                n.check(wa == ["SENT", "DELIVERED", "READ"], "WhatsApp's history is SENT → DELIVERED → READ", wa)

            n.step(f"{bob_name} answers from WhatsApp (the provider posts it to the signed webhook)")
            async with alice.websocket() as alice_ws:
                answer = {"type": "message", "from": phone, "id": f"wamid.{t}", "text": "OK, 3 pm it is"}
                posted = await _provider_post(base, "whatsapp", secret, answer)
                n.check(posted.status_code == 200 and posted.json().get("accepted") == 1, "the webhook accepts it", posted.text)
                frame = await next_frame(alice_ws, "message", timeout=20)
                message = frame["message"]
                n.check(
                    (message["from"], message["conversation_id"], message["payload"].get("text"))
                    == (bob_name, cid, "OK, 3 pm it is"),
                    f"{alice_name} receives it live, from {bob_name}, in the same conversation",
                    message,
                )
                n.check(message.get("metadata", {}).get("via") == "whatsapp", "marked as arrived via WhatsApp", message.get("metadata"))
        finally:
            await alice.close()
            await bob.close()
    echo(f"channels demo: {n.checks} checks passed")
    return {"checks": n.checks, "statuses": final}
