"""``chat4all demo offline``: messages to someone who is offline wait for them; when they
connect, the socket pushes them first, in order, then live traffic."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat4all.demos.narrate import Narrator, next_frame, server_at, tag, user


async def run_offline_demo(url: str | None = None, echo: Callable[[str], None] = print, count: int = 5) -> dict[str, Any]:
    n = Narrator(echo)
    async with server_at(url, echo) as (base, _):
        t = tag()
        alice_name, bob_name = f"alice-{t}", f"bob-{t}"
        n.step(f"{alice_name} and {bob_name} sign up; {bob_name} closes the app")
        alice, bob = await user(base, alice_name), await user(base, bob_name)
        try:
            presence = await alice.presence(bob_name)
            n.check(presence["status"] == "offline", f"{bob_name} is offline", presence["status"])
            cid = (await alice.create_conversation("private", [bob_name]))["conversation_id"]

            n.step(f"{alice_name} sends {count} messages while {bob_name} is away")
            ids = [(await alice.send_text(cid, f"message {i + 1} of {count}"))["message_id"] for i in range(count)]

            async def all_stored() -> bool:
                items = (await alice.conversation_messages(cid))["items"]
                return len(items) == count

            await n.until(all_stored, f"all {count} are stored")
            statuses = [(await alice.message_status(i))["status"] for i in ids]
            n.check(statuses == ["SENT"] * count, "each is SENT, none delivered", statuses)

            n.step(f"{bob_name} connects")
            async with bob.websocket() as ws:
                received = [(await next_frame(ws, "message"))["message"] for _ in range(count)]
                n.check([m["message_id"] for m in received] == ids, f"the socket pushes all {count} first, in the order sent")
                sequence = [m["sequence_number"] for m in received]
                n.check(sequence == sorted(sequence) and len(set(sequence)) == count, "their sequence numbers rise", sequence)
                n.say(f"first: {received[0]['payload']['text']!r}, last: {received[-1]['payload']['text']!r}")
                await ws.ack(ids)

                async def delivered() -> bool:
                    return all([(await alice.message_status(i))["status"] == "DELIVERED" for i in ids])

                await n.until(delivered, "once acknowledged, every one is DELIVERED")
                n.step(f"{alice_name} writes again while {bob_name} is online")
                live = await alice.send_text(cid, "and this one arrives live")
                frame = await next_frame(ws, "message")
                n.check(frame["message"]["message_id"] == live["message_id"], "the next message arrives live")
                await ws.ack([live["message_id"]])

            n.step(f"{bob_name} reconnects")
            async with bob.websocket() as ws:
                await ws.ping()
                frame = await next_frame(ws, "pong")
                n.check(frame["type"] == "pong", "nothing acknowledged is pushed again (the first frame is the pong)")
        finally:
            await alice.close()
            await bob.close()
    echo(f"offline demo: {n.checks} checks passed")
    return {"checks": n.checks}
