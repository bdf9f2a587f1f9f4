"""PresenceStore contract (R2.1–R2.3): sockets per user, heartbeats, expiry, nodes.

Time is passed explicitly (``at``/``now``); nothing here sleeps. Every adapter is built with a
time-to-live of ``PRESENCE_TTL_S`` seconds (see ``conftest.presence_store``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chat4all.ports import PresenceStore

from .conftest import PRESENCE_TTL_S

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
TTL = timedelta(seconds=PRESENCE_TTL_S)


def after(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_only_the_first_socket_brings_a_user_online(presence_store: PresenceStore) -> None:
    assert await presence_store.connected("alice", "phone", node="node-a", at=T0) is True
    assert await presence_store.connected("alice", "laptop", node="node-b", at=after(1)) is False
    assert await presence_store.connected("bob", "phone", node="node-a", at=after(2)) is True


async def test_only_the_last_socket_to_close_takes_a_user_offline(presence_store: PresenceStore) -> None:
    await presence_store.connected("alice", "phone", node="node-a", at=T0)
    await presence_store.connected("alice", "laptop", node="node-a", at=after(1))
    await presence_store.connected("alice", "tablet", node="node-b", at=after(2))

    assert await presence_store.disconnected("alice", "laptop", at=after(3)) is False
    assert (await presence_store.get("alice", now=after(3))).status == "online"
    assert await presence_store.disconnected("alice", "phone", at=after(4)) is False
    assert await presence_store.disconnected("alice", "tablet", at=after(5)) is True
    assert (await presence_store.get("alice", now=after(5))).status == "offline"


async def test_get_says_online_with_the_latest_activity(presence_store: PresenceStore) -> None:
    await presence_store.connected("alice", "phone", node="node-a", at=T0)
    await presence_store.heartbeat("alice", "phone", node="node-a", at=after(10))

    presence = await presence_store.get("alice", now=after(12))

    assert (presence.username, presence.status, presence.last_seen) == ("alice", "online", after(10))


async def test_get_says_offline_with_last_seen_once_the_last_socket_closed(presence_store: PresenceStore) -> None:
    await presence_store.connected("alice", "phone", node="node-a", at=T0)
    await presence_store.disconnected("alice", "phone", at=after(20))

    presence = await presence_store.get("alice", now=after(21))

    assert (presence.status, presence.last_seen) == ("offline", after(20))


async def test_a_user_never_seen_is_offline_without_last_seen(presence_store: PresenceStore) -> None:
    presence = await presence_store.get("nobody", now=T0)

    assert (presence.username, presence.status, presence.last_seen) == ("nobody", "offline", None)


async def test_heartbeats_keep_a_socket_alive_past_the_ttl(presence_store: PresenceStore) -> None:
    await presence_store.connected("alice", "phone", node="node-a", at=T0)
    beats = [TTL * 0.8 * i for i in range(1, 6)]  # each within the ttl of the one before
    for beat in beats:
        await presence_store.heartbeat("alice", "phone", node="node-a", at=T0 + beat)

    now = T0 + beats[-1] + TTL * 0.5  # long after the connect, shortly after the last beat
    assert (await presence_store.get("alice", now=now)).status == "online"
    assert await presence_store.nodes_for(["alice"], now=now) == {"alice": {"node-a"}}


async def test_a_socket_whose_heartbeat_is_older_than_the_ttl_counts_as_offline(
    presence_store: PresenceStore,
) -> None:
    await presence_store.connected("alice", "phone", node="node-a", at=T0)
    await presence_store.heartbeat("alice", "phone", node="node-a", at=after(5))
    expired = after(5) + TTL + timedelta(seconds=1)

    presence = await presence_store.get("alice", now=expired)

    assert presence.status == "offline"
    assert presence.last_seen == after(5)
    assert await presence_store.nodes_for(["alice"], now=expired) == {}


async def test_a_silent_socket_expires_while_a_beating_one_keeps_the_user_online(
    presence_store: PresenceStore,
) -> None:
    await presence_store.connected("alice", "old-phone", node="node-a", at=T0)
    await presence_store.connected("alice", "laptop", node="node-b", at=T0)
    await presence_store.heartbeat("alice", "laptop", node="node-b", at=T0 + TTL * 0.9)
    later = T0 + TTL * 1.5

    assert (await presence_store.get("alice", now=later)).status == "online"
    assert await presence_store.nodes_for(["alice"], now=later) == {"alice": {"node-b"}}


async def test_connecting_after_every_socket_expired_counts_as_coming_online(presence_store: PresenceStore) -> None:
    """A node that died without saying goodbye leaves sockets that expire; the next connect is
    the user coming back online."""
    await presence_store.connected("alice", "phone", node="dead-node", at=T0)

    assert await presence_store.connected("alice", "phone-2", node="node-a", at=T0 + TTL * 2) is True
    assert await presence_store.nodes_for(["alice"], now=T0 + TTL * 2) == {"alice": {"node-a"}}


async def test_nodes_for_names_the_nodes_of_each_online_user_and_leaves_out_the_others(
    presence_store: PresenceStore,
) -> None:
    await presence_store.connected("alice", "phone", node="node-a", at=T0)
    await presence_store.connected("alice", "laptop", node="node-a", at=T0)
    await presence_store.connected("alice", "tablet", node="node-b", at=T0)
    await presence_store.connected("bob", "phone", node="node-b", at=T0)
    await presence_store.connected("carol", "phone", node="node-c", at=T0)
    await presence_store.disconnected("carol", "phone", at=after(1))

    found = await presence_store.nodes_for(["alice", "bob", "carol", "nobody"], now=after(2))

    assert found == {"alice": {"node-a", "node-b"}, "bob": {"node-b"}}
    assert await presence_store.nodes_for([], now=after(2)) == {}


async def test_nodes_for_answers_for_a_batch_of_thousands_with_duplicates(presence_store: PresenceStore) -> None:
    """A router batch asks for every recipient at once (more than one Redis call's worth)."""
    users = [f"user-{i}" for i in range(2500)]
    for i, user in enumerate(users[::3]):
        await presence_store.connected(user, "phone", node=f"node-{i % 2}", at=T0)

    found = await presence_store.nodes_for(users + users[:10], now=after(1))

    assert found == {user: {f"node-{i % 2}"} for i, user in enumerate(users[::3])}


async def test_a_heartbeat_restores_a_socket_the_store_lost(presence_store: PresenceStore) -> None:
    """After a presence store restarts empty, the next heartbeat of a live socket puts it back."""
    await presence_store.heartbeat("alice", "phone", node="node-a", at=T0)

    assert (await presence_store.get("alice", now=T0)).status == "online"
    assert await presence_store.nodes_for(["alice"], now=T0) == {"alice": {"node-a"}}
