"""Presence and cross-node push on Redis: the production profile's shared view of who is online.

Presence: one hash per user, ``{prefix}:presence:{username}``, field = connection_id, value =
``"<node>|<unix seconds>.<microseconds>"`` of the socket's last beat. Staleness is judged from
the times the caller passes (``at``/``now``), exactly like ``MemoryPresenceStore``: an entry
older than ``ttl_s`` counts as offline and is pruned lazily. The key's own Redis TTL (the same
``ttl_s``, refreshed by connect and heartbeat) only collects the garbage a crashed node leaves.
``connected``/``disconnected``/``heartbeat`` are Lua scripts, so two nodes changing the same
user at once still agree on who was first online and who was last to leave. ``last_seen`` lives
in ``{prefix}:last_seen:{username}``.

Push: ``RedisPush.send`` hands every frame to this node's hub (a ``ports.FrameSink``) (sockets held here never
touch Redis), looks up the other nodes of all recipients in one ``nodes_for`` round trip, and
PUBLISHes one message per remote node on ``{prefix}:node:{node_id}``. ``NodeSubscriber`` runs
in each API node, listens on its own channel and hands what arrives to the hub; it reconnects
with backoff when Redis drops and pings an idle connection so a half-open socket is noticed.
Pub/sub is fire-and-forget: frames published while a node is between connections are not
replayed, but their deliveries stay SENT in the store and the client catches up on reconnect.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chat4all.domain.errors import Unavailable
from chat4all.domain.frames import Frame
from chat4all.domain.ids import utcnow
from chat4all.domain.models import Presence
from chat4all.observability.logging import get_logger
from chat4all.ports import FrameSink, PresenceStore

log = get_logger(__name__)

# errors that mean "Redis is not there right now" (a replica that lost its primary is read-only)
_DOWN = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def connect(url: str, **options: Any) -> Redis:
    """A client for ``redis://host:port/db`` (or ``rediss://``), or for the master that Sentinel
    names: ``redis+sentinel://[:password@]host:port,host:port,…/master_name/db``. A Sentinel
    client asks the Sentinels for the master on every new connection and drops connections to a
    node that has become a replica, so it follows a failover without a restart. Connections open
    lazily."""
    options.setdefault("socket_connect_timeout", 5)
    options.setdefault("socket_timeout", 5)
    options.setdefault("socket_keepalive", True)
    # a pooled connection left stale by a Redis restart fails once; retrying on a fresh one hides it
    options.setdefault("retry", Retry(ExponentialBackoff(cap=0.5, base=0.01), 3))
    options.setdefault("retry_on_error", [RedisConnectionError, RedisTimeoutError])
    options.setdefault("health_check_interval", 15)
    if not url.startswith("redis+sentinel://"):
        return Redis.from_url(url, **options)
    sentinels, master, db, password = parse_sentinel_url(url)
    sentinel = Sentinel(
        sentinels,
        sentinel_kwargs={"socket_connect_timeout": 1, "socket_timeout": 1},
        password=password,
        **options,
    )
    return sentinel.master_for(master, db=db)


def parse_sentinel_url(url: str) -> tuple[list[tuple[str, int]], str, int, str | None]:
    """``redis+sentinel://[:pw@]h1:p1,h2:p2/name/db`` → ([(h1, p1), (h2, p2)], name, db, pw)."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) or None if userinfo else None
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"a Sentinel address is host:port, not {host!r}")
        sentinels.append((name, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"not a redis+sentinel://host:port,…/master_name[/db] URL: {url!r}")
    return sentinels, path[0], int(path[1]) if len(path) == 2 else 0, password


class RedisConnection:
    """The runtime's handle on the shared client: checked at start and by readiness, closed last."""

    def __init__(self, client: Redis) -> None:
        self.client = client

    async def start(self) -> None:
        await self.ping()

    async def ping(self) -> None:
        with unavailable("Redis does not answer"):
            await self.client.ping()

    async def close(self) -> None:
        await self.client.aclose()


@contextmanager
def unavailable(message: str) -> Iterator[None]:
    """Turns Redis being unreachable (or read-only during a failover) into ``Unavailable``;
    shared with the other Redis adapters (redis_limits)."""
    try:
        yield
    except _DOWN as exc:
        raise Unavailable(f"{message}: {type(exc).__name__}") from exc


def _micros(at: datetime) -> int:
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return (at - _EPOCH) // _MICRO


def _stamp(at: datetime) -> str:
    """Unix time with exactly six decimals, so it round-trips to the microsecond (Lua reads it too)."""
    seconds, micros = divmod(_micros(at), 1_000_000)
    return f"{seconds}.{micros:06d}"


def _parse_stamp(raw: bytes) -> int:
    seconds, _, micros = raw.partition(b".")
    return int(seconds) * 1_000_000 + int(micros)


def _datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _entry(raw: bytes | str) -> tuple[str, int]:
    """``b"node|1700000000.123456"`` → ("node", micros)."""
    if isinstance(raw, str):
        raw = raw.encode()
    node, _, stamp = raw.rpartition(b"|")
    return node.decode(), _parse_stamp(stamp)


# Lua: beat(v) reads the micros of "<node>|<sec>.<usec>"; nil if the value is not ours.
_BEAT = """
local function beat(v)
  local s, us = string.match(v, '|(%d+)%.(%d+)$')
  if not s then return nil end
  return tonumber(s) * 1000000 + tonumber(us)
end
"""

# KEYS: presence hash, last_seen. ARGV: connection_id, "<node>|<stamp>", now µs, ttl µs, key ttl ms, stamp.
_CONNECT = (
    _BEAT
    + """
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local was_offline = 1
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local b = beat(entries[i + 1])
  if b == nil or now - b > ttl then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    was_offline = 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[6])
return was_offline
"""
)

# KEYS: presence hash, last_seen. ARGV: connection_id, stamp, key ttl ms, node.
# The entry is written even if it is missing: a Redis that restarted empty learns again who is
# connected from the next heartbeat.
_HEARTBEAT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4] .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[2])
return 0
"""

# KEYS: presence hash, last_seen. ARGV: connection_id, stamp, now µs, ttl µs.
_DISCONNECT = (
    _BEAT
    + """
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
local live = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local b = beat(entries[i + 1])
  if b == nil or now - b > ttl then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    live = live + 1
  end
end
if live == 0 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""
)

# KEYS: presence hash. ARGV: field, value, field, value...: deletes each field still holding
# the stale value a reader saw (a heartbeat that came in meanwhile wins).
# KEYS: presence hashes. Returns each one's HGETALL (flat field, value, ...): one command for a
# whole batch's recipients, where a pipeline of HGETALLs cost the router 6x the CPU to build
# and parse
_SOCKETS_OF = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""
# users per _SOCKETS_OF call: bounded, so that one call never holds Redis for long
SOCKETS_OF_BATCH = 2000

_PRUNE = """
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 0
"""


class RedisPresenceStore:
    """PresenceStore on Redis; behaves like ``MemoryPresenceStore`` for any number of nodes."""

    def __init__(self, client: Redis, *, ttl_s: float = 300, key_prefix: str = "c4a") -> None:
        self._client = client
        self._ttl_us = round(ttl_s * 1_000_000)
        self._key_ttl_ms = max(1, round(ttl_s * 1000))
        self._prefix = key_prefix
        self._connect = client.register_script(_CONNECT)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._disconnect = client.register_script(_DISCONNECT)
        self._prune = client.register_script(_PRUNE)
        self._sockets_of = client.register_script(_SOCKETS_OF)

    def _keys(self, username: str) -> list[str]:
        return [f"{self._prefix}:presence:{username}", f"{self._prefix}:last_seen:{username}"]

    async def connected(self, username: str, connection_id: str, *, node: str, at: datetime) -> bool:
        stamp = _stamp(at)
        args: list[str | int] = [connection_id, f"{node}|{stamp}", _micros(at), self._ttl_us, self._key_ttl_ms, stamp]
        with unavailable("presence store unavailable"):
            return bool(await self._connect(keys=self._keys(username), args=args))

    async def heartbeat(self, username: str, connection_id: str, *, node: str, at: datetime) -> None:
        args: list[str | int] = [connection_id, _stamp(at), self._key_ttl_ms, node]
        with unavailable("presence store unavailable"):
            await self._heartbeat(keys=self._keys(username), args=args)

    async def disconnected(self, username: str, connection_id: str, *, at: datetime) -> bool:
        args: list[str | int] = [connection_id, _stamp(at), _micros(at), self._ttl_us]
        with unavailable("presence store unavailable"):
            return bool(await self._disconnect(keys=self._keys(username), args=args))

    async def get(self, username: str, *, now: datetime) -> Presence:
        presence_key, last_seen_key = self._keys(username)
        with unavailable("presence store unavailable"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.hgetall(presence_key)
                pipe.get(last_seen_key)
                entries, last_seen = await pipe.execute()
            live = await self._live({username: entries}, now=now)
        beats = [beat for _, beat in live.get(username, ())]
        if beats:
            return Presence(username=username, status="online", last_seen=_datetime(max(beats)))
        seen = _datetime(_parse_stamp(_bytes(last_seen))) if last_seen is not None else None
        return Presence(username=username, status="offline", last_seen=seen)

    async def nodes_for(self, usernames: Sequence[str], *, now: datetime) -> dict[str, set[str]]:
        distinct = list(dict.fromkeys(usernames))
        if not distinct:
            return {}
        hashes: dict[str, dict[Any, Any]] = {}
        with unavailable("presence store unavailable"):
            for start in range(0, len(distinct), SOCKETS_OF_BATCH):
                batch = distinct[start : start + SOCKETS_OF_BATCH]
                found = await self._sockets_of(keys=[f"{self._prefix}:presence:{u}" for u in batch])
                for username, flat in zip(batch, found, strict=True):
                    if flat:
                        hashes[username] = dict(zip(flat[::2], flat[1::2], strict=True))
            live = await self._live(hashes, now=now)
        return {username: {node for node, _ in sockets} for username, sockets in live.items() if sockets}

    async def _live(self, hashes: dict[str, dict[Any, Any]], *, now: datetime) -> dict[str, list[tuple[str, int]]]:
        """The live (node, beat) entries per user; prunes the stale ones in one extra round trip."""
        cutoff = _micros(now) - self._ttl_us
        live: dict[str, list[tuple[str, int]]] = {}
        stale: dict[str, list[Any]] = {}
        for username, entries in hashes.items():
            for connection_id, raw in entries.items():
                node, beat = _entry(raw)
                if beat < cutoff:
                    stale.setdefault(username, []).extend((connection_id, raw))
                else:
                    live.setdefault(username, []).append((node, beat))
        if stale:
            async with self._client.pipeline(transaction=False) as pipe:
                for username, pairs in stale.items():
                    await self._prune(keys=[self._keys(username)[0]], args=pairs, client=pipe)
                await pipe.execute()
        return live


def _bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def node_channel(key_prefix: str, node_id: str) -> str:
    return f"{key_prefix}:node:{node_id}"


def encode_frames(frames: Sequence[tuple[str, Frame]]) -> bytes:
    """``{"f": [[message_id, data(, 1 if v2 only)], ...], "u": [[username, frame index], ...]}``:
    a frame going to several users of one node travels once, and arrives as one shared ``Frame``."""
    index: dict[int, int] = {}
    table: list[tuple[Any, ...]] = []
    to: list[tuple[str, int]] = []
    for username, frame in frames:
        i = index.get(id(frame))
        if i is None:
            i = index[id(frame)] = len(table)
            entry: tuple[Any, ...] = (frame.message_id, frame.data.decode())
            table.append((*entry, 1) if frame.v2_only else entry)
        to.append((username, i))
    return orjson.dumps({"f": table, "u": to})


def decode_frames(raw: bytes | str) -> list[tuple[str, Frame]]:
    body = orjson.loads(raw)
    table = [Frame(entry[0], entry[1].encode(), len(entry) > 2 and bool(entry[2])) for entry in body["f"]]
    return [(username, table[i]) for username, i in body["u"]]


class RedisPush:
    """Push across nodes: local sockets straight from the hub, every other node in one PUBLISH."""

    def __init__(
        self, client: Redis, *, presence: PresenceStore, hub: FrameSink, node_id: str, key_prefix: str = "c4a"
    ) -> None:
        self._client = client
        self._presence = presence
        self._hub = hub
        self._node = node_id
        self._prefix = key_prefix

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        """Raises Unavailable if Redis is down (after this node's own sockets have their frames);
        a node that presence still names but that has gone simply receives nothing."""
        if not frames:
            return
        self._hub.deliver(frames)  # the hub skips users with no socket here
        usernames = list(dict.fromkeys(username for username, _ in frames))
        nodes = await self._presence.nodes_for(usernames, now=utcnow())
        remote: dict[str, list[tuple[str, Frame]]] = defaultdict(list)
        for username, frame in frames:
            for node in nodes.get(username, ()):
                if node != self._node:
                    remote[node].append((username, frame))
        if not remote:
            return
        with unavailable("push channel unavailable"):
            async with self._client.pipeline(transaction=False) as pipe:
                for node, items in remote.items():
                    pipe.publish(node_channel(self._prefix, node), encode_frames(items))
                await pipe.execute()


class NodeSubscriber:
    """Listens on this node's push channel and hands the frames to the hub; survives Redis restarts.

    ``start`` returns once subscribed (Unavailable after ``start_timeout_s``); ``ping`` says
    whether the subscription is live right now (readiness); ``stop``/``close`` end it.
    """

    def __init__(
        self,
        client: Redis,
        *,
        hub: FrameSink,
        node_id: str,
        key_prefix: str = "c4a",
        ping_interval_s: float = 5.0,
        backoff_min_s: float = 0.05,
        backoff_max_s: float = 5.0,
        start_timeout_s: float = 10.0,
    ) -> None:
        self._client = client
        self._hub = hub
        self.channel = node_channel(key_prefix, node_id)
        self._ping_interval_s = ping_interval_s
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._start_timeout_s = start_timeout_s
        self._backoff_s = backoff_min_s
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.subscriptions = 0  # how many times the channel was (re)subscribed

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name=f"push-subscriber {self.channel}")
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await self._subscribed.wait()
        except TimeoutError:
            await self.stop()
            raise Unavailable(f"could not subscribe to {self.channel}") from None

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        self._subscribed.clear()

    close = stop

    async def ping(self) -> None:
        if not self._subscribed.is_set():
            raise Unavailable(f"not subscribed to {self.channel}")

    async def _run(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                await self._listen(pubsub)
            except Exception as exc:  # whatever it was, a node must not stay deaf: start over
                lost = self._subscribed.is_set()
                self._subscribed.clear()
                delay = self._backoff_s * random.uniform(0.5, 1.0)
                self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
                log.warning(
                    "push channel lost, reconnecting" if lost else "push channel unreachable, retrying",
                    channel=self.channel,
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 3),
                    exc_info=not isinstance(exc, _DOWN),  # a traceback only for the unexpected
                )
                await asyncio.sleep(delay)
            finally:
                with suppress(Exception):
                    await pubsub.aclose()

    async def _listen(self, pubsub: Any) -> None:
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=self._ping_interval_s)
            if message is None:
                if awaiting_pong:  # silent for two intervals: a half-open connection
                    raise RedisConnectionError(f"no answer to PING within {self._ping_interval_s}s")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            kind = message["type"]
            if kind == "message":
                self._deliver(message["data"])
            elif kind == "subscribe":
                # also seen when redis-py reconnects and resubscribes by itself
                self.subscriptions += 1
                self._backoff_s = self._backoff_min_s
                self._subscribed.set()
                log.info("push channel subscribed", channel=self.channel, times=self.subscriptions)
                if self.subscriptions > 1:
                    # frames published while this node was not subscribed are gone (pub/sub keeps
                    # nothing), and after a Redis failover presence may have lost this node's
                    # sockets too: they reconnect, re-announce themselves and catch up
                    closing = self._hub.missed_frames()
                    log.warning("push channel had a gap; sockets reconnect to catch up", channel=self.channel, sockets=closing)

    def _deliver(self, raw: bytes | str) -> None:
        try:
            frames = decode_frames(raw)
        except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, ValueError, AttributeError):
            log.warning("malformed push message dropped", channel=self.channel, size=len(raw))
            return
        try:
            self._hub.deliver(frames)
        except Exception:  # one bad socket must not stop the node's push
            log.exception("delivering pushed frames failed", channel=self.channel, frames=len(frames))
