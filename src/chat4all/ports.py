"""The outside things Chat4All talks to, as Protocols. Services depend on these only.

Adapters live in ``chat4all.adapters`` and are chosen by URL in ``chat4all.runtime``. Each
port has one contract test suite (``tests/contract``) run against every adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chat4all.domain.connectors import ConnectorConfig
from chat4all.domain.files import FileRecord, FileStatus
from chat4all.domain.frames import Frame
from chat4all.domain.limits import Backoff, Decision, Limit
from chat4all.domain.models import Conversation, Delivery, Message, Presence, StatusChange, User
from chat4all.domain.status import DeliveryStatus
from chat4all.domain.webhooks import DeliveryState, Webhook


class MetadataStore(Protocol):
    """Users, their channel identities and their refresh-token families (etcd in production)."""

    async def create_user(self, user: User) -> None:
        """Raises UsernameTaken if the name exists."""

    async def get_user(self, username: str) -> User | None: ...

    async def existing_usernames(self, usernames: Sequence[str]) -> set[str]: ...

    async def set_channel(self, username: str, channel: str, external_id: str) -> None:
        """Raises Conflict if another user already holds (channel, external_id)."""

    async def delete_channel(self, username: str, channel: str) -> bool: ...

    async def get_channels(self, username: str) -> dict[str, str]: ...

    async def find_user_by_channel(self, channel: str, external_id: str) -> str | None: ...

    async def add_refresh_token(
        self, *, token_id: str, family_id: str, username: str, expires_at: datetime
    ) -> None: ...

    async def spend_refresh_token(self, token_id: str) -> "RefreshSpend":
        """Marks the token used, exactly once, at the current time; says what it found and
        when the token was spent (``used_at``: now for ``ok``, the first spend for ``reused``)."""

    async def revoke_refresh_family(self, family_id: str) -> None: ...

    async def refresh_family_revoked(self, family_id: str) -> bool:
        """Whether the family (a login session) was revoked; an unknown family is not."""

    async def revoke_user_refresh_families(self, username: str) -> None:
        """Revokes every family of the user (a password change)."""

    async def set_password_hash(self, username: str, password_hash: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RefreshSpend:
    """Outcome of spending a refresh token: ``ok`` once, then ``reused``; ``unknown``/``revoked``."""

    outcome: str  # "ok" | "reused" | "unknown" | "revoked"
    username: str | None = None
    family_id: str | None = None
    used_at: datetime | None = None


class ConversationStore(Protocol):
    async def create_conversation(self, conversation: Conversation, *, private_key: str | None) -> Conversation:
        """Creates it, or returns the existing private conversation with the same key."""

    async def get_conversation(self, conversation_id: str) -> Conversation | None: ...

    async def list_conversations(
        self, username: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> list[Conversation]:
        """Newest first; ``after`` is the (created_at, conversation_id) of the last one seen."""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """What the router persists for one accepted message."""

    message_id: str
    conversation_id: str
    sender: str
    recipients: Sequence[str]
    channels: Sequence[str]
    payload: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    # one delivery per (recipient, channel), channels already resolved ("all" expanded)
    targets: Sequence[tuple[str, str]]
    # the router's span for it (W3C), kept with the deliveries so later hops join the trace
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class PersistResult:
    new: list[Message]  # stored by this call, in sequence order per conversation
    known: list[Message]  # already stored before (a replay or a duplicate)


@dataclass(frozen=True, slots=True)
class Receipt:
    """(username, channel) says these messages reached ``status`` (an ack, a read, a provider's
    callback, a failure with its ``detail``)."""

    username: str
    channel: str
    message_ids: Sequence[str]
    status: DeliveryStatus
    detail: str | None = None
    traceparent: str | None = None  # the span that saw it happen; its StatusEvents carry it


class MessageStore(Protocol):
    async def persist_batch(self, messages: Sequence[NewMessage], *, at: datetime) -> PersistResult:
        """In one transaction: skip known message_ids, assign dense sequence numbers per
        conversation, insert messages, one SENT delivery per target and its history, and
        remember the conversation each file message shared its file with (R5.5)."""

    async def get_message(self, message_id: str) -> Message | None: ...

    async def get_messages(self, message_ids: Sequence[str]) -> dict[str, Message]:
        """Those of these messages that are stored, by id (one round trip)."""

    async def list_messages(
        self, conversation_id: str, *, viewer: str, since: int, limit: int
    ) -> list[Message]:
        """Messages the viewer sent or receives, sequence_number > since, ascending."""

    async def deliveries(self, message_id: str) -> list[Delivery]: ...

    async def history(self, message_id: str) -> list[StatusChange]: ...

    async def pending_for(
        self, username: str, *, channel: str, after: tuple[str, int] | None, limit: int
    ) -> list[Message]:
        """Messages whose delivery to (username, channel) is still SENT, ordered by
        (conversation_id, sequence_number); ``after`` continues from the last one returned."""

    async def advance(
        self,
        *,
        username: str,
        channel: str,
        message_ids: Sequence[str],
        status: DeliveryStatus,
        at: datetime,
        detail: str | None = None,
    ) -> list[tuple[Message, list[StatusChange]]]:
        """Moves the deliveries forward (never back) in one transaction and records history.
        Returns, per message that moved, the status changes recorded."""

    async def advance_many(
        self, receipts: Sequence[Receipt], *, at: datetime
    ) -> list[tuple[Message, list[StatusChange]]]:
        """``advance`` for many receipts in one transaction, applied in the order given (so a
        READ that arrives after a DELIVERED for the same delivery records both)."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes


class EventLog(Protocol):
    """A partitioned, durable, replayable log (Kafka in production, a table in embedded)."""

    async def append(self, topic: str, key: str, value: bytes) -> None:
        """Returns once the record is durable; raises Unavailable otherwise."""

    async def append_many(self, topic: str, records: Sequence[tuple[str, bytes]]) -> None: ...

    def consumer(self, topic: str, group: str) -> "LogConsumer": ...


# counting a SQL log's backlog reads it; past this many records the exact figure matters less
LAG_CAP = 100_000


class LogConsumer(Protocol):
    topic: str

    async def start(self) -> None: ...

    async def poll(self, *, max_records: int, timeout_s: float) -> list[LogRecord]:
        """The next records after the committed offsets (or after the last poll)."""

    async def commit(self, records: Sequence[LogRecord]) -> None:
        """Marks everything up to these records as processed, per partition."""

    async def seek(self, partition: int, offset: int) -> None:
        """Replays from ``offset`` (inclusive) on the next poll."""

    async def lag(self) -> int | None:
        """Records on this consumer's partitions not yet handed out by ``poll`` (capped at
        LAG_CAP), or None while it cannot tell (no partitions yet, nothing fetched yet)."""

    async def stop(self) -> None: ...


class PresenceStore(Protocol):
    async def connected(self, username: str, connection_id: str, *, node: str, at: datetime) -> bool:
        """Records a socket; True if the user was offline before."""

    async def heartbeat(self, username: str, connection_id: str, *, node: str, at: datetime) -> None:
        """Refreshes a socket's entry, writing it again if it was lost (e.g. a store restart)."""

    async def disconnected(self, username: str, connection_id: str, *, at: datetime) -> bool:
        """Forgets a socket; True if it was the user's last one."""

    async def get(self, username: str, *, now: datetime) -> Presence: ...

    async def nodes_for(self, usernames: Sequence[str], *, now: datetime) -> dict[str, set[str]]:
        """For each online user, the nodes holding their sockets."""


class Push(Protocol):
    """Hands ready-encoded frames to whichever node holds the recipients' sockets."""

    async def send(self, frames: Sequence[tuple[str, Frame]]) -> None:
        """Each item is (username, frame); users with no socket anywhere are skipped."""


# files (R5) ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part the blob store holds for an unfinished multipart upload."""

    part_number: int
    size: int
    etag: str = ""


class BlobStore(Protocol):
    """Object storage for file bytes (S3 in production, the local disk in embedded).

    Clients move the bytes themselves through the URLs this hands out (plain HTTP, no token);
    the API process never holds a part or a file in memory.
    """

    # the smallest size a part other than the last may have (S3: 5 MiB)
    min_part_size: int

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def create_upload(self, key: str) -> str:
        """Starts a multipart upload of ``key``; returns its upload id."""

    async def part_url(self, key: str, upload_id: str, part_number: int, *, size: int, expires_at: datetime) -> str:
        """An absolute URL through which one PUT of exactly ``size`` bytes stores the part."""

    async def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """The parts stored so far, by part number; NotFound if the upload is no more."""

    async def complete_upload(self, key: str, upload_id: str, parts: Sequence[StoredPart]) -> None:
        """Joins the parts into the object ``key``; NotFound if the upload is no more."""

    async def abort_upload(self, key: str, upload_id: str) -> None:
        """Drops an unfinished upload and its parts; nothing happens if it is gone already."""

    async def digest(self, key: str) -> tuple[str, int]:
        """(SHA-256 hex, size) of the stored object, streamed; NotFound if there is none."""

    async def download_url(self, key: str, *, filename: str, content_type: str, expires_at: datetime) -> str:
        """An absolute URL that serves the object (with Range support) until ``expires_at``."""

    async def delete(self, key: str) -> None:
        """Removes the object; nothing happens if it is gone already."""


class FileStore(Protocol):
    """File metadata (R5.4) and which conversations each file was sent to."""

    async def create_file(self, record: FileRecord) -> None: ...

    async def get_file(self, file_id: str) -> FileRecord | None: ...

    async def finish_file(
        self, file_id: str, *, status: FileStatus, at: datetime, sha256: str | None = None, error: str | None = None
    ) -> bool:
        """Moves an uploading file to completed or failed; False if it was not uploading."""

    async def stale_uploads(self, *, created_before: datetime, limit: int) -> list[FileRecord]:
        """Files still uploading that were initiated before ``created_before``, oldest first."""

    async def can_download(self, file_id: str, username: str) -> bool:
        """True if the file was sent in a conversation ``username`` is a member of."""


# webhooks ----------------------------------------------------------------------------------------


class WebhookRegistry(Protocol):
    """Webhook registrations: metadata, so etcd in production (the database in embedded).

    Every call names the owner: someone else's webhook is simply not found.
    """

    async def create(self, webhook: Webhook) -> None: ...

    async def owned_by(self, owner: str) -> list[Webhook]:
        """Oldest first."""

    async def for_owners(self, owners: Sequence[str]) -> dict[str, list[Webhook]]:
        """The webhooks of each owner that has any (one round trip for a batch of events)."""

    async def get(self, owner: str, webhook_id: str) -> Webhook | None: ...

    async def delete(self, owner: str, webhook_id: str) -> bool: ...

    async def disable(self, owner: str, webhook_id: str, *, reason: str, at: datetime) -> bool:
        """Marks it disabled (no-op if it is gone or already disabled); True if this call did."""


@dataclass(frozen=True, slots=True)
class Callback:
    """One event for one webhook, ready to be put in the outbox."""

    webhook_id: str
    owner: str
    event_id: str
    type: str
    subject_id: str  # callbacks of one subject (a message, a file) go out in the order enqueued
    body: bytes  # the exact bytes POSTed (domain.webhooks.callback_body)
    traceparent: str | None = None  # the trace of the event it reports (the POST is its child)


@dataclass(frozen=True, slots=True)
class ClaimedCallback:
    """An outbox row a worker holds until it records the attempt (or its claim lapses)."""

    id: int
    webhook_id: str
    owner: str
    event_id: str
    type: str
    subject_id: str
    body: bytes
    attempts: int  # attempts made before this one
    traceparent: str | None = None  # the trace of the event it reports (the POST is its child)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One POST of a callback: what the endpoint answered, or why there was no answer."""

    attempt: int  # 1 = the first try
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class CallbackDelivery:
    """A callback and every attempt made so far (GET /v1/webhooks/{id}/deliveries)."""

    id: int
    event_id: str
    type: str
    body: bytes
    state: DeliveryState
    created_at: datetime
    next_attempt_at: datetime | None  # when the next attempt is due, while pending
    finished_at: datetime | None
    last_error: str | None
    attempts: list[Attempt]


class WebhookOutbox(Protocol):
    """Callbacks to deliver, their attempts, and each webhook's streak of failed callbacks.

    Always in the SQL database: enqueueing is idempotent on (webhook_id, event_id) and the
    delivery state lives in the rows, so a restarted worker resumes where the last one stopped.
    """

    async def enqueue(self, callbacks: Sequence[Callback], *, now: datetime) -> int:
        """Stores the callbacks not stored yet, in the given order, due now; returns how many were new."""

    async def known(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (webhook_id, event_id) pairs are already in the outbox."""

    async def claim(self, *, now: datetime, limit: int, claimer: str, lease_s: float) -> list[ClaimedCallback]:
        """Due pending callbacks, at most one per (webhook, subject) — the oldest pending one, so a
        later event never overtakes an earlier one — held by ``claimer`` for ``lease_s``."""

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        """Makes the callbacks held by ``claimer`` (None: by anyone) due now (at start-up)."""

    async def record(
        self, callback: ClaimedCallback, attempt: Attempt, *, retry_at: datetime | None, now: datetime
    ) -> int:
        """Stores the attempt. Success: delivered, and the webhook's failure streak resets.
        Failure: due again at ``retry_at``, or failed for good if None (the streak grows).
        Returns the webhook's streak of consecutive failed callbacks."""

    async def cancel(self, webhook_id: str, *, reason: str, now: datetime) -> int:
        """Cancels the webhook's pending callbacks (it was disabled)."""

    async def forget(self, webhook_id: str) -> None:
        """Deletes everything about the webhook (it was deleted)."""

    async def deliveries(self, webhook_id: str, *, limit: int, before: int | None) -> list[CallbackDelivery]:
        """Newest first; ``before`` is the id of the last one seen."""

    async def prune(self, *, finished_before: datetime) -> int:
        """Deletes delivered, failed and cancelled callbacks finished before then."""


class CallbackTransport(Protocol):
    """The outbound HTTP of webhooks, with the SSRF rules (``domain.egress``) built in."""

    async def start(self) -> None:
        """Opens the HTTP client (the webhook worker does, before its first ``post``)."""

    async def close(self) -> None: ...

    async def check(self, url: str) -> None:
        """Raises InvalidInput for a malformed URL, UrlNotAllowed if it resolves to an address
        the policy refuses (or does not resolve)."""

    async def post(
        self, url: str, *, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int | None, str | None]:
        """One attempt, checked again and sent to the address that was checked, never following
        redirects, never raising: (status code, None) if the endpoint answered, else (None, why)."""


# connectors (R9, R14) ------------------------------------------------------------------------


class ConnectorConfigStore(Protocol):
    """Connector configuration: metadata, so etcd in production (the database in embedded).
    Routers re-read it periodically and rebuild what changed (R9.3)."""

    async def list_configs(self) -> list[ConnectorConfig]:
        """Every channel's configuration, by channel name."""

    async def get_config(self, channel: str) -> ConnectorConfig | None: ...

    async def put_config(self, config: ConnectorConfig) -> None:
        """Creates or replaces the channel's configuration."""

    async def add_config(self, config: ConnectorConfig) -> bool:
        """Creates it only if the channel has none yet; True if this call did."""

    async def delete_config(self, channel: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    message_id: str
    username: str
    channel: str


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    """An external delivery a dispatcher holds until it records the attempt (or its lease lapses)."""

    key: DeliveryKey
    message: Message
    attempts: int  # attempts made before this one
    traceparent: str | None = None  # the router's span for the message (the send is its child)


@dataclass(frozen=True, slots=True)
class ConnectorLink:
    """A provider's message id for a bridged message: replies to it come back to its conversation."""

    channel: str
    external_id: str
    provider_message_id: str
    message_id: str
    conversation_id: str
    username: str
    created_at: datetime


class DeliveryQueue(Protocol):
    """The external deliveries waiting for a connector; the state lives in the delivery rows
    (``attempts``, ``next_attempt_at``), so a restarted dispatcher resumes pending retries."""

    async def due_channels(self, *, now: datetime) -> set[str]:
        """Channels with at least one delivery due."""

    async def claim(
        self,
        *,
        now: datetime,
        limit: int,
        claimer: str,
        lease_s: float,
        channels: Sequence[str] | None = None,
        exclude: Sequence[str] = (),
    ) -> list[ClaimedDelivery]:
        """Due SENT deliveries of these channels (or of every channel but ``exclude``), at most
        one per (recipient, channel, conversation) — the lowest pending sequence number, so a
        later message never overtakes an earlier one — held by ``claimer`` for ``lease_s``."""

    async def release(self, *, claimer: str | None, now: datetime) -> int:
        """Makes the deliveries held by ``claimer`` (None: by anyone) due now (at start-up)."""

    async def sent(self, key: DeliveryKey, *, attempts: int, links: Sequence[ConnectorLink] = ()) -> None:
        """The provider took it: no longer pending; remembers the provider's ids."""

    async def retry(self, key: DeliveryKey, *, attempts: int, at: datetime, error: str) -> None:
        """Failed transiently: due again at ``at``, with the reason."""

    async def finish(self, key: DeliveryKey, *, attempts: int) -> None:
        """Gave up (the status moves to FAILED through the delivery service): no longer pending."""

    async def requeue(
        self, keys: Sequence[DeliveryKey], *, now: datetime, detail: str
    ) -> list[tuple[Message, list[StatusChange]]]:
        """An operator's replay: FAILED deliveries back to SENT, due now, attempts reset, with a
        history entry. Deliveries that are not FAILED are left alone."""


class ConnectorLinks(Protocol):
    async def find(self, channel: str, external_id: str, provider_message_id: str) -> ConnectorLink | None: ...

    async def latest(self, channel: str, external_id: str) -> ConnectorLink | None:
        """The most recent message bridged to this identity."""


class RateLimiter(Protocol):
    """Counts requests against limits (domain/limits.py): in memory in one process, in Redis
    when several share the counts. Keys are opaque; callers choose them ("send:alice")."""

    async def hit(self, *rules: Limit) -> Decision:
        """Charges every rule, or none if one refuses; the verdict over all of them."""

    async def fail(self, backoff: Backoff) -> float:
        """Records one more failure in a row; the seconds the key is now locked (0: still free)."""

    async def locked_for(self, key: str) -> float:
        """Seconds left of the key's lock after failures (0 when not locked)."""

    async def clear(self, key: str) -> None:
        """Forgets the key's failures (a success)."""


class AcceptedIds(Protocol):
    """Client-chosen message_ids taken at accept time, remembered for a TTL: a retry that arrives
    before the router stored the first is still recognised as a duplicate."""

    async def claim(self, message_id: str, *, sender: str, conversation_id: str) -> tuple[str, str] | None:
        """Takes the id; None if it was free, else (sender, conversation_id) of whoever took it."""

    async def release(self, message_id: str) -> None:
        """Gives the id back (its accept failed before reaching the log)."""
