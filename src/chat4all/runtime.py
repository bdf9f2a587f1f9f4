"""The composition root: builds the adapters named by Settings, wires the services, starts and
stops them. Nothing else in the code base constructs an adapter."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from chat4all.adapters.memory import LocalHub, MemoryPresenceStore
from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.adapters.sql.metadata import SqlMetadataStore
from chat4all.adapters.sql.migrate import upgrade
from chat4all.adapters.sqllog import SqlEventLog
from chat4all.config import Settings
from chat4all.domain.events import MessageEvent, PresenceEvent, StatusEvent
from chat4all.ports import EventLog, MetadataStore, PresenceStore, Push
from chat4all.observability.logging import get_logger
from chat4all.services.auth import AuthService
from chat4all.services.connections import ConnectionService
from chat4all.services.conversations import ConversationService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.messages import MessageService
from chat4all.services.users import UserService
from chat4all.workers.base import Worker
from chat4all.workers.router import RouterWorker

log = get_logger(__name__)


class Role(StrEnum):
    """What a process runs: everything (embedded), the HTTP/WebSocket API, or the router."""

    ALL = "all"
    API = "api"
    ROUTER = "router"


class ConfigurationError(Exception):
    pass


@dataclass
class Services:
    auth: AuthService
    users: UserService
    conversations: ConversationService
    messages: MessageService
    deliveries: DeliveryService
    connections: ConnectionService


class Component(Protocol):
    """Something the runtime starts, stops and asks about readiness."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    role: Role
    database: Database
    event_log: EventLog
    services: Services
    hub: LocalHub
    # started in this order, stopped in reverse; each also answers readiness under its name
    components: dict[str, Component] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    async def start(self) -> None:
        if self.settings.should_migrate_on_start:
            await upgrade(self.database)
        for component in self.components.values():
            await component.start()
        for worker in self.workers:
            await worker.start()
        log.info("chat4all started", role=self.role.value, node=self.settings.node_id)

    async def stop(self) -> None:
        # stop taking work first, then let the log write what it holds, then close the stores
        for worker in reversed(self.workers):
            await worker.stop()
        for name, component in reversed(self.components.items()):
            try:
                await component.close()
            except Exception:  # keep closing the others
                log.exception("closing failed", component=name)
        log.info("chat4all stopped", role=self.role.value)

    async def readiness(self) -> dict[str, str]:
        """'ok' or the reason, per dependency."""
        checks: dict[str, str] = {}
        for name, component in self.components.items():
            try:
                await asyncio.wait_for(component.ping(), timeout=3)
                checks[name] = "ok"
            except Exception as exc:  # readiness reports any failure rather than raising it
                checks[name] = f"down: {type(exc).__name__}"
        return checks


def build_runtime(settings: Settings, role: Role = Role.ALL) -> Runtime:
    _check_urls(settings, role)
    database = Database(settings.resolved_database_url, pool_size=settings.database_pool_size)
    components: dict[str, Component] = {"database": database}
    conversation_store = SqlConversationStore(database)
    message_store = SqlMessageStore(database)
    metadata = _metadata_store(settings, database, components)
    event_log = _event_log(settings, database)
    components["event_log"] = event_log
    hub = LocalHub()
    presence, push = _presence_and_push(settings, hub, role, components)

    conversations = ConversationService(conversations=conversation_store, metadata=metadata)
    deliveries = DeliveryService(messages=message_store, log=event_log, push=push)
    services = Services(
        auth=AuthService(
            metadata=metadata,
            secret=settings.resolved_jwt_secret(),
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            bcrypt_rounds=settings.bcrypt_rounds,
        ),
        users=UserService(metadata=metadata),
        conversations=conversations,
        messages=MessageService(
            conversations=conversations,
            messages=message_store,
            log=event_log,
            max_text_chars=settings.max_text_chars,
        ),
        deliveries=deliveries,
        connections=ConnectionService(
            hub=hub,
            presence=presence,
            messages=message_store,
            deliveries=deliveries,
            log=event_log,
            node_id=settings.node_id,
            queue_size=settings.ws_send_queue,
        ),
    )
    workers: list[Worker] = []
    if role in (Role.ALL, Role.ROUTER):
        workers.append(
            RouterWorker(
                event_log.consumer(MessageEvent.topic, group="router"),
                messages=message_store,
                metadata=metadata,
                push=push,
                deliveries=deliveries,
                log=event_log,
                batch_size=settings.router_batch_size,
            )
        )
    return Runtime(
        settings=settings,
        role=role,
        database=database,
        event_log=event_log,
        services=services,
        hub=hub,
        components=components,
        workers=workers,
    )


def _metadata_store(settings: Settings, database: Database, components: dict[str, Component]) -> MetadataStore:
    if settings.metadata_url == "db":
        return SqlMetadataStore(database)
    from chat4all.adapters.etcd import EtcdMetadataStore

    store = EtcdMetadataStore(settings.metadata_url, refresh_ttl_s=settings.refresh_token_ttl_s)
    components["metadata"] = store
    return store


def _event_log(settings: Settings, database: Database) -> Any:
    if settings.event_log_url == "db":
        return SqlEventLog(database, partitions=settings.log_partitions, poll_interval_s=settings.router_poll_interval_s)
    from chat4all.adapters.kafka import KafkaEventLog

    return KafkaEventLog(
        settings.event_log_url,
        partitions=settings.log_partitions,
        topics=[MessageEvent.topic, StatusEvent.topic, PresenceEvent.topic],
        client_id=settings.node_id,
        append_timeout_s=settings.log_append_timeout_s,
        session_timeout_ms=settings.router_session_timeout_ms,
    )


def _presence_and_push(
    settings: Settings, hub: LocalHub, role: Role, components: dict[str, Component]
) -> tuple[PresenceStore, Push]:
    if settings.presence_url.startswith("memory://"):
        return MemoryPresenceStore(ttl_s=settings.ws_heartbeat_timeout_s), hub
    from chat4all.adapters.redis import NodeSubscriber, RedisPresenceStore, RedisPush, connect

    client = connect(settings.presence_url)
    presence = RedisPresenceStore(client, ttl_s=settings.presence_ttl_s)
    components["presence"] = RedisConnection(client)
    if role is not Role.ROUTER:  # a router holds no sockets; API nodes listen for frames addressed to them
        components["push"] = NodeSubscriber(client, hub=hub, node_id=settings.node_id)
    return presence, RedisPush(client, presence=presence, hub=hub, node_id=settings.node_id)


def _check_urls(settings: Settings, role: Role) -> None:
    if settings.event_log_url != "db" and not settings.event_log_url.startswith("kafka://"):
        raise ConfigurationError(f"unsupported event log URL {settings.event_log_url!r} (db or kafka://)")
    if settings.metadata_url != "db" and not settings.metadata_url.startswith("etcd://"):
        raise ConfigurationError(f"unsupported metadata URL {settings.metadata_url!r} (db or etcd://)")
    if not settings.presence_url.startswith(("memory://", "redis://")):
        raise ConfigurationError(f"unsupported presence URL {settings.presence_url!r} (memory:// or redis://)")
    if role is not Role.ALL and settings.presence_url.startswith("memory://"):
        # with in-memory presence and push, the router could not reach sockets held by another process
        raise ConfigurationError(f"'serve {role.value}' needs a shared presence/push backend (redis://)")
