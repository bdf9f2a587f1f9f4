"""The services an API node serves, as the composition root hands them to the API.

Routes and the WebSocket get exactly these (``api/deps.py``); they never see adapters or the
runtime that built them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chat4all.services.auth import AuthService
from chat4all.services.connections import ConnectionService
from chat4all.services.conversations import ConversationService
from chat4all.services.deliveries import DeliveryService
from chat4all.services.files import FileService
from chat4all.services.groups import GroupService
from chat4all.services.inbound import InboundService
from chat4all.services.inbox import InboxService
from chat4all.services.live import LiveService
from chat4all.services.messages import MessageService
from chat4all.services.notices import Notices
from chat4all.services.timeline import TimelineService
from chat4all.services.users import UserService
from chat4all.services.webhooks import WebhookService

Readiness = Callable[[], Awaitable[dict[str, str]]]
"""'ok' or the reason, per dependency of the process (``/health/ready``)."""


@dataclass
class V2Services:
    """API v2's conversations (docs/api-v2.md), on the same stores and services as v1."""

    groups: GroupService
    inbox: InboxService
    timeline: TimelineService
    notices: Notices  # the push calls of conversation changes, for the socket's frames too


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
    inbound: InboundService  # calls from channel providers (connectors)
    readiness: Readiness
    v2: V2Services | None = None
    live: LiveService | None = None  # v2's typing and presence push (services/live.py)
