"""The composition root: builds the adapters named by Settings, wires the services, starts and
stops them. Nothing else in the code base constructs an adapter."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from chat4all.adapters.memory import LocalHub, MemoryPresenceStore
from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.adapters.sql.metadata import SqlMetadataStore
from chat4all.adapters.sql.migrate import upgrade
from chat4all.adapters.sqllog import SqlEventLog
from chat4all.config import Settings
from chat4all.domain.events import MessageEvent
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


@dataclass
class Runtime:
    settings: Settings
    role: Role
    database: Database
    event_log: SqlEventLog
    services: Services
    hub: LocalHub
    workers: list[Worker] = field(default_factory=list)

    async def start(self) -> None:
        if self.settings.should_migrate_on_start:
            await upgrade(self.database)
        await self.event_log.start()
        for worker in self.workers:
            await worker.start()
        log.info("chat4all started", role=self.role.value, node=self.settings.node_id)

    async def stop(self) -> None:
        # stop taking work first, then let the log write what it holds, then close the store
        for worker in reversed(self.workers):
            await worker.stop()
        await self.event_log.close()
        await self.database.close()
        log.info("chat4all stopped", role=self.role.value)

    async def readiness(self) -> dict[str, str]:
        """'ok' or the reason, per dependency."""
        checks: dict[str, str] = {}
        try:
            await self.database.ping()
            checks["database"] = "ok"
        except Exception as exc:  # readiness reports any failure rather than raising it
            checks["database"] = f"down: {type(exc).__name__}"
        checks["event_log"] = "ok" if self.event_log.running else "down: not running"
        return checks


def build_runtime(settings: Settings, role: Role = Role.ALL) -> Runtime:
    _check_urls(settings, role)
    database = Database(settings.resolved_database_url)
    metadata = SqlMetadataStore(database)
    conversation_store = SqlConversationStore(database)
    message_store = SqlMessageStore(database)
    event_log = SqlEventLog(
        database, partitions=settings.log_partitions, poll_interval_s=settings.router_poll_interval_s
    )
    presence = MemoryPresenceStore(ttl_s=settings.ws_heartbeat_timeout_s)
    hub = LocalHub()
    push = hub

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
                batch_size=settings.router_batch_size,
            )
        )
    return Runtime(
        settings=settings, role=role, database=database, event_log=event_log, services=services, hub=hub, workers=workers
    )


def _check_urls(settings: Settings, role: Role) -> None:
    if settings.event_log_url != "db":
        raise ConfigurationError(f"unsupported event log URL {settings.event_log_url!r} (supported: db)")
    if settings.metadata_url != "db":
        raise ConfigurationError(f"unsupported metadata URL {settings.metadata_url!r} (supported: db)")
    if not settings.presence_url.startswith("memory://"):
        raise ConfigurationError(f"unsupported presence URL {settings.presence_url!r} (supported: memory://)")
    if role is not Role.ALL and settings.presence_url.startswith("memory://"):
        # with in-memory presence and push, the router could not reach sockets held by another process
        raise ConfigurationError(f"'serve {role.value}' needs a shared presence/push backend; use 'serve all'")
