"""Steady client traffic for the chaos suite, and what it saw.

Senders: one loop per conversation, a message every ``period`` seconds on a fixed schedule
(latency counts from the scheduled time, so a stall shows). Within a conversation the next
message waits until the previous one is accepted — the order a chat app keeps — and a send that
fails (connection error, timeout, 5xx) is retried with the same message_id (also its
Idempotency-Key, so the gateway may retry it on another node), and the platform's dedup is what
keeps it single. Every attempt is recorded with its
outcome, which gives the client-visible outage.

Recipients: one WebSocket each; every message frame is acked (again if it comes again), and a
socket that drops reconnects and gets its catch-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


@dataclass
class Conversation:
    conversation_id: str
    sender_token: str
    recipient: str
    accepted: list[str] = field(default_factory=list)  # message_ids in the order they were accepted


@dataclass
class Attempt:
    conversation: int
    started: float
    ended: float
    ok: bool
    outcome: str = ""  # the status code, or the exception's name


@dataclass
class Accepted:
    intended: float
    accepted: float

    @property
    def latency(self) -> float:
        return self.accepted - self.intended


class Senders:
    def __init__(self, urls: list[str], conversations: list[Conversation], *, rate: float) -> None:
        self.urls = urls
        self.conversations = conversations
        self.period = len(conversations) / rate
        self.attempts: list[Attempt] = []
        self.accepts: list[Accepted] = []
        self.given_up: list[str] = []  # message_ids never accepted (not counted as lost: never promised)
        self._stop = asyncio.Event()

    async def run(self, session: aiohttp.ClientSession, duration: float) -> None:
        self._stop.clear()
        start = time.monotonic()
        loops = [
            asyncio.create_task(self._conversation(session, i, c, start + i * self.period / len(self.conversations), start + duration))
            for i, c in enumerate(self.conversations)
        ]
        await asyncio.gather(*loops)

    async def _conversation(self, session: aiohttp.ClientSession, i: int, c: Conversation, first: float, end: float) -> None:
        intended = first
        while intended < end:
            delay = intended - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            message_id = str(uuid.uuid4())
            if await self._send(session, i, c, message_id):
                c.accepted.append(message_id)
                self.accepts.append(Accepted(intended, time.monotonic()))
            else:
                self.given_up.append(message_id)
            intended += self.period

    async def _send(self, session: aiohttp.ClientSession, i: int, c: Conversation, message_id: str) -> bool:
        body = orjson.dumps(
            {"message_id": message_id, "conversation_id": c.conversation_id, "payload": {"type": "text", "text": message_id}}
        )
        # the key lets the gateway retry the send on the other node: the retry is a duplicate, never a second message
        headers = {"authorization": f"Bearer {c.sender_token}", "content-type": "application/json", "idempotency-key": message_id}
        deadline = time.monotonic() + 90
        attempt = 0
        while time.monotonic() < deadline:
            url = self.urls[(i + attempt) % len(self.urls)]
            attempt += 1
            started = time.monotonic()
            retry_after = 0.2
            try:
                async with session.post(f"{url}/v1/messages", data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=10)) as r:
                    await r.read()
                    ok, outcome = r.status in (200, 202), str(r.status)
                    if r.status == 429:
                        retry_after = float(r.headers.get("retry-after", "1"))
                    elif not ok and r.status < 500:
                        raise AssertionError(f"send answered {r.status}: {await r.text()}")
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                ok, outcome = False, type(exc).__name__
            self.attempts.append(Attempt(i, started, time.monotonic(), ok, outcome))
            if ok:
                return True
            if attempt % len(self.urls) == 0 or retry_after > 0.2:  # the other node is tried at once
                await asyncio.sleep(retry_after)
        return False


class Inbox:
    """One recipient's socket(s): what arrived, how often, and its acks."""

    def __init__(self, urls: list[str], username: str, token: str, index: int) -> None:
        self.urls, self.username, self.token, self.index = urls, username, token, index
        self.received: Counter[str] = Counter()
        self.reconnects = 0
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, session: aiohttp.ClientSession) -> None:
        self._task = asyncio.create_task(self._run(session))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, session: aiohttp.ClientSession) -> None:
        n = self.index
        while True:
            url = self.urls[n % len(self.urls)].replace("http", "ws", 1)
            n += 1
            try:
                async with session.ws_connect(f"{url}/v1/ws", headers={"authorization": f"Bearer {self.token}"},
                                              heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
                    self.connected.set()
                    pinger = asyncio.create_task(self._ping(ws))
                    try:
                        async for frame in ws:
                            if frame.type != aiohttp.WSMsgType.TEXT:
                                break
                            data: dict[str, Any] = orjson.loads(frame.data)
                            if data.get("type") == "message":
                                message_id = data["message"]["message_id"]
                                self.received[message_id] += 1
                                await ws.send_str(orjson.dumps({"type": "ack", "message_ids": [message_id]}).decode())
                    finally:
                        pinger.cancel()
            except (aiohttp.ClientError, TimeoutError, OSError, ConnectionError):
                pass
            self.connected.clear()
            self.reconnects += 1
            await asyncio.sleep(0.2)

    @staticmethod
    async def _ping(ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(10)
            with contextlib.suppress(Exception):
                await ws.send_str('{"type":"ping"}')


def longest_outage(attempts: list[Attempt]) -> float:
    """The longest run of failed sends one client saw: per conversation (whose sends are
    sequential), from the start of the first failed attempt of a run to the end of its last
    failed attempt. A refusal answered at once and retried on the other node is a run of ~0 s;
    how long the successful retry then took shows in the accept latencies, not here."""
    worst = 0.0
    run: dict[int, tuple[float, float]] = {}  # conversation → (first failure started, last failure ended)
    for a in sorted(attempts, key=lambda a: a.started):
        if not a.ok:
            first, _ = run.get(a.conversation, (a.started, a.ended))
            run[a.conversation] = (first, a.ended)
        elif a.conversation in run:
            first, last = run.pop(a.conversation)
            worst = max(worst, last - first)
    for first, last in run.values():  # a run the phase ended in
        worst = max(worst, last - first)
    return worst


def p99_recovery(accepts: list[Accepted], *, fault_at: float, bar: float = 0.2, window: float = 1.0) -> float:
    """Seconds from the fault until p99 accept (per second of scheduled sends) stays under the bar."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for a in accepts:
        if a.intended >= fault_at - window:
            buckets[int((a.intended - fault_at) // window)].append(a.latency)
    bad = [b for b, lat in buckets.items() if _p99(lat) >= bar]
    return max(0.0, (max(bad) + 1) * window) if bad else 0.0


def p99(accepts: list[Accepted]) -> float:
    return _p99([a.latency for a in accepts])


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
