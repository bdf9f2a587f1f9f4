"""The composition root's connector part (``runtime.py`` calls these): configuration store,
the hub of connectors, the dispatcher and the dead-letter service, built from Settings."""

from __future__ import annotations

import secrets

from chat4all.adapters.memory import LocalHub
from chat4all.adapters.sql.connector_configs import SqlConnectorConfigStore
from chat4all.adapters.sql.connector_queue import SqlDeliveryQueue
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.files import SqlFileStore
from chat4all.adapters.sql.messages import SqlMessageStore
from chat4all.adapters.sql.status_outbox import SqlStatusOutbox
from chat4all.config import Settings
from chat4all.connectors.hub import BreakerRules, ConnectorHub
from chat4all.connectors.registry import Plugins
from chat4all.connectors.resilience import RetryPolicy
from chat4all.connectors.simulated import simulated_defaults
from chat4all.domain.ids import utcnow
from chat4all.ports import BlobStore, ConnectorConfigStore, EventLog, MetadataStore
from chat4all.services.connector_dispatch import ConnectorDispatch, DispatchRules
from chat4all.services.dead_letters import DeadLetterService
from chat4all.services.deliveries import DeliveryService
from chat4all.workers.connector_dispatch import ConnectorDispatcher
from chat4all.workers.outbox_relay import OutboxRelay


def connector_configs(settings: Settings, database: Database, metadata: MetadataStore) -> ConnectorConfigStore:
    """Connector configuration lives next to the other metadata (etcd, or the database)."""
    if settings.metadata_url == "db":
        return SqlConnectorConfigStore(database)
    from chat4all.adapters.etcd import EtcdConnectorConfigStore, EtcdMetadataStore

    assert isinstance(metadata, EtcdMetadataStore)
    return EtcdConnectorConfigStore(metadata)


def connector_hub(settings: Settings, database: Database, metadata: MetadataStore) -> ConnectorHub:
    defaults = []
    if settings.simulated_connectors_by_default:
        # only written if the channel has no configuration yet (the first start)
        defaults = simulated_defaults(now=utcnow(), secret=secrets.token_urlsafe(24))
    return ConnectorHub(
        store=connector_configs(settings, database, metadata),
        plugins=Plugins(),
        public_base_url=settings.resolved_public_base_url,
        refresh_interval_s=settings.connectors_refresh_interval_s,
        breaker=BreakerRules(
            failure_threshold=settings.connectors_breaker_failures, open_s=settings.connectors_breaker_open_s
        ),
        defaults=defaults,
        reconnect_every_s=settings.connectors_refresh_interval_s,
    )


def connector_dispatcher(
    settings: Settings,
    database: Database,
    hub: ConnectorHub,
    metadata: MetadataStore,
    deliveries: DeliveryService,
    event_log: EventLog,
    blobs: BlobStore,
) -> ConnectorDispatcher:
    queue = SqlDeliveryQueue(database)
    dispatch = ConnectorDispatch(
        queue=queue,
        metadata=metadata,
        deliveries=deliveries,
        log=event_log,
        files=SqlFileStore(database),
        blobs=blobs,
        rules=DispatchRules(
            retry=RetryPolicy(
                max_attempts=settings.connectors_max_attempts,
                base_s=settings.connectors_retry_base_s,
                jitter=settings.connectors_retry_jitter,
            ),
            download_url_ttl_s=settings.file_download_url_ttl_s,
        ),
    )
    return ConnectorDispatcher(
        queue=queue,
        hub=hub,
        dispatch=dispatch,
        node_id=settings.node_id,
        poll_interval_s=settings.connectors_poll_interval_s,
        lease_s=settings.connectors_claim_ttl_s,
        # one SQLite file means one machine: whatever a dead process held is due again at once
        release_all_claims_on_start=settings.is_sqlite,
    )


def dead_letter_service(settings: Settings, database: Database, event_log: EventLog) -> DeadLetterService:
    messages = SqlMessageStore(database)
    kafka = settings.event_log_url != "db"
    return DeadLetterService(
        log=event_log,
        messages=messages,
        queue=SqlDeliveryQueue(database),
        # outside a server there are no sockets: status frames go nowhere, StatusEvents to the log
        deliveries=DeliveryService(
            messages=messages,
            push=LocalHub(),
            relay=OutboxRelay(SqlStatusOutbox(database), event_log),
            wait_for_relay=True,
        ),
        # a Kafka reader needs a moment to be assigned its partitions
        first_poll_s=10.0 if kafka else 0.5,
        next_poll_s=2.0 if kafka else 0.1,
    )
