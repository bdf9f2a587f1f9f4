"""``chat4all demo chat``: two people, a conversation, messages both ways over the WebSocket,
and the sender's ticks going SENT → DELIVERED → READ."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat4all.demos.narrate import Narrator, next_frame, server_at, tag, user


async def run_chat_demo(url: str | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    n = Narrator(echo)
    async with server_at(url, echo) as (base, _):
        t = tag()
        alice_name, bob_name = f"alice-{t}", f"bob-{t}"
        n.step(f"{alice_name} and {bob_name} sign up and sign in")
        alice, bob = await user(base, alice_name), await user(base, bob_name)
        try:
            conversation = await alice.create_conversation("private", [bob_name])
            cid = conversation["conversation_id"]
            n.check(sorted(conversation["members"]) == sorted([alice_name, bob_name]), "a private conversation of the two")

            async with alice.websocket() as alice_ws, bob.websocket() as bob_ws:
                n.step(f"{alice_name} writes; {bob_name} has the app open")
                sent = await alice.send_text(cid, "Hi Bob! Lunch at noon?")
                mid = sent["message_id"]
                n.check(sent["status"] == "accepted", "the send is accepted (202)")
                frame = await next_frame(bob_ws, "message")
                n.check(frame["message"]["message_id"] == mid, f"{bob_name}'s socket receives it live",
                        frame["message"]["message_id"])
                n.say(f"{bob_name} sees: {frame['message']['payload']['text']!r} (sequence {frame['message']['sequence_number']})")

                statuses: list[str] = []

                async def status_is(wanted: str) -> bool:
                    frame = await next_frame(alice_ws, "status")
                    if frame["status"]["message_id"] == mid:
                        statuses.append(frame["status"]["status"])
                    return wanted in statuses

                n.step(f"{bob_name}'s app acknowledges it (ack frame): delivered")
                await bob_ws.ack([mid])
                await n.until(lambda: status_is("DELIVERED"), f"{alice_name}'s socket gets the DELIVERED status")
                n.step(f"{bob_name} reads it (read frame)")
                await bob_ws.read([mid])
                await n.until(lambda: status_is("READ"), f"{alice_name}'s socket gets the READ status")
                status = await alice.message_status(mid)
                n.check(status["status"] == "READ", "GET /v1/messages/{id}/status says READ", status["status"])
                history = [h["status"] for h in status["history"]]
                n.check(history[:3] == ["SENT", "DELIVERED", "READ"], "its history is SENT → DELIVERED → READ", history)

                n.step(f"{bob_name} answers")
                reply = await bob.send_text(cid, "Noon works. See you!")
                frame = await next_frame(alice_ws, "message")
                n.check(frame["message"]["message_id"] == reply["message_id"], f"{alice_name} receives the answer live")
                await alice_ws.read([reply["message_id"]])

            page = await alice.conversation_messages(cid)
            texts = [m["payload"]["text"] for m in page["items"]]
            n.check(texts == ["Hi Bob! Lunch at noon?", "Noon works. See you!"], "the history has both, once each, in order", texts)
        finally:
            await alice.close()
            await bob.close()
    echo(f"chat demo: {n.checks} checks passed")
    return {"checks": n.checks, "statuses": history}
