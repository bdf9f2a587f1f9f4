"""The services of API v2's conversations, built on the runtime's stores and services (the
composition root calls ``build_v2``; nothing here builds an adapter the runtime does not)."""

from __future__ import annotations

from dataclasses import dataclass

from chat4all.adapters.sql.conversations import SqlConversationStore
from chat4all.adapters.sql.database import Database
from chat4all.adapters.sql.membership import SqlMembershipStore
from chat4all.adapters.sql.timeline import SqlTimelineStore
from chat4all.config import Settings
from chat4all.ports import EventLog, MetadataStore, Push
from chat4all.services.conversations import ConversationService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.groups import GroupService
from chat4all.services.inbox import InboxService
from chat4all.services.messages import MessageService
from chat4all.services.notices import Notices
from chat4all.services.system_messages import SystemMessages
from chat4all.services.timeline import TimelineService
from chat4all.services.webhooks import WebhookService


@dataclass
class V2Services:
    groups: GroupService
    inbox: InboxService
    timeline: TimelineService
    notices: Notices  # the push calls of conversation changes, for the socket's frames too


def build_v2(
    settings: Settings,
    *,
    database: Database,
    conversation_store: SqlConversationStore,
    metadata: MetadataStore,
    event_log: EventLog,
    push: Push,
    conversations: ConversationService,
    messages: MessageService,
    deliveries: DeliveryService,
    webhooks: WebhookService,
) -> V2Services:
    membership = SqlMembershipStore(database, conversation_store)
    timeline_store = SqlTimelineStore(database)
    notices = Notices(push=push, registry=webhooks.registry, outbox=webhooks.outbox)
    inbox = InboxService(membership=membership, timeline=timeline_store, deliveries=deliveries, notices=notices)
    groups = GroupService(
        conversations=conversations,
        membership=membership,
        metadata=metadata,
        inbox=inbox,
        system=SystemMessages(event_log),
        notices=notices,
    )
    timeline = TimelineService(
        conversations=conversations,
        messages=messages,
        timeline=timeline_store,
        notices=notices,
        max_text_chars=settings.max_text_chars,
        max_metadata_bytes=settings.max_metadata_bytes,
    )
    return V2Services(groups=groups, inbox=inbox, timeline=timeline, notices=notices)
