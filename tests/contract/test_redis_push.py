"""Cross-node push on Redis: RedisPush on one node, NodeSubscriber on the other, one real Redis.

Each node has a client of its own (as separate processes would) and a ``LocalHub`` holding fake
sockets. Nothing here sleeps to let time pass: a test waits on the socket's event with a timeout,
and "nothing was published" is shown by ordering — a marker published afterwards must be the
first thing a spy on every node channel sees.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from chat4all.services.hub import LocalHub
from chat4all.adapters.redis import NodeSubscriber, RedisPresenceStore, RedisPush, connect, node_channel
from chat4all.domain.errors import Unavailable
from chat4all.domain.frames import Frame
from chat4all.domain.ids import new_id, utcnow

from tests.conftest import wait_until

from .conftest import RedisKeyspace

pytestmark = pytest.mark.redis

WAIT_S = 5.0


class FakeSocket:
    """Stands in for a WebSocket connection in a hub: records frames, signals each arrival."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.arrived = asyncio.Event()
        self.gaps = 0  # times the node said frames for it may have been lost

    def offer(self, frame: Frame) -> None:
        self.frames.append(frame)
        self.arrived.set()

    def missed(self) -> None:
        self.gaps += 1

    async def wait(self, timeout: float = WAIT_S) -> Frame:
        await asyncio.wait_for(self.arrived.wait(), timeout)
        return self.frames[-1]


@dataclass
class Node:
    node_id: str
    client: Redis
    hub: LocalHub
    presence: RedisPresenceStore
    push: RedisPush
    subscriber: NodeSubscriber
    sockets: list[tuple[str, FakeSocket]] = field(default_factory=list)

    async def open_socket(self, username: str) -> FakeSocket:
        """A socket here for ``username``: in the hub and in the shared presence."""
        fake = FakeSocket()
        self.hub.add(username, fake)
        await self.presence.connected(username, new_id(), node=self.node_id, at=utcnow())
        return fake


NodeFactory = Callable[..., Awaitable[Node]]


@pytest.fixture
async def make_node(redis_keyspace: RedisKeyspace) -> AsyncIterator[NodeFactory]:
    nodes: list[Node] = []

    async def make(node_id: str, *, url: str | None = None, **client_options: Any) -> Node:
        client = connect(url or redis_keyspace.url, client_name=f"{redis_keyspace.prefix}.{node_id}", **client_options)
        hub = LocalHub()
        prefix = redis_keyspace.prefix
        presence = RedisPresenceStore(client, ttl_s=30, key_prefix=prefix)
        push = RedisPush(client, presence=presence, hub=hub, node_id=node_id, key_prefix=prefix)
        subscriber = NodeSubscriber(
            client, hub=hub, node_id=node_id, key_prefix=prefix, ping_interval_s=1.0, backoff_max_s=0.5
        )
        await subscriber.start()
        node = Node(node_id, client, hub, presence, push, subscriber)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.subscriber.stop()
        await node.client.aclose()


@pytest.fixture
async def node_a(make_node: NodeFactory) -> Node:
    return await make_node("node-a")


@pytest.fixture
async def node_b(make_node: NodeFactory) -> Node:
    return await make_node("node-b")


class ChannelSpy:
    """Sees every message published on any node channel of this test's key prefix."""

    def __init__(self, client: Redis, prefix: str) -> None:
        self._pubsub = client.pubsub()
        self._pattern = node_channel(prefix, "*")

    async def start(self) -> None:
        await self._pubsub.psubscribe(self._pattern)
        await self._next("psubscribe")  # subscribed before anything is sent

    async def next_published(self) -> tuple[str, Any]:
        message = await self._next("pmessage")
        return message["channel"].decode(), orjson.loads(message["data"])

    async def _next(self, kind: str) -> dict[str, Any]:
        async with asyncio.timeout(WAIT_S):
            while True:
                message = await self._pubsub.get_message(timeout=WAIT_S)
                if message is not None and message["type"] == kind:
                    return message

    async def close(self) -> None:
        await self._pubsub.aclose()


@pytest.fixture
async def spy(redis_keyspace: RedisKeyspace) -> AsyncIterator[ChannelSpy]:
    watcher = ChannelSpy(redis_keyspace.client, redis_keyspace.prefix)
    await watcher.start()
    yield watcher
    await watcher.close()


def frame(n: int | str) -> Frame:
    return Frame(f"m-{n}", orjson.dumps({"type": "message", "message": {"message_id": f"m-{n}", "text": 'olá "x"'}}))


def users_in(published: Any) -> list[str]:
    return [username for username, _ in published["u"]]


async def test_a_frame_reaches_the_socket_on_another_node(node_a: Node, node_b: Node) -> None:
    bob = await node_b.open_socket("bob")
    sent = frame(1)

    await node_a.push.send([("bob", sent)])

    assert await bob.wait() == sent  # same message_id, byte-identical data


async def test_one_publish_per_node_per_call_and_a_shared_frame_travels_once(
    node_a: Node, node_b: Node, spy: ChannelSpy
) -> None:
    bob, carol = await node_b.open_socket("bob"), await node_b.open_socket("carol")
    shared, own = frame("shared"), frame("own")

    await node_a.push.send([("bob", shared), ("carol", shared), ("carol", own)])
    await node_a.push.send([("bob", frame("marker"))])

    channel, first = await spy.next_published()
    assert channel == node_channel_of(node_b)
    assert users_in(first) == ["bob", "carol", "carol"]
    assert [message_id for message_id, _ in first["f"]] == ["m-shared", "m-own"]
    _, second = await spy.next_published()
    assert [message_id for message_id, _ in second["f"]] == ["m-marker"]

    await bob.wait()
    await carol.wait()
    assert carol.frames[:2] == [shared, own]
    assert bob.frames[0] is carol.frames[0]  # decoded once on arrival, one Frame for every socket


async def test_frames_for_local_sockets_do_not_go_through_redis(node_a: Node, node_b: Node, spy: ChannelSpy) -> None:
    alice = await node_a.open_socket("alice")
    bob = await node_b.open_socket("bob")
    local = frame("local")

    await node_a.push.send([("alice", local)])
    assert alice.frames == [local]  # delivered before send returned

    await node_a.push.send([("bob", frame("marker"))])
    channel, published = await spy.next_published()
    assert (channel, users_in(published)) == (node_channel_of(node_b), ["bob"])
    await bob.wait()


async def test_a_user_on_both_nodes_gets_the_frame_on_each(node_a: Node, node_b: Node, spy: ChannelSpy) -> None:
    on_a, on_b = await node_a.open_socket("dana"), await node_b.open_socket("dana")
    sent = frame(2)

    await node_a.push.send([("dana", sent)])

    assert on_a.frames == [sent]
    assert await on_b.wait() == sent
    channel, published = await spy.next_published()
    assert (channel, users_in(published)) == (node_channel_of(node_b), ["dana"])


async def test_a_frame_for_an_offline_user_goes_nowhere(node_a: Node, node_b: Node, spy: ChannelSpy) -> None:
    bob = await node_b.open_socket("bob")

    await node_a.push.send([("nobody-online", frame(3))])  # raises nothing

    await node_a.push.send([("bob", frame("marker"))])
    _, published = await spy.next_published()
    assert users_in(published) == ["bob"]
    await bob.wait()


async def test_a_node_that_vanished_receives_nothing_and_the_others_still_do(node_a: Node, node_b: Node) -> None:
    bob = await node_b.open_socket("bob")
    # presence still names a node whose process is gone (no subscriber on its channel)
    await node_a.presence.connected("erin", new_id(), node="node-gone", at=utcnow())

    await node_a.push.send([("erin", frame(4)), ("bob", frame(5))])

    assert (await bob.wait()).message_id == "m-5"


async def test_push_for_nobody_is_a_no_op(node_a: Node) -> None:
    await node_a.push.send([])


@pytest.mark.parametrize(
    "client_options",
    [
        pytest.param({}, id="client-retries"),
        # no retry inside redis-py: the drop reaches NodeSubscriber, whose own loop reconnects
        pytest.param({"retry": Retry(NoBackoff(), 0)}, id="subscriber-reconnects"),
    ],
)
async def test_the_subscriber_comes_back_after_its_connection_is_killed(
    make_node: NodeFactory, redis_keyspace: RedisKeyspace, client_options: dict[str, Any]
) -> None:
    node_a = await make_node("node-a")
    node_b = await make_node("node-b", **client_options)
    bob = await node_b.open_socket("bob")
    assert node_b.subscriber.subscriptions == 1

    killed = await kill_pubsub_connection(redis_keyspace.client, f"{redis_keyspace.prefix}.node-b")
    assert killed == 1

    await send_until_delivered(node_a, "bob", bob)
    assert node_b.subscriber.subscriptions >= 2  # it subscribed again
    assert node_b.subscriber.subscribed
    # what was published during the gap is gone: the node's sockets are told to reconnect and catch up
    async def told() -> bool:
        return bob.gaps >= 1

    await wait_until(told, timeout=WAIT_S, what="the socket to be told of the gap")


async def test_a_redis_restart_does_not_leave_the_node_deaf(make_node: NodeFactory, tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path)
    await server.start()
    try:
        quick = {"retry": Retry(ConstantBackoff(0.05), 1), "socket_timeout": 1, "socket_connect_timeout": 1}
        node_a = await make_node("node-a", url=server.url, **quick)
        node_b = await make_node("node-b", url=server.url, **quick)
        bob = await node_b.open_socket("bob")

        await server.stop()
        with pytest.raises(Unavailable):
            await node_a.presence.connected("bob", new_id(), node="node-b", at=utcnow())
        with pytest.raises(Unavailable):
            await node_a.push.send([("bob", frame("while-down"))])

        await server.start()  # same port, empty: presence is gone, the sockets register again
        await node_b.presence.connected("bob", new_id(), node="node-b", at=utcnow())
        await send_until_delivered(node_a, "bob", bob)
        assert node_b.subscriber.subscriptions >= 2
    finally:
        await server.stop()


async def test_nodes_racing_on_one_user_agree_who_came_first_and_who_left_last(
    node_a: Node, node_b: Node
) -> None:
    """Presence across nodes: of many sockets opened and closed at once from two processes,
    exactly one connect says "was offline" and exactly one disconnect says "was the last"."""
    at = utcnow()
    sockets = [(node, new_id()) for _ in range(20) for node in (node_a, node_b)]

    opened = await asyncio.gather(
        *(node.presence.connected("frank", cid, node=node.node_id, at=at) for node, cid in sockets)
    )
    assert opened.count(True) == 1
    assert await node_a.presence.nodes_for(["frank"], now=at) == {"frank": {"node-a", "node-b"}}

    closed = await asyncio.gather(*(node.presence.disconnected("frank", cid, at=at) for node, cid in sockets))
    assert closed.count(True) == 1
    assert (await node_b.presence.get("frank", now=at)).status == "offline"


def node_channel_of(node: Node) -> str:
    return node.subscriber.channel


async def kill_pubsub_connection(admin: Redis, client_name: str) -> int:
    """``CLIENT KILL TYPE pubsub``, narrowed to one named connection so other test runs sharing
    the server keep theirs."""
    listing = (await admin.execute_command("CLIENT", "LIST", "TYPE", "pubsub")).decode()
    ids = [fields["id"] for fields in map(_client_fields, listing.splitlines()) if fields.get("name") == client_name]
    assert len(ids) == 1, f"expected one pubsub connection named {client_name}, found {ids}"
    return int(await admin.execute_command("CLIENT", "KILL", "ID", ids[0], "TYPE", "pubsub"))


def _client_fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


async def send_until_delivered(sender: Node, username: str, target: FakeSocket, *, within_s: float = 15.0) -> None:
    """Sends frames until one arrives: the subscriber may still be reconnecting."""
    async with asyncio.timeout(within_s):
        attempt = 0
        while not target.arrived.is_set():
            attempt += 1
            try:
                await sender.push.send([(username, frame(f"retry-{attempt}"))])
            except Unavailable:
                pass  # the sender's own connection is coming back too
            try:
                await asyncio.wait_for(target.arrived.wait(), 0.2)
            except TimeoutError:
                continue


class PrivateRedis:
    """A redis-server of this test's own, so it can be stopped and restarted without disturbing
    the shared one."""

    def __init__(self, tmp_path: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self._binary = binary
        self._dir = tmp_path
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            self._binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", str(self._dir)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        probe = Redis(port=self.port, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        await probe.ping()
                        return
                    except (RedisConnectionError, OSError):  # not listening yet
                        await asyncio.sleep(0.05)
        finally:
            await probe.aclose()

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)
