"""The composition root: builds the adapters named by Settings, wires the services, starts and
stops them. Nothing else in the code base constructs an adapter.

``Runtime`` is a container of cached getters (one instance of each thing per process, built
the first time something asks for it, with what it needs built first). A role says which parts
a process runs (``ROLE_PARTS``); each part asks the container for what it needs, so a process
builds only what its role uses and nothing decides by role anywhere else. ``create_app`` hands
the API its services (never the runtime), ``operations`` gives operator commands theirs, and
``migrate_database`` / ``clean_up_uploads`` are the one-off jobs of the CLI.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp

from chat4all.adapters.memory import MemoryPresenceStore, MemoryPush
from chat4all.adapters.memory_limits import MemoryRateLimiter
from chat4all.adapters.sql.accepted_ids import SqlAcceptedIds
from chat4all.adapters.sql.connector_configs import SqlConnectorConfigStore
from chat4all.adapters.sql.connector_links import SqlConnectorLinks
from chat4all.adapters.sql.connector_queue import SqlDeliveryQueue
from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.deliveries import SqlDeliveryStore
from chat4all.adapters.sql.files import SqlFileStore
from chat4all.adapters.sql.membership import SqlMembershipStore
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.adapters.sql.metadata import SqlMetadataStore
from chat4all.adapters.sql.migrate import SchemaCheck, upgrade
from chat4all.adapters.sql.status_outbox import SqlStatusOutbox
from chat4all.adapters.sql.timeline import SqlTimelineStore
from chat4all.adapters.sql.webhook_outbox import SqlWebhookOutbox
from chat4all.adapters.sql.webhooks import SqlWebhookRegistry
from chat4all.adapters.sqllog import SqlEventLog
from chat4all.adapters.webhook_http import HttpCallbackTransport
from chat4all.config import Settings
from chat4all.connectors.hub import BreakerRules, ConnectorHub
from chat4all.connectors.registry import Plugins
from chat4all.connectors.resilience import RetryPolicy
from chat4all.connectors.simulated import simulated_defaults
from chat4all.domain.egress import EgressPolicy
from chat4all.domain.errors import Unavailable
from chat4all.domain.events import FileEvent, MessageEvent, PresenceEvent, StatusEvent
from chat4all.domain.ids import utcnow
from chat4all.observability.logging import get_logger
from chat4all.ports import (
    AcceptedIds,
    BlobStore,
    ConnectorConfigStore,
    MessageStore,
    MetadataStore,
    PresenceStore,
    Push,
    RateLimiter,
    WebhookOutbox,
    WebhookRegistry,
)
from chat4all.services.abuse import AbuseGuard, AbuseRules
from chat4all.services.auth import AuthService
from chat4all.services.bundle import Services, V2Services
from chat4all.services.connections import ConnectionService
from chat4all.services.connector_dispatch import ConnectorSender, ConnectorSendRules
from chat4all.services.conversations import ConversationService
from chat4all.services.dead_letters import DeadLetterService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.files import FileService, UploadCleanup
from chat4all.services.groups import GroupService
from chat4all.services.hub import LocalHub
from chat4all.services.inbound import InboundService
from chat4all.services.inbox import InboxService
from chat4all.services.live import LiveService
from chat4all.services.messages import MessageService
from chat4all.services.notices import Notices
from chat4all.services.routing import RoutingService
from chat4all.services.system_messages import SystemMessages
from chat4all.services.timeline import TimelineService
from chat4all.services.users import UserService
from chat4all.services.webhook_callbacks import CallbackSource, FileCallbacks, ReceivedCallbacks, StatusCallbacks
from chat4all.services.webhooks import WebhookService
from chat4all.workers.base import Worker
from chat4all.workers.connector_dispatch import ConnectorDispatcher
from chat4all.workers.outbox_relay import OutboxRelay
from chat4all.workers.periodic import PeriodicTask
from chat4all.workers.router import RouterWorker
from chat4all.workers.webhook_delivery import CallbackDispatcher, CallbackRules
from chat4all.workers.webhooks import GROUP as WEBHOOKS_GROUP
from chat4all.workers.webhooks import WebhookIntake

__all__ = ["ConfigurationError", "Role", "Runtime", "Services", "build_runtime", "create_app", "operations"]

log = get_logger(__name__)


class Role(StrEnum):
    """What a process runs: everything (embedded), the HTTP/WebSocket API, the router, or the
    webhook worker."""

    ALL = "all"
    API = "api"
    ROUTER = "router"
    WEBHOOKS = "webhooks"


class Part(StrEnum):
    """A duty of a process; a role is a set of them."""

    API = "api"  # the HTTP/WebSocket API: sockets, file bytes, providers' webhooks
    ROUTING = "routing"  # the router and the connector dispatcher
    WEBHOOKS = "webhooks"  # the webhook intake and the callbacks' delivery


ROLE_PARTS: dict[Role, tuple[Part, ...]] = {
    Role.ALL: (Part.API, Part.ROUTING, Part.WEBHOOKS),
    Role.API: (Part.API,),
    Role.ROUTER: (Part.ROUTING,),
    Role.WEBHOOKS: (Part.WEBHOOKS,),
}


class ConfigurationError(Exception):
    pass


class Component(Protocol):
    """Something the runtime starts, stops and asks about readiness."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...


class Runtime:
    """One process's parts, each built once on first use (``cached_property``)."""

    def __init__(self, settings: Settings, role: Role = Role.ALL) -> None:
        _check_urls(settings, role)
        self.settings = settings
        self.role = role
        # started in this order (a thing's dependencies are built, so registered, before it),
        # stopped in reverse; each also answers readiness under its name
        self.components: dict[str, Component] = {}
        self.workers: list[Worker] = []
        # background chores (cleanup of abandoned uploads), started after the workers
        self.tasks: list[PeriodicTask] = []

    def _component(self, name: str, component: Any) -> Any:
        self.components.setdefault(name, component)
        return component

    def assemble(self) -> Runtime:
        """Builds what the role runs: the shared parts, then each of the role's parts."""
        _ = self.database, self.metadata, self.event_log, self.services
        self._component("schema", SchemaCheck(self.database))  # readiness: the tables this code needs
        for part in ROLE_PARTS[self.role]:
            {Part.API: self._serve_api, Part.ROUTING: self._route, Part.WEBHOOKS: self._send_webhooks}[part]()
        return self

    # the role's parts ----------------------------------------------------------------------------

    def _serve_api(self) -> None:
        if self.push_subscriber is not None:  # API nodes hold sockets and listen for their frames
            self._component("push", self.push_subscriber)
        self._component("blobs", self.blobs)
        self._component("connectors", self.connectors)  # the providers' webhooks come in here
        self.tasks.append(self.upload_cleanup)

    def _route(self) -> None:
        self._component("blobs", self.blobs)  # file messages go out with a download URL
        self._component("connectors", self.connectors)
        self._component("connector_dispatch", self.connector_dispatcher)
        self.workers.append(
            RouterWorker(
                self.event_log.consumer(MessageEvent.topic, group="router"),
                routing=self.routing,
                log=self.event_log,
                batch_size=self.settings.router_batch_size,
            )
        )

    def _send_webhooks(self) -> None:
        self._component("webhooks", self.callback_dispatcher)
        self.workers.extend(
            WebhookIntake(
                # a second source on a topic reads it in its own group, named after the source
                self.event_log.consumer(source.topic, group=f"{WEBHOOKS_GROUP}-{getattr(source, 'name', source.topic)}"),
                source=source,
                registry=self.webhook_registry,
                outbox=self.webhook_outbox,
                on_enqueued=self.callback_dispatcher.wake,
                batch_size=self.settings.router_batch_size,
            )
            for source in webhook_sources(self.message_store, self.webhook_outbox)
        )

    # lifecycle -----------------------------------------------------------------------------------

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
            except Exception as exc:  # noqa: BLE001 — readiness reports any failure rather than raising it
                reason = f": {exc.message}" if isinstance(exc, Unavailable) else ""
                checks[name] = f"down: {type(exc).__name__}{reason}"
        return checks

    def mounts(self) -> dict[str, ASGIApp]:
        """ASGI apps the API serves besides its routes: the local disk's signed URLs (file://)."""
        if not self.settings.resolved_blob_url.startswith("file://"):
            return {}
        from chat4all.adapters.localfs import URL_PREFIX
        from chat4all.adapters.localfs_http import signed_url_app

        return {URL_PREFIX: signed_url_app(self.blobs)}  # type: ignore[arg-type]

    # stores and engines --------------------------------------------------------------------------

    @cached_property
    def database(self) -> Database:
        s = self.settings
        return self._component(
            "database", Database(s.resolved_database_url, pool_size=s.database_pool_size, read_url=s.database_read_url)
        )

    @cached_property
    def metadata(self) -> MetadataStore:
        """Users, identities and sessions: etcd in production, else the database."""
        if self.settings.metadata_url == "db":
            return SqlMetadataStore(self.database)
        from chat4all.adapters.etcd import EtcdMetadataStore

        s = self.settings
        prefix = "/chat4all" + (f"/{s.namespace}" if s.namespace else "")
        return self._component(
            "metadata", EtcdMetadataStore(s.metadata_url, prefix=prefix, refresh_ttl_s=s.refresh_token_ttl_s)
        )

    @cached_property
    def event_log(self) -> Any:
        s = self.settings
        if s.event_log_url == "db":
            log_: Any = SqlEventLog(
                self.database, partitions=s.log_partitions, poll_interval_s=s.router_poll_interval_s
            )
        else:
            from chat4all.adapters.kafka import KafkaEventLog

            log_ = KafkaEventLog(
                s.event_log_url,
                partitions=s.log_partitions,
                topics=[MessageEvent.topic, StatusEvent.topic, PresenceEvent.topic, FileEvent.topic],
                replication_factor=s.log_replication_factor,
                min_insync_replicas=s.log_min_insync_replicas,
                client_id=s.node_id,
                append_timeout_s=s.log_append_timeout_s,
                session_timeout_ms=s.router_session_timeout_ms,
                namespace=s.namespace,
            )
        return self._component("event_log", log_)

    @cached_property
    def message_store(self) -> MessageStore:
        return SqlMessageStore(self.database)

    @cached_property
    def conversation_store(self) -> SqlConversationStore:
        return SqlConversationStore(self.database)

    @cached_property
    def delivery_store(self) -> SqlDeliveryStore:
        return SqlDeliveryStore(self.database)

    @cached_property
    def hub(self) -> LocalHub:
        """The sockets this process holds (services/hub.py): what push delivers into."""
        return LocalHub()

    @cached_property
    def _redis_prefix(self) -> str:
        return "c4a" + (f":{self.settings.namespace}" if self.settings.namespace else "")

    @cached_property
    def _presence_client(self) -> Any:
        from chat4all.adapters.redis import RedisConnection, connect

        client = connect(self.settings.presence_url)
        self._component("presence", RedisConnection(client))
        return client

    @cached_property
    def _shared_presence(self) -> bool:
        return not self.settings.presence_url.startswith("memory://")

    @cached_property
    def presence(self) -> PresenceStore:
        if not self._shared_presence:
            return MemoryPresenceStore(ttl_s=self.settings.ws_heartbeat_timeout_s)
        from chat4all.adapters.redis import RedisPresenceStore

        return RedisPresenceStore(
            self._presence_client, ttl_s=self.settings.presence_ttl_s, key_prefix=self._redis_prefix
        )

    @cached_property
    def push(self) -> Push:
        """Frames to whichever node holds the recipients' sockets: this node's hub directly,
        the others through Redis."""
        if not self._shared_presence:
            return MemoryPush(self.hub)
        from chat4all.adapters.redis import RedisPush

        return RedisPush(
            self._presence_client,
            presence=self.presence,
            hub=self.hub,
            node_id=self.settings.node_id,
            key_prefix=self._redis_prefix,
        )

    @cached_property
    def push_subscriber(self) -> Component | None:
        """What other nodes push to this one, handed to the hub (None in one process)."""
        if not self._shared_presence:
            return None
        from chat4all.adapters.redis import NodeSubscriber

        return NodeSubscriber(
            self._presence_client, hub=self.hub, node_id=self.settings.node_id, key_prefix=self._redis_prefix
        )

    @cached_property
    def _limits(self) -> tuple[RateLimiter, AcceptedIds]:
        """Rate limits and accepted message_ids: in Redis when shared (limits_url), else in this
        process (limits) and the database (message_ids)."""
        s = self.settings
        url = s.resolved_limits_url
        if url.startswith("memory://"):
            return MemoryRateLimiter(), SqlAcceptedIds(self.database, ttl_s=s.idempotency_ttl_s)
        from chat4all.adapters.redis import RedisConnection, connect
        from chat4all.adapters.redis_limits import RedisAcceptedIds, RedisRateLimiter

        client = connect(url)
        self._component("limits", RedisConnection(client))
        return (
            RedisRateLimiter(client, key_prefix=self._redis_prefix),
            RedisAcceptedIds(client, key_prefix=self._redis_prefix, ttl_s=s.idempotency_ttl_s),
        )

    @cached_property
    def blobs(self) -> BlobStore:
        return build_blob_store(self.settings)

    @cached_property
    def file_store(self) -> SqlFileStore:
        return SqlFileStore(self.database)

    @cached_property
    def webhook_registry(self) -> WebhookRegistry:
        """Registrations next to the other metadata (etcd or the database)."""
        if self.settings.metadata_url == "db":
            return SqlWebhookRegistry(self.database)
        from chat4all.adapters.etcd import EtcdWebhookRegistry

        return EtcdWebhookRegistry(self.metadata)  # type: ignore[arg-type]

    @cached_property
    def webhook_outbox(self) -> WebhookOutbox:
        return SqlWebhookOutbox(self.database)

    @cached_property
    def callback_transport(self) -> HttpCallbackTransport:
        s = self.settings
        try:
            policy = EgressPolicy.parse(
                allow_private=s.webhooks_allow_private, allowed_networks=s.resolved_webhooks_allowed_networks
            )
        except ValueError as exc:
            raise ConfigurationError(f"webhooks_allowed_networks: {exc}") from None
        return HttpCallbackTransport(policy)

    @cached_property
    def connector_configs(self) -> ConnectorConfigStore:
        """Connector configuration lives next to the other metadata (etcd, or the database)."""
        if self.settings.metadata_url == "db":
            return SqlConnectorConfigStore(self.database)
        from chat4all.adapters.etcd import EtcdConnectorConfigStore

        return EtcdConnectorConfigStore(self.metadata)  # type: ignore[arg-type]

    @cached_property
    def connectors(self) -> ConnectorHub:
        """The live connectors, rebuilt when their configuration changes."""
        s = self.settings
        defaults = []
        if s.simulated_connectors_by_default:
            # only written if the channel has no configuration yet (the first start)
            defaults = simulated_defaults(now=utcnow(), secret=secrets.token_urlsafe(24))
        return ConnectorHub(
            store=self.connector_configs,
            plugins=Plugins(),
            public_base_url=s.resolved_public_base_url,
            refresh_interval_s=s.connectors_refresh_interval_s,
            breaker=BreakerRules(failure_threshold=s.connectors_breaker_failures, open_s=s.connectors_breaker_open_s),
            defaults=defaults,
            reconnect_every_s=s.connectors_refresh_interval_s,
        )

    # services ------------------------------------------------------------------------------------

    @cached_property
    def outbox_relay(self) -> OutboxRelay:
        relay = OutboxRelay(
            SqlStatusOutbox(self.database), self.event_log, poll_interval_s=self.settings.outbox_poll_interval_s
        )
        return self._component("outbox_relay", relay)  # started after the log, stopped (and drained) before it

    @cached_property
    def deliveries(self) -> DeliveryService:
        return DeliveryService(store=self.delivery_store, push=self.push, relay=self.outbox_relay, log=self.event_log)

    @cached_property
    def guard(self) -> AbuseGuard:
        return AbuseGuard(self._limits[0], abuse_rules(self.settings))

    @cached_property
    def conversations(self) -> ConversationService:
        return ConversationService(
            conversations=self.conversation_store,
            metadata=self.metadata,
            max_members=self.settings.group_max_members,
            guard=self.guard,
        )

    @cached_property
    def files(self) -> FileService:
        s = self.settings
        return FileService(
            files=self.file_store,
            blobs=self.blobs,
            log=self.event_log,
            max_size=s.max_file_bytes,
            part_size=s.file_part_bytes,
            upload_url_ttl_s=s.file_upload_url_ttl_s,
            download_url_ttl_s=s.file_download_url_ttl_s,
        )

    @cached_property
    def upload_cleanup(self) -> PeriodicTask:
        s = self.settings
        cleanup = UploadCleanup(files=self.file_store, blobs=self.blobs, max_age_s=s.file_upload_max_age_s)
        return PeriodicTask("file-cleanup", cleanup.run_once, interval_s=s.file_cleanup_interval_s)

    @cached_property
    def messages(self) -> MessageService:
        s = self.settings
        return MessageService(
            conversations=self.conversations,
            messages=self.message_store,
            log=self.event_log,
            max_text_chars=s.max_text_chars,
            files=self.files,
            supported_channels=self.connectors.all_channels,  # built-in, installed plugins and configured
            guard=self.guard,
            accepted_ids=self._limits[1],
            max_metadata_bytes=s.max_metadata_bytes,
            history_page_max_bytes=s.history_page_max_bytes,
        )

    @cached_property
    def auth(self) -> AuthService:
        s = self.settings
        return AuthService(
            metadata=self.metadata,
            secret=s.resolved_jwt_secret(),
            access_ttl_s=s.access_token_ttl_s,
            refresh_ttl_s=s.refresh_token_ttl_s,
            bcrypt_rounds=s.bcrypt_rounds,
            revocation_check_s=s.auth_revocation_check_s,
            refresh_reuse_grace_s=s.auth_refresh_reuse_grace_s,
            guard=self.guard,
        )

    @cached_property
    def connections(self) -> ConnectionService:
        s = self.settings
        return ConnectionService(
            hub=self.hub,
            presence=self.presence,
            messages=self.message_store,
            deliveries=self.deliveries,
            log=self.event_log,
            node_id=s.node_id,
            queue_size=s.ws_send_queue,
            max_sockets_per_user=s.ws_max_sockets_per_user,
            pings_per_minute=s.ws_pings_per_minute,
            on_presence=self.live.presence_changed,
        )

    @cached_property
    def live(self) -> LiveService:
        """v2's typing and presence push (services/live.py)."""
        return LiveService(conversations=self.conversations, push=self.push, read_cursor=self.v2.inbox.read)

    @cached_property
    def webhooks(self) -> WebhookService:
        return WebhookService(
            registry=self.webhook_registry,
            outbox=self.webhook_outbox,
            transport=self.callback_transport,
            max_per_user=self.settings.webhooks_max_per_user,
        )

    @cached_property
    def users(self) -> UserService:
        s = self.settings
        return UserService(
            metadata=self.metadata,
            supported_channels=self.connectors.external_channels,
            verify_identities=s.verify_channel_identities,
            claim_ttl_s=s.channel_claim_ttl_s,
        )

    @cached_property
    def v2(self) -> V2Services:
        """API v2's conversations (docs/api-v2.md) on the same stores and services as v1."""
        s = self.settings
        membership = SqlMembershipStore(self.database, self.conversation_store)
        timeline_store = SqlTimelineStore(self.database)
        notices = Notices(push=self.push, registry=self.webhooks.registry, outbox=self.webhooks.outbox)
        inbox = InboxService(membership=membership, timeline=timeline_store, deliveries=self.deliveries, notices=notices)
        groups = GroupService(
            conversations=self.conversations,
            membership=membership,
            metadata=self.metadata,
            inbox=inbox,
            system=SystemMessages(self.event_log),
            notices=notices,
        )
        timeline = TimelineService(
            conversations=self.conversations,
            messages=self.messages,
            timeline=timeline_store,
            notices=notices,
            max_text_chars=s.max_text_chars,
            max_metadata_bytes=s.max_metadata_bytes,
        )
        return V2Services(groups=groups, inbox=inbox, timeline=timeline, notices=notices)

    @cached_property
    def services(self) -> Services:
        """What the API serves (routes and the WebSocket get these, not the runtime)."""
        return Services(
            auth=self.auth,
            users=self.users,
            conversations=self.conversations,
            messages=self.messages,
            deliveries=self.deliveries,
            connections=self.connections,
            files=self.files,
            webhooks=self.webhooks,
            inbound=InboundService(
                hub=self.connectors,
                metadata=self.metadata,
                links=SqlConnectorLinks(self.database),
                deliveries=self.deliveries,
                messages=self.messages,
                users=self.users,
            ),
            readiness=self.readiness,
            v2=self.v2,
            live=self.live,
        )

    @cached_property
    def connector_dispatcher(self) -> ConnectorDispatcher:
        s = self.settings
        sender = ConnectorSender(
            metadata=self.metadata,
            deliveries=self.deliveries,
            log=self.event_log,
            files=self.file_store,
            blobs=self.blobs,
            rules=ConnectorSendRules(
                retry=RetryPolicy(
                    max_attempts=s.connectors_max_attempts,
                    base_s=s.connectors_retry_base_s,
                    jitter=s.connectors_retry_jitter,
                ),
                download_url_ttl_s=s.file_download_url_ttl_s,
            ),
        )
        return ConnectorDispatcher(
            queue=SqlDeliveryQueue(self.database),
            hub=self.connectors,
            dispatch=sender,
            node_id=s.node_id,
            poll_interval_s=s.connectors_poll_interval_s,
            lease_s=s.connectors_claim_ttl_s,
            # one SQLite file means one machine: whatever a dead process held is due again at once
            release_all_claims_on_start=s.is_sqlite,
        )

    @cached_property
    def routing(self) -> RoutingService:
        # external deliveries go out from the processes that route: wake their dispatcher
        return RoutingService(
            deliveries=self.deliveries,
            metadata=self.metadata,
            push=self.push,
            on_external=self.connector_dispatcher.wake,
        )

    @cached_property
    def callback_dispatcher(self) -> CallbackDispatcher:
        s = self.settings
        rules = CallbackRules(
            timeout_s=s.webhooks_timeout_s,
            max_retries=s.webhooks_max_retries,
            retry_base_s=s.webhooks_retry_base_s,
            disable_after=s.webhooks_disable_after,
            poll_interval_s=s.webhooks_poll_interval_s,
            max_in_flight=s.webhooks_max_in_flight,
            claim_ttl_s=s.webhooks_claim_ttl_s,
            retention_s=s.webhooks_retention_s,
        )
        return CallbackDispatcher(
            outbox=self.webhook_outbox,
            registry=self.webhook_registry,
            transport=self.callback_transport,
            node_id=s.node_id,
            rules=rules,
            # one SQLite file means one machine: whatever a dead process held is due again at once
            release_all_claims_on_start=s.is_sqlite,
        )

    @cached_property
    def dead_letters(self) -> DeadLetterService:
        """The dead-letter queue for operators: a replay returns once its StatusEvents are in
        the log (outside a server nothing relays later)."""
        kafka = self.settings.event_log_url != "db"
        return DeadLetterService(
            log=self.event_log,
            messages=self.message_store,
            deliveries=DeliveryService(
                store=self.delivery_store, push=self.push_here, relay=self.outbox_relay, wait_for_relay=True
            ),
            # a Kafka reader needs a moment to be assigned its partitions
            first_poll_s=10.0 if kafka else 0.5,
            next_poll_s=2.0 if kafka else 0.1,
        )

    @cached_property
    def push_here(self) -> Push:
        """Status frames to this process's sockets only (an operator's command holds none)."""
        return MemoryPush(self.hub)


def build_runtime(settings: Settings, role: Role = Role.ALL) -> Runtime:
    return Runtime(settings, role).assemble()


def create_app(
    settings: Settings | None = None,
    *,
    role: Role = Role.ALL,
    runtime: Runtime | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The ASGI application of a process: the API given its services (``api/app.py``), started
    and stopped with the runtime. ``app.state.runtime`` is there for tests and tools only."""
    from chat4all.api.app import build_app

    settings = settings or Settings()
    runtime = runtime or build_runtime(settings, role)
    serve_api = Part.API in ROLE_PARTS[runtime.role]
    app = build_app(
        settings,
        services=runtime.services,
        start=runtime.start,
        stop=runtime.stop,
        serve_api=serve_api,
        mounts=runtime.mounts() if serve_api else {},
        freeze_heap=freeze_heap,
    )
    app.state.runtime = runtime
    return app


def abuse_rules(settings: Settings) -> AbuseRules:
    return AbuseRules(**{f: getattr(settings, f) for f in AbuseRules.__dataclass_fields__})


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


def webhook_sources(messages: MessageStore, outbox: WebhookOutbox) -> list[CallbackSource]:
    """The topics the webhook worker turns into callbacks: adding one is adding its source here."""
    return [StatusCallbacks(messages=messages, outbox=outbox), FileCallbacks(), ReceivedCallbacks(messages=messages)]


async def migrate_database(settings: Settings) -> None:
    """Brings the database schema up to date (``chat4all migrate``)."""
    database = Database(settings.resolved_database_url)
    try:
        await upgrade(database)
    finally:
        await database.close()


async def clean_up_uploads(settings: Settings, *, max_age_s: float | None = None) -> int:
    """One cleanup of abandoned uploads, outside a server (``chat4all files cleanup``)."""
    runtime = Runtime(settings)
    database, blobs = runtime.database, runtime.blobs
    try:
        if settings.should_migrate_on_start:
            await upgrade(database)
        await blobs.start()
        age = settings.file_upload_max_age_s if max_age_s is None else max_age_s
        return await UploadCleanup(files=runtime.file_store, blobs=blobs, max_age_s=age).run_once()
    finally:
        await blobs.close()
        await database.close()


@dataclass
class Operations:
    """What the operator commands (``chat4all connectors``, ``chat4all dlq``) work with."""

    configs: ConnectorConfigStore
    plugins: Plugins
    dead_letters: DeadLetterService


@asynccontextmanager
async def operations(settings: Settings) -> AsyncIterator[Operations]:
    """The stores and log of a deployment, outside a server."""
    runtime = Runtime(settings)
    ops = Operations(configs=runtime.connector_configs, plugins=Plugins(), dead_letters=runtime.dead_letters)
    started: list[Component] = []
    try:
        if settings.should_migrate_on_start:
            await upgrade(runtime.database)
        for component in runtime.components.values():
            await component.start()
            started.append(component)
        yield ops
    finally:
        for component in reversed(started):
            await component.close()


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
