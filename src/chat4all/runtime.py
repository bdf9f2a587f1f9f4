"""The composition root: builds the adapters named by Settings, wires the services, starts and
stops them. Nothing else in the code base constructs an adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from chat4all.adapters.memory import LocalHub, MemoryPresenceStore
from chat4all.adapters.memory_limits import MemoryRateLimiter
from chat4all.adapters.sql.accepted_ids import SqlAcceptedIds
from chat4all.adapters.sql.status_outbox import SqlStatusOutbox
from chat4all.adapters.sql.connector_links import SqlConnectorLinks
from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.files import SqlFileStore
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.adapters.sql.metadata import SqlMetadataStore
from chat4all.adapters.sql.migrate import SchemaCheck, upgrade
from chat4all.adapters.sqllog import SqlEventLog
from chat4all.adapters.sql.webhook_outbox import SqlWebhookOutbox
from chat4all.adapters.sql.webhooks import SqlWebhookRegistry
from chat4all.adapters.webhook_http import HttpCallbackTransport
from chat4all.config import Settings
from chat4all.connectors.registry import Plugins
from chat4all.domain.egress import EgressPolicy
from chat4all.domain.errors import Unavailable
from chat4all.domain.events import FileEvent, MessageEvent, PresenceEvent, StatusEvent
from chat4all.ports import BlobStore, EventLog, MessageStore, MetadataStore, PresenceStore, Push, WebhookOutbox
from chat4all.ports import AcceptedIds, ConnectorConfigStore, RateLimiter
from chat4all.services.abuse import AbuseGuard, AbuseRules
from chat4all.workers.outbox_relay import OutboxRelay
from chat4all.observability.logging import get_logger
from chat4all.runtime_connectors import connector_configs, connector_dispatcher, connector_hub, dead_letter_service
from chat4all.services.dead_letters import DeadLetterService
from chat4all.services.auth import AuthService
from chat4all.services.connections import ConnectionService
from chat4all.services.conversations import ConversationService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.files import FileService, UploadCleanup
from chat4all.services.inbound import InboundService
from chat4all.services.live import LiveService
from chat4all.services.messages import MessageService
from chat4all.services.users import UserService
from chat4all.services.webhook_callbacks import CallbackSource, FileCallbacks, ReceivedCallbacks, StatusCallbacks
from chat4all.services.webhooks import WebhookService
from chat4all.workers.base import Worker
from chat4all.workers.periodic import PeriodicTask
from chat4all.workers.router import RouterWorker
from chat4all.workers.webhook_delivery import DeliveryRules, WebhookDispatcher
from chat4all.workers.webhooks import GROUP as WEBHOOKS_GROUP
from chat4all.workers.webhooks import WebhookIntake

log = get_logger(__name__)


class Role(StrEnum):
    """What a process runs: everything (embedded), the HTTP/WebSocket API, the router, or the
    webhook worker."""

    ALL = "all"
    API = "api"
    ROUTER = "router"
    WEBHOOKS = "webhooks"


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
    files: FileService
    webhooks: WebhookService
    inbound: InboundService | None = None  # calls from channel providers (connectors)
    live: LiveService | None = None  # v2's typing and presence push (services/live.py)


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
    blobs: BlobStore | None = None
    # background chores (cleanup of abandoned uploads), started after the workers
    tasks: list[PeriodicTask] = field(default_factory=list)

    async def start(self) -> None:
        if self.settings.should_migrate_on_start:
            await upgrade(self.database)
        for component in self.components.values():
            await component.start()
        for worker in self.workers:
            await worker.start()
        for task in self.tasks:
            await task.start()
        log.info("chat4all started", role=self.role.value, node=self.settings.node_id)

    async def stop(self) -> None:
        # stop taking work first, then let the log write what it holds, then close the stores
        for task in reversed(self.tasks):
            await task.stop()
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
                reason = f": {exc.message}" if isinstance(exc, Unavailable) else ""
                checks[name] = f"down: {type(exc).__name__}{reason}"
        return checks


def build_runtime(settings: Settings, role: Role = Role.ALL) -> Runtime:
    _check_urls(settings, role)
    database = Database(
        settings.resolved_database_url, pool_size=settings.database_pool_size, read_url=settings.database_read_url
    )
    components: dict[str, Component] = {"database": database}
    conversation_store = SqlConversationStore(database)
    message_store = SqlMessageStore(database)
    metadata = _metadata_store(settings, database, components)
    event_log = _event_log(settings, database)
    components["event_log"] = event_log
    hub = LocalHub()
    presence, push = _presence_and_push(settings, hub, role, components)

    components["schema"] = SchemaCheck(database)  # readiness: the tables are those this code needs
    limiter, accepted_ids = _limits(settings, database, components)
    guard = AbuseGuard(limiter, abuse_rules(settings))
    conversations = ConversationService(
        conversations=conversation_store, metadata=metadata, max_members=settings.group_max_members, guard=guard
    )
    relay = OutboxRelay(SqlStatusOutbox(database), event_log, poll_interval_s=settings.outbox_poll_interval_s)
    components["outbox_relay"] = relay  # started after the log, stopped (and drained) before it
    deliveries = DeliveryService(messages=message_store, push=push, relay=relay)
    blobs, files, cleanup = _files(settings, database, event_log, role, components)
    webhooks, webhook_workers = _webhooks(settings, database, metadata, message_store, event_log, role, components)
    connectors = connector_hub(settings, database, metadata)
    if role in (Role.ALL, Role.API, Role.ROUTER):  # routers send through them, API nodes take their webhooks
        components["connectors"] = connectors
    messages = MessageService(
        conversations=conversations,
        messages=message_store,
        log=event_log,
        max_text_chars=settings.max_text_chars,
        files=files,
        supported_channels=connectors.all_channels,  # built-in, installed plugins and configured channels
        guard=guard,
        accepted_ids=accepted_ids,
        max_metadata_bytes=settings.max_metadata_bytes,
        history_page_max_bytes=settings.history_page_max_bytes,
    )
    live = LiveService(conversations=conversations, push=push)
    services = Services(
        auth=AuthService(
            metadata=metadata,
            secret=settings.resolved_jwt_secret(),
            access_ttl_s=settings.access_token_ttl_s,
            refresh_ttl_s=settings.refresh_token_ttl_s,
            bcrypt_rounds=settings.bcrypt_rounds,
            revocation_check_s=settings.auth_revocation_check_s,
            refresh_reuse_grace_s=settings.auth_refresh_reuse_grace_s,
            guard=guard,
        ),
        users=UserService(metadata=metadata, supported_channels=connectors.external_channels),
        conversations=conversations,
        messages=messages,
        deliveries=deliveries,
        connections=ConnectionService(
            hub=hub,
            presence=presence,
            messages=message_store,
            deliveries=deliveries,
            log=event_log,
            node_id=settings.node_id,
            queue_size=settings.ws_send_queue,
            max_sockets_per_user=settings.ws_max_sockets_per_user,
            pings_per_minute=settings.ws_pings_per_minute,
            on_presence=live.presence_changed,
        ),
        files=files,
        webhooks=webhooks,
        inbound=InboundService(
            hub=connectors, metadata=metadata, links=SqlConnectorLinks(database), deliveries=deliveries, messages=messages
        ),
        live=live,
    )
    dispatcher = None
    if role in (Role.ALL, Role.ROUTER):  # external deliveries go out from the processes that route
        components.setdefault("blobs", blobs)  # file messages go out with a download URL
        dispatcher = connector_dispatcher(settings, database, connectors, metadata, deliveries, event_log, blobs)
        components["connector_dispatch"] = dispatcher
    workers: list[Worker] = [*webhook_workers]
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
                on_external=dispatcher.wake if dispatcher is not None else None,
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
        blobs=blobs,
        tasks=[cleanup] if cleanup is not None else [],
    )


def abuse_rules(settings: Settings) -> AbuseRules:
    return AbuseRules(**{f: getattr(settings, f) for f in AbuseRules.__dataclass_fields__})


def _limits(
    settings: Settings, database: Database, components: dict[str, Component]
) -> tuple[RateLimiter, AcceptedIds]:
    """Rate limits and accepted message_ids: in Redis when shared (limits_url), else in this
    process (limits) and the database (message_ids)."""
    url = settings.resolved_limits_url
    if url.startswith("memory://"):
        return MemoryRateLimiter(), SqlAcceptedIds(database, ttl_s=settings.idempotency_ttl_s)
    from chat4all.adapters.redis import RedisConnection, connect
    from chat4all.adapters.redis_limits import RedisAcceptedIds, RedisRateLimiter

    client = connect(url)
    components["limits"] = RedisConnection(client)
    prefix = "c4a" + (f":{settings.namespace}" if settings.namespace else "")
    return (
        RedisRateLimiter(client, key_prefix=prefix),
        RedisAcceptedIds(client, key_prefix=prefix, ttl_s=settings.idempotency_ttl_s),
    )


def build_blob_store(settings: Settings) -> BlobStore:
    """The BlobStore named by ``blob_url``: the local disk (file://) or S3 (s3://)."""
    url = settings.resolved_blob_url
    if url.startswith("file://"):
        from chat4all.adapters.localfs import LocalBlobStore, signing_key

        return LocalBlobStore(
            Path(url.removeprefix("file://")),
            base_url=settings.resolved_public_base_url,
            key=signing_key(settings.resolved_jwt_secret()),
        )
    from chat4all.adapters.s3 import S3BlobStore

    return S3BlobStore(url, key_prefix=f"{settings.namespace}/" if settings.namespace else "")


def _files(
    settings: Settings, database: Database, event_log: EventLog, role: Role, components: dict[str, Component]
) -> tuple[BlobStore, FileService, PeriodicTask | None]:
    blobs = build_blob_store(settings)
    file_store = SqlFileStore(database)
    files = FileService(
        files=file_store,
        blobs=blobs,
        log=event_log,
        max_size=settings.max_file_bytes,
        part_size=settings.file_part_bytes,
        upload_url_ttl_s=settings.file_upload_url_ttl_s,
        download_url_ttl_s=settings.file_download_url_ttl_s,
    )
    if role not in (Role.ALL, Role.API):  # only processes that serve the API touch file bytes
        return blobs, files, None
    components["blobs"] = blobs
    cleanup = UploadCleanup(files=file_store, blobs=blobs, max_age_s=settings.file_upload_max_age_s)
    task = PeriodicTask("file-cleanup", cleanup.run_once, interval_s=settings.file_cleanup_interval_s)
    return blobs, files, task


async def clean_up_uploads(settings: Settings, *, max_age_s: float | None = None) -> int:
    """One cleanup of abandoned uploads, outside a server (``chat4all files cleanup``)."""
    database = Database(settings.resolved_database_url)
    blobs = build_blob_store(settings)
    try:
        if settings.should_migrate_on_start:
            await upgrade(database)
        await blobs.start()
        age = settings.file_upload_max_age_s if max_age_s is None else max_age_s
        return await UploadCleanup(files=SqlFileStore(database), blobs=blobs, max_age_s=age).run_once()
    finally:
        await blobs.close()
        await database.close()


def webhook_sources(messages: MessageStore, outbox: WebhookOutbox) -> list[CallbackSource]:
    """The topics the webhook worker turns into callbacks: adding one is adding its source here."""
    return [StatusCallbacks(messages=messages, outbox=outbox), FileCallbacks(), ReceivedCallbacks(messages=messages)]


def _webhooks(
    settings: Settings,
    database: Database,
    metadata: MetadataStore,
    messages: MessageStore,
    event_log: EventLog,
    role: Role,
    components: dict[str, Component],
) -> tuple[WebhookService, list[Worker]]:
    """Registrations next to the other metadata (etcd or the database); the outbox in the database."""
    if settings.metadata_url == "db":
        registry: Any = SqlWebhookRegistry(database)
    else:
        from chat4all.adapters.etcd_webhooks import EtcdWebhookRegistry

        registry = EtcdWebhookRegistry(metadata)  # type: ignore[arg-type]
    outbox = SqlWebhookOutbox(database)
    try:
        policy = EgressPolicy.parse(
            allow_private=settings.webhooks_allow_private, allowed_networks=settings.resolved_webhooks_allowed_networks
        )
    except ValueError as exc:
        raise ConfigurationError(f"webhooks_allowed_networks: {exc}") from None
    transport = HttpCallbackTransport(policy)
    service = WebhookService(
        registry=registry, outbox=outbox, transport=transport, max_per_user=settings.webhooks_max_per_user
    )
    if role not in (Role.ALL, Role.WEBHOOKS):
        return service, []
    rules = DeliveryRules(
        timeout_s=settings.webhooks_timeout_s,
        max_retries=settings.webhooks_max_retries,
        retry_base_s=settings.webhooks_retry_base_s,
        disable_after=settings.webhooks_disable_after,
        poll_interval_s=settings.webhooks_poll_interval_s,
        max_in_flight=settings.webhooks_max_in_flight,
        claim_ttl_s=settings.webhooks_claim_ttl_s,
        retention_s=settings.webhooks_retention_s,
    )
    dispatcher = WebhookDispatcher(
        outbox=outbox,
        registry=registry,
        transport=transport,
        node_id=settings.node_id,
        rules=rules,
        # one SQLite file means one machine: whatever a dead process held is due again at once
        release_all_claims_on_start=settings.is_sqlite,
    )
    components["webhooks"] = dispatcher
    intakes: list[Worker] = [
        WebhookIntake(
            # a second source on a topic reads it in its own group, named after the source
            event_log.consumer(source.topic, group=f"{WEBHOOKS_GROUP}-{getattr(source, 'name', source.topic)}"),
            source=source,
            registry=registry,
            outbox=outbox,
            on_enqueued=dispatcher.wake,
            batch_size=settings.router_batch_size,
        )
        for source in webhook_sources(messages, outbox)
    ]
    return service, intakes


@dataclass
class Operations:
    """What the operator commands (``chat4all connectors``, ``chat4all dlq``) work with."""

    configs: ConnectorConfigStore
    plugins: Plugins
    dead_letters: DeadLetterService


@asynccontextmanager
async def operations(settings: Settings) -> AsyncIterator[Operations]:
    """The stores and log of a deployment, outside a server."""
    database = Database(settings.resolved_database_url)
    components: dict[str, Component] = {"database": database}
    metadata = _metadata_store(settings, database, components)
    event_log = _event_log(settings, database)
    components["event_log"] = event_log
    started: list[Component] = []
    try:
        if settings.should_migrate_on_start:
            await upgrade(database)
        for component in components.values():
            await component.start()
            started.append(component)
        yield Operations(
            configs=connector_configs(settings, database, metadata),
            plugins=Plugins(),
            dead_letters=dead_letter_service(settings, database, event_log),
        )
    finally:
        for component in reversed(started):
            await component.close()


def _metadata_store(settings: Settings, database: Database, components: dict[str, Component]) -> MetadataStore:
    if settings.metadata_url == "db":
        return SqlMetadataStore(database)
    from chat4all.adapters.etcd import EtcdMetadataStore

    prefix = "/chat4all" + (f"/{settings.namespace}" if settings.namespace else "")
    store = EtcdMetadataStore(settings.metadata_url, prefix=prefix, refresh_ttl_s=settings.refresh_token_ttl_s)
    components["metadata"] = store
    return store


def _event_log(settings: Settings, database: Database) -> Any:
    if settings.event_log_url == "db":
        return SqlEventLog(database, partitions=settings.log_partitions, poll_interval_s=settings.router_poll_interval_s)
    from chat4all.adapters.kafka import KafkaEventLog

    return KafkaEventLog(
        settings.event_log_url,
        partitions=settings.log_partitions,
        topics=[MessageEvent.topic, StatusEvent.topic, PresenceEvent.topic, FileEvent.topic],
        replication_factor=settings.log_replication_factor,
        min_insync_replicas=settings.log_min_insync_replicas,
        client_id=settings.node_id,
        append_timeout_s=settings.log_append_timeout_s,
        session_timeout_ms=settings.router_session_timeout_ms,
        namespace=settings.namespace,
    )


def _presence_and_push(
    settings: Settings, hub: LocalHub, role: Role, components: dict[str, Component]
) -> tuple[PresenceStore, Push]:
    if settings.presence_url.startswith("memory://"):
        return MemoryPresenceStore(ttl_s=settings.ws_heartbeat_timeout_s), hub
    from chat4all.adapters.redis import NodeSubscriber, RedisConnection, RedisPresenceStore, RedisPush, connect

    client = connect(settings.presence_url)
    prefix = "c4a" + (f":{settings.namespace}" if settings.namespace else "")
    presence = RedisPresenceStore(client, ttl_s=settings.presence_ttl_s, key_prefix=prefix)
    components["presence"] = RedisConnection(client)
    if role in (Role.ALL, Role.API):  # only API nodes hold sockets and listen for frames addressed to them
        components["push"] = NodeSubscriber(client, hub=hub, node_id=settings.node_id, key_prefix=prefix)
    return presence, RedisPush(client, presence=presence, hub=hub, node_id=settings.node_id, key_prefix=prefix)


def _check_urls(settings: Settings, role: Role) -> None:
    if settings.event_log_url != "db" and not settings.event_log_url.startswith("kafka://"):
        raise ConfigurationError(f"unsupported event log URL {settings.event_log_url!r} (db or kafka://)")
    if settings.metadata_url != "db" and not settings.metadata_url.startswith("etcd://"):
        raise ConfigurationError(f"unsupported metadata URL {settings.metadata_url!r} (db or etcd://)")
    if not settings.resolved_blob_url.startswith(("file://", "s3://")):
        raise ConfigurationError(f"unsupported blob URL {settings.resolved_blob_url!r} (file:// or s3://)")
    if not settings.resolved_limits_url.startswith(("memory://", "redis://", "rediss://", "redis+sentinel://")):
        raise ConfigurationError(
            f"unsupported limits URL {settings.resolved_limits_url!r} (memory://, redis:// or redis+sentinel://)"
        )
    if not settings.presence_url.startswith(("memory://", "redis://", "rediss://", "redis+sentinel://")):
        raise ConfigurationError(
            f"unsupported presence URL {settings.presence_url!r} (memory://, redis:// or redis+sentinel://)"
        )
    if role in (Role.API, Role.ROUTER) and settings.presence_url.startswith("memory://"):
        # with in-memory presence and push, the router could not reach sockets held by another process
        raise ConfigurationError(f"'serve {role.value}' needs a shared presence/push backend (redis://)")
