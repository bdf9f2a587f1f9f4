"""The bench's load, aimed at a Matrix homeserver (Synapse): the same open-loop schedule, the
same one-message-at-a-time conversations, the same checks and result.json.

    python -m chat4all.bench.synapse --url http://127.0.0.1:18448 --shared-secret S \\
        --rate 20 --duration 20 --rooms 100 --out bench-out/synapse

The Matrix equivalents of the bench's moves: a user is registered with the homeserver's
registration shared secret (``/_synapse/admin/v1/register``), a conversation is a room that
its sender creates and its recipient joins, a send is ``PUT /rooms/{room}/send/m.room.message/
{txn}`` (accepted when answered 200 with an event id), and a recipient follows ``/sync``
long-polls instead of a WebSocket (Matrix has no delivery acks, so none are sent). The schedule,
the samples, loss, duplicate and order checks and the summary are the bench's own
(``chat4all.bench.load``, ``chat4all.bench.report``). ``scripts/synapse-bench.sh`` installs and
starts Synapse and runs this; see docs/performance.md, "Synapse on the same box".
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from chat4all.bench.load import PASSWORD, Load, Recipient
from chat4all.bench.report import summarize, write
from chat4all.bench.run import _loop_factory, _no_gc_pauses
from chat4all.bench.stack import process_cpu_s, process_peak_rss_mb

CLIENT = "/_matrix/client/v3"
SYNC_TIMEOUT_MS = 10_000
# only the room messages: no state, receipts, typing, presence or account data in the syncs
SYNC_FILTER = orjson.dumps(
    {
        "room": {
            "timeline": {"limit": 500, "types": ["m.room.message"]},
            "state": {"not_types": ["*"]},
            "ephemeral": {"not_types": ["*"]},
            "account_data": {"not_types": ["*"]},
        },
        "presence": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    }
).decode()


class SynapseLoad(Load):
    """The bench's Load with Matrix for the wire: conversations are rooms, the recipients' socket
    is a /sync long-poll loop, and what a recipient sees is numbered in the order /sync gave it."""

    def __init__(
        self, url: str, *, shared_secret: str, rate: float, duration: float, rooms: int, ramp: float, warmup: float = 0.0
    ) -> None:
        super().__init__([url], rate=rate, duration=duration, conversations=rooms, recipients=1, ramp=ramp, warmup=warmup)
        self.url = url
        self.shared_secret = shared_secret
        self.since: dict[int, str] = {}  # recipient → the next_batch its next /sync starts from
        self.sync_gaps = 0  # timelines /sync answered "limited" (events skipped): shows as lost

    @property
    def session(self) -> aiohttp.ClientSession:
        return self.sessions[self.url]

    # setup ---------------------------------------------------------------------------------

    async def setup(self) -> None:
        self.sessions[self.url] = aiohttp.ClientSession(
            base_url=self.url,
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=SYNC_TIMEOUT_MS / 1000 + 60),
        )
        self.senders = [("", "", "")] * self.n_conversations
        self.members = [[] for _ in range(self.n_conversations)]
        self.recipients = [Recipient("", self.url) for _ in range(self.n_conversations)]
        jobs = [self._room(i) for i in range(self.n_conversations)]
        for start in range(0, len(jobs), 10):  # a few at a time: room creation is the slow part
            await asyncio.gather(*jobs[start : start + 10])
        for i in range(self.n_conversations):
            self._readers.append(asyncio.create_task(self._read(i, self.recipients[i])))

    async def _call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None if body is None else orjson.dumps(body)
        async with self.session.request(method, path, data=data, headers=headers) as resp:
            answer = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {answer[:300]!r}")
            return orjson.loads(answer)

    async def _register(self, username: str) -> tuple[str, str]:
        """Registers ``username`` with the shared secret: (user id, access token)."""
        nonce = (await self._call("GET", "/_synapse/admin/v1/register"))["nonce"]
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, username, PASSWORD):
            mac.update(part.encode() + b"\x00")
        mac.update(b"notadmin")
        answer = await self._call(
            "POST", "/_synapse/admin/v1/register",
            body={"nonce": nonce, "username": username, "password": PASSWORD, "admin": False, "mac": mac.hexdigest()},
        )
        return str(answer["user_id"]), str(answer["access_token"])

    async def _room(self, i: int) -> None:
        (_, token), (r_user_id, r_token) = await asyncio.gather(
            self._register(f"b{self.run_id}s{i}"), self._register(f"b{self.run_id}r{i}-0")
        )
        room = await self._call(
            "POST", f"{CLIENT}/createRoom", token,
            {"preset": "trusted_private_chat", "is_direct": True, "invite": [r_user_id]},
        )
        room_id = room["room_id"]
        await self._call("POST", f"{CLIENT}/rooms/{quote(room_id)}/join", r_token, {})
        # the recipient's stream position after joining: every message of the run comes after it
        first = await self._call("GET", f"{CLIENT}/sync?timeout=0&filter={quote(SYNC_FILTER)}", r_token)
        self.since[i] = first["next_batch"]
        self.senders[i] = (self.url, token, room_id)
        self.members[i] = [r_user_id]
        self.recipients[i] = Recipient(r_user_id, self.url, r_token)

    # run -----------------------------------------------------------------------------------

    async def _sender_clients(self) -> list[Any]:
        return [None] * len(self.senders)  # the shared aiohttp session sends

    async def _send_loop(self, c: int, queue: asyncio.Queue[Any], poster: object = None) -> None:
        _, token, room_id = self.senders[c]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        prefix = f"{CLIENT}/rooms/{quote(room_id)}/send/m.room.message/{self.run_id}-{c}-"
        while (sample := await queue.get()) is not None:
            body = orjson.dumps({"msgtype": "m.text", "body": f"{c}:{sample.index}"})
            try:  # the transaction id makes a repeated PUT the same event
                async with self.session.put(f"{prefix}{sample.index}", data=body, headers=headers) as resp:
                    sample.status = resp.status
                    answer = await resp.read()
            except (aiohttp.ClientError, TimeoutError):  # an overloaded server may not answer in time
                sample.status = 0
                continue
            if sample.status == 200:
                sample.accepted = time.perf_counter()
                sample.message_id = orjson.loads(answer)["event_id"]
                sample.recipients = self.n_recipients
                self.by_id[sample.message_id] = sample
                for r, at in self._early.pop(sample.message_id, ()):
                    self._received(sample, r, at)

    async def _read_frames(self, i: int, r: Recipient) -> None:
        """Follows /sync long-polls; each message event is one frame. The sequence number is the
        position in the order /sync gave the events, so order is checked on the sender's index."""
        position = 0
        headers = {"Authorization": f"Bearer {r.token}"}
        while True:
            path = f"{CLIENT}/sync?timeout={SYNC_TIMEOUT_MS}&since={quote(self.since[i])}&filter={quote(SYNC_FILTER)}"
            async with self.session.get(path, headers=headers) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"/sync: {resp.status} {(await resp.read())[:300]!r}")
                answer = orjson.loads(await resp.read())
            now = time.perf_counter()
            self.since[i] = answer["next_batch"]
            for room in answer.get("rooms", {}).get("join", {}).values():
                timeline = room.get("timeline", {})
                self.sync_gaps += bool(timeline.get("limited"))
                for event in timeline.get("events", ()):
                    if event.get("type") != "m.room.message":
                        continue
                    c_text, _, index = str(event.get("content", {}).get("body", "")).partition(":")
                    if not index.isdigit():
                        continue
                    sample = self.by_id.get(event["event_id"])
                    if sample is not None:
                        self._received(sample, r, now)
                    else:
                        self._early[event["event_id"]].append((r, now))
                    position += 1
                    r.seen[int(c_text)].append((position, int(index)))

    async def _ack_loop(self) -> None:
        """Matrix has no delivery acks: nothing to send (read receipts are another thing)."""


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    load = SynapseLoad(
        args.url.rstrip("/"), shared_secret=args.shared_secret, rate=args.rate, duration=args.duration,
        rooms=args.rooms, ramp=args.ramp, warmup=args.warmup,
    )
    pid = args.server_pid
    try:
        await load.setup()
        cpu_before = process_cpu_s(pid) if pid else None
        started = time.perf_counter()
        with _no_gc_pauses():
            await load.run(drain_s=args.drain)
        elapsed = time.perf_counter() - started
        cpu_after = process_cpu_s(pid) if pid else None
        rss = process_peak_rss_mb(pid) if pid else None
    finally:
        await load.close()
    result = summarize(
        load,
        server_cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
        server_peak_rss_mb=rss,
        elapsed_s=elapsed,
    )
    result["profile"] = "synapse"
    result["server"] = args.server_label
    result["sync_gaps"] = load.sync_gaps
    result["bench_cpu_s"] = round(process_cpu_s(os.getpid()), 1)
    write(Path(args.out), load, result, title="Synapse (Matrix) bench")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m chat4all.bench.synapse", description="The bench's load against a Matrix homeserver (Synapse)."
    )
    parser.add_argument("--url", required=True, help="the homeserver's client API, e.g. http://127.0.0.1:18448")
    parser.add_argument(
        "--shared-secret", default=os.environ.get("SYNAPSE_REGISTRATION_SHARED_SECRET", ""),
        help="its registration_shared_secret (default: $SYNAPSE_REGISTRATION_SHARED_SECRET)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="target messages per second (open loop)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--rooms", type=int, default=100, help="rooms (conversations), one sender and one recipient each")
    parser.add_argument("--ramp", type=float, default=0.0, help="seconds to ramp from 0 to the target rate")
    parser.add_argument(
        "--warmup", type=float, default=0.0, help="seconds at the target rate before --duration, reported apart (as the bench's)"
    )
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for deliveries after the last send")
    parser.add_argument("--out", default="bench-out/synapse", help="folder for result.json and chart.png")
    parser.add_argument("--server-pid", type=int, default=0, help="the homeserver's pid: its CPU and peak RSS go in the result")
    parser.add_argument("--server-label", default="synapse", help="what the result names as the server (version, database)")
    args = parser.parse_args(argv)
    if not args.shared_secret:
        parser.error("--shared-secret (or $SYNAPSE_REGISTRATION_SHARED_SECRET) is required")
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        result = runner.run(measure(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
