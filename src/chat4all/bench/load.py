"""The load: senders on an open-loop schedule, recipients on WebSockets who ack what they get.

Open loop: message k has an intended send time fixed in advance by the target rate; latency is
measured from that time, so a server that falls behind shows it (no coordinated omission).
Within a conversation messages go one at a time, in schedule order, so that the order the
recipients see can be checked against the order they were sent in.

The load has phases on one schedule, the same users and sockets throughout: an optional warm-up
(measured apart), then the measured load, with an optional spike of extra messages on top of
the base rate for part of it. Times are seconds from the start of the measured load, so the
warm-up's are negative.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from chat4all.bench.http import Poster

PASSWORD = "bench-password-1"


@dataclass(slots=True)
class Sample:
    conversation: int
    index: int
    intended: float
    message_id: str | None = None
    accepted: float | None = None
    status: int | None = None
    recipients: int = 0
    received: dict[str, float] = field(default_factory=dict)  # recipient → first receive time
    warmup: bool = False  # sent in the warm-up: reported apart from the measured load
    extra: bool = False  # one of the spike's messages on top of the base rate
    duplicates: int = 0  # frames of this message a recipient had already received


@dataclass
class Recipient:
    username: str
    url: str
    token: str = ""
    ws: Any = None
    seen: dict[int, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))  # conv → (seq, index)
    closed: dict[str, Any] | None = None  # how and when the socket ended, if it did during the run


def schedule(rate: float, duration: float, ramp: float) -> list[float]:
    """Intended send times (seconds from start): linear ramp from 0 to ``rate`` over ``ramp``
    seconds, then ``rate`` until ``duration``."""
    ramp = min(ramp, duration)
    total = int(rate * ramp / 2 + rate * (duration - ramp))
    times = []
    for k in range(total):
        if ramp > 0 and k < rate * ramp / 2:
            times.append(math.sqrt(2 * k * ramp / rate))
        else:
            times.append(ramp + (k - rate * ramp / 2) / rate)
    return times


@dataclass(frozen=True)
class Spike:
    """``rate`` messages/s on top of the base rate from ``at`` to ``at + duration`` seconds of
    the measured load (``--spike-*``)."""

    rate: float
    at: float
    duration: float

    @property
    def end(self) -> float:
        return self.at + self.duration


@dataclass(frozen=True, slots=True)
class Planned:
    at: float  # seconds from the start of the measured load (negative in the warm-up)
    warmup: bool = False
    extra: bool = False


def plan(rate: float, duration: float, *, ramp: float = 0.0, warmup: float = 0.0, spike: Spike | None = None) -> list[Planned]:
    """Every message of a run in intended-time order: the warm-up (the ramp, if any, then the
    target rate), the measured load (the ramp when there is no warm-up), the spike's on top."""
    planned = [Planned(at - warmup, warmup=True) for at in schedule(rate, warmup, ramp)] if warmup > 0 else []
    planned += [Planned(at) for at in schedule(rate, duration, 0.0 if warmup > 0 else ramp)]
    if spike is not None and spike.rate > 0 and spike.duration > 0:
        planned += [Planned(spike.at + at, extra=True) for at in schedule(spike.rate, spike.duration, 0.0)]
        planned.sort(key=lambda p: p.at)
    return planned


@dataclass
class Flood:
    """One user posting to large groups while the others send normally (``--flood-*``): how the
    limits keep the others' accept latency; the flooder's answers are counted apart."""

    groups: int
    members: int
    rate: float
    sent: int = 0
    answers: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    accept_ms: list[float] = field(default_factory=list)


class Load:
    def __init__(
        self,
        api_urls: list[str],
        *,
        rate: float,
        duration: float,
        conversations: int,
        recipients: int,
        ramp: float,
        warmup: float = 0.0,
        spike: Spike | None = None,
        flood: Flood | None = None,
    ) -> None:
        self.warmup, self.spike = warmup, spike
        self.flood = flood
        self._flood_target: tuple[str, str, list[str]] | None = None  # url, token, conversation ids
        self.urls = api_urls
        self.rate, self.duration, self.ramp = rate, duration, ramp
        self.n_conversations, self.n_recipients = conversations, recipients
        self.run_id = secrets.token_hex(3)
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.senders: list[tuple[str, str, str]] = []  # (url, token, conversation_id) per conversation
        self.recipients: list[Recipient] = []
        self.members: list[list[str]] = []  # recipients' usernames, aligned with senders
        self.samples: list[Sample] = []  # warm-up's included (``Sample.warmup``)
        self.by_conversation: list[list[Sample]] = []  # by conversation, by index
        self.by_id: dict[str, Sample] = {}
        self._acks: dict[int, list[str]] = defaultdict(list)
        # frames that beat their own 202 to the bench (push can be faster than the answer)
        self._early: dict[str, list[tuple[Recipient, float]]] = defaultdict(list)
        self._readers: list[asyncio.Task[None]] = []
        self.started = 0.0  # perf_counter() at the start of the measured load (after the warm-up)

    # setup ---------------------------------------------------------------------------------

    async def setup(self) -> None:
        for url in self.urls:
            self.sessions[url] = aiohttp.ClientSession(
                base_url=url, connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60), json_serialize=lambda o: orjson.dumps(o).decode()
            )
        jobs = [self._conversation(i) for i in range(self.n_conversations)]
        for start in range(0, len(jobs), 20):  # a few at a time: registration hashes passwords
            await asyncio.gather(*jobs[start : start + 20])
        if self.flood is not None:
            await self._flood_setup(self.flood)
        for i, r in enumerate(self.recipients):
            r.ws = await self.sessions[r.url].ws_connect("/v1/ws", headers={"Authorization": f"Bearer {r.token}"}, max_msg_size=0)
            await r.ws.send_str('{"type":"ping"}')
            while orjson.loads((await r.ws.receive()).data).get("type") != "pong":
                pass  # drain anything pending from an earlier run
            self._readers.append(asyncio.create_task(self._read(i, r)))

    async def _user(self, url: str, username: str) -> str:
        session = self.sessions[url]
        async with session.post("/v1/auth/register", json={"username": username, "password": PASSWORD}) as r:
            if r.status not in (201, 409):
                raise RuntimeError(f"register {username}: {r.status} {await r.text()}")
        async with session.post("/v1/auth/token", json={"username": username, "password": PASSWORD}) as r:
            return (await r.json())["access_token"]

    async def _conversation(self, i: int) -> None:
        url = self.urls[i % len(self.urls)]
        sender = f"b{self.run_id}s{i}"
        token = await self._user(url, sender)
        members = []
        for j in range(self.n_recipients):
            name = f"b{self.run_id}r{i}-{j}"
            r_url = self.urls[(i + j + 1) % len(self.urls)]  # recipients on another node when there are several
            r = Recipient(name, r_url, await self._user(r_url, name))
            self.recipients.append(r)
            members.append(name)
        kind = "private" if len(members) == 1 else "group"
        async with self.sessions[url].post(
            "/v1/conversations", json={"type": kind, "members": members}, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            conversation_id = (await resp.json())["conversation_id"]
        self.senders.append((url, token, conversation_id))
        self.members.append(members)

    async def _flood_setup(self, flood: Flood) -> None:
        url = self.urls[0]
        token = await self._user(url, f"b{self.run_id}flood")
        names = [f"b{self.run_id}f{j}" for j in range(flood.members)]
        for start in range(0, len(names), 20):
            await asyncio.gather(*(self._user(url, n) for n in names[start : start + 20]))
        groups = []
        for _ in range(flood.groups):
            async with self.sessions[url].post(
                "/v1/conversations", json={"type": "group", "members": names}, headers={"Authorization": f"Bearer {token}"}
            ) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"flood group: {resp.status} {await resp.text()}")
                groups.append((await resp.json())["conversation_id"])
        self._flood_target = (url, token, groups)

    async def _flood_loop(self) -> None:
        """Open loop at the flood rate; each send its own task, so refusals do not slow it."""
        assert self.flood is not None and self._flood_target is not None
        flood = self.flood
        url, token, groups = self._flood_target
        session = self.sessions[url]
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        tasks: list[asyncio.Task[None]] = []

        async def send(k: int, intended: float) -> None:
            body = orjson.dumps({"conversation_id": groups[k % len(groups)], "payload": {"type": "text", "text": f"flood {k}"}})
            try:
                async with session.post("/v1/messages", data=body, headers=headers) as resp:
                    await resp.read()
                    flood.answers[resp.status] += 1
                    if resp.status == 202:
                        flood.accept_ms.append((time.perf_counter() - intended) * 1000)
            except aiohttp.ClientError:
                flood.answers[0] += 1

        for k, at in enumerate(schedule(flood.rate, self.duration, 0.0)):
            delay = self.started + at - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            flood.sent += 1
            tasks.append(asyncio.create_task(send(k, self.started + at)))
        await asyncio.gather(*tasks)

    # run -----------------------------------------------------------------------------------

    async def run(self, drain_s: float = 30.0, on_measured: Callable[[], Any] | None = None) -> None:
        """The load, then up to ``drain_s`` for what is still on its way. ``on_measured`` is
        called (in a thread) when the measured load starts, i.e. at the end of the warm-up."""
        planned = plan(self.rate, self.duration, ramp=self.ramp, warmup=self.warmup, spike=self.spike)
        queues: list[asyncio.Queue[Sample | None]] = [asyncio.Queue() for _ in self.senders]
        clients = await self._sender_clients()
        workers = [asyncio.create_task(self._send_loop(c, q, clients[c])) for c, q in enumerate(queues)]
        ackers = asyncio.create_task(self._ack_loop())
        self.started = time.perf_counter() + self.warmup
        marker = asyncio.create_task(self._at_measured_start(on_measured)) if on_measured is not None else None
        flooding = asyncio.create_task(self._flood_loop()) if self.flood is not None else None
        self.by_conversation = [[] for _ in self.senders]
        n = len(self.senders)
        started, samples, by_conversation = self.started, self.samples, self.by_conversation
        for k, p in enumerate(planned):
            delay = started + p.at - time.perf_counter()
            if delay > 0.001:
                await asyncio.sleep(delay)
            c = k % n
            mine = by_conversation[c]
            sample = Sample(c, len(mine), started + p.at, warmup=p.warmup, extra=p.extra)
            mine.append(sample)
            samples.append(sample)
            queues[c].put_nowait(sample)
        for q in queues:
            q.put_nowait(None)
        await asyncio.gather(*workers)
        if flooding is not None:
            await flooding
        if marker is not None:
            await marker
        deadline = time.perf_counter() + drain_s
        while time.perf_counter() < deadline and not self._all_received():  # noqa: ASYNC110 - polled with a deadline
            await asyncio.sleep(0.1)
        ackers.cancel()
        for task in self._readers:
            task.cancel()

    async def _at_measured_start(self, callback: Callable[[], Any]) -> None:
        delay = self.started - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.to_thread(callback)

    def _all_received(self) -> bool:
        return all(len(s.received) >= s.recipients for s in self.samples if s.accepted is not None)

    async def _sender_clients(self) -> list[Any]:
        """One client per sender, its connection opened before the load starts (as the
        recipients' sockets are): a hundred TCP handshakes in the first quarter second of the
        load are the clients' start, not the stack's."""
        posters = [
            Poster(url, "/v1/messages", {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            for url, token, _ in self.senders
        ]
        await asyncio.gather(*(p.connect() for p in posters))
        return posters

    async def _send_loop(self, c: int, queue: asyncio.Queue[Sample | None], poster: Poster) -> None:
        conversation_id = self.senders[c][2]
        # the body as bytes around the one part that changes: no dict, no encoder per message
        head = b'{"conversation_id":%b,"payload":{"type":"text","text":"%d:' % (orjson.dumps(conversation_id), c)
        by_id, early, recipients = self.by_id, self._early, self.n_recipients
        try:
            while (sample := await queue.get()) is not None:
                try:
                    sample.status, answer = await poster.post(b'%b%d"}}' % (head, sample.index))
                except OSError:
                    sample.status = 0
                    continue
                if sample.status == 202:
                    sample.accepted = time.perf_counter()
                    sample.message_id = message_id = orjson.loads(answer)["message_id"]
                    sample.recipients = recipients
                    by_id[message_id] = sample
                    if message_id in early:
                        for r, at in early.pop(message_id):
                            self._received(sample, r, at)
        finally:
            poster.close()

    async def _read(self, i: int, r: Recipient) -> None:
        try:
            await self._read_frames(i, r)
        except Exception as exc:  # noqa: BLE001 - recorded in the result, not raised
            r.closed = {"at_s": round(time.perf_counter() - self.started, 1), "error": repr(exc)}
        else:  # the socket ended while the run still listened
            r.closed = {"at_s": round(time.perf_counter() - self.started, 1), "code": r.ws.close_code}

    async def _read_frames(self, i: int, r: Recipient) -> None:
        async for msg in r.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            frame = orjson.loads(msg.data)
            if frame.get("type") != "message":
                continue
            m = frame["message"]
            c_text, _, index = m["payload"]["text"].partition(":")
            sample = self.by_id.get(m["message_id"])
            if sample is not None:
                self._received(sample, r, now)
            else:
                self._early[m["message_id"]].append((r, now))
            r.seen[int(c_text)].append((m["sequence_number"], int(index)))
            self._acks[i].append(m["message_id"])

    @staticmethod
    def _received(sample: Sample, r: Recipient, at: float) -> None:
        if r.username in sample.received:
            sample.duplicates += 1
        else:
            sample.received[r.username] = at

    async def _ack_loop(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            pending, self._acks = self._acks, defaultdict(list)
            for i, ids in pending.items():
                ws = self.recipients[i].ws
                if not ws.closed:  # one socket gone must not stop the acks of the others
                    with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                        await ws.send_bytes(orjson.dumps({"type": "ack", "message_ids": ids}))

    async def close(self) -> None:
        for r in self.recipients:
            if r.ws is not None:
                await r.ws.close()
        for session in self.sessions.values():
            await session.close()

    # results -------------------------------------------------------------------------------

    def missing(self, *, warmup: bool = False) -> list[dict[str, Any]]:
        """(message, recipient) pairs accepted but never received, of the warm-up or of the
        measured load."""
        return [
            {"message_id": s.message_id, "conversation": s.conversation, "index": s.index, "recipient": u}
            for s in self.samples
            if s.accepted is not None and s.warmup == warmup
            for u in self.members[s.conversation]
            if u not in s.received
        ]

    def order_violations(self, *, warmup: bool = False) -> int:
        """Frames a recipient got after one with a higher sequence number or send index, counted
        in the phase of the message that came out of order."""
        violations = 0
        for r in self.recipients:
            for c, seen in r.seen.items():
                mine = self.by_conversation[c]
                for (seq_a, idx_a), (seq_b, idx_b) in itertools.pairwise(seen):
                    if (seq_b <= seq_a or idx_b <= idx_a) and mine[idx_b].warmup == warmup:
                        violations += 1
        return violations
