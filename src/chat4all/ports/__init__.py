"""The outside things Chat4All talks to, as Protocols. Services depend on these only.

One module per concern; everything is re-exported here, so ``from chat4all.ports import X``
is the way in. Adapters live in ``chat4all.adapters`` and are chosen by URL in
``chat4all.runtime``. Each port has one contract test suite (``tests/contract``) run against
every adapter and against its in-memory fake (``tests/fakes``).
"""

from chat4all.domain.webhooks import Attempt, CallbackDelivery
from chat4all.ports.connectors import (
    ClaimedDelivery,
    ConnectorConfigStore,
    ConnectorLink,
    ConnectorLinks,
    DeliveryQueue,
)
from chat4all.ports.conversations_v2 import InboxEntry, MembershipStore, MessageVersion, TimelineStore
from chat4all.ports.delivery import DeliveryKey, Receipt
from chat4all.ports.delivery_store import DeliveryStore, Moved, StatusOutbox
from chat4all.ports.files import BlobStore, FileStore, StoredPart
from chat4all.ports.limits import RateLimiter
from chat4all.ports.log import LAG_CAP, EventLog, LogConsumer, LogRecord
from chat4all.ports.messaging import AcceptedIds, ConversationStore, MessageStore, NewMessage, PersistResult
from chat4all.ports.presence import FrameSink, PresenceStore, Push
from chat4all.ports.users import MetadataStore, RefreshOutcome, RefreshSpend
from chat4all.ports.webhooks import (
    Callback,
    CallbackTransport,
    ClaimedCallback,
    WebhookOutbox,
    WebhookRegistry,
)

__all__ = [
    "LAG_CAP",
    "AcceptedIds",
    "Attempt",
    "BlobStore",
    "Callback",
    "CallbackDelivery",
    "CallbackTransport",
    "ClaimedCallback",
    "ClaimedDelivery",
    "ConnectorConfigStore",
    "ConnectorLink",
    "ConnectorLinks",
    "ConversationStore",
    "DeliveryKey",
    "DeliveryQueue",
    "DeliveryStore",
    "EventLog",
    "FileStore",
    "FrameSink",
    "InboxEntry",
    "LogConsumer",
    "LogRecord",
    "MembershipStore",
    "MessageStore",
    "MessageVersion",
    "MetadataStore",
    "Moved",
    "NewMessage",
    "PersistResult",
    "PresenceStore",
    "Push",
    "RateLimiter",
    "Receipt",
    "RefreshOutcome",
    "RefreshSpend",
    "StatusOutbox",
    "StoredPart",
    "TimelineStore",
    "WebhookOutbox",
    "WebhookRegistry",
]
