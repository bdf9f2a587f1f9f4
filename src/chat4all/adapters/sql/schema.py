"""The relational schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Portable SQL only: it runs on SQLite (embedded) and PostgreSQL (production).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else _utc(value)

    def bind_processor(self, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":  # as naive UTC text, without the impl's own processing
            return _sqlite_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_text(value: datetime | None) -> str | None:
    """The text SQLAlchemy's SQLite DATETIME writes ("2026-11-30 17:05:09.000000", UTC), made by
    ``isoformat`` in C: 1.8 µs a value where converting to naive UTC and its field-by-field
    formatting took 5.7 µs, and every message writes several."""
    return None if value is None else _utc(value).isoformat(" ", "microseconds")[:26]  # without "+00:00"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ID = sa.String(36)
NAME = sa.String(32)

users = sa.Table(
    "users",
    metadata,
    sa.Column("username", NAME, primary_key=True),
    sa.Column("password_hash", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

channel_mappings = sa.Table(
    "channel_mappings",
    metadata,
    sa.Column("username", NAME, sa.ForeignKey("users.username", ondelete="CASCADE"), primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(255), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("channel", "external_id"),
)

# pending claims of channel identities, proven by a code sent from the identity (migration 0010)
channel_claims = sa.Table(
    "channel_claims",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("username", NAME, sa.ForeignKey("users.username", ondelete="CASCADE"), primary_key=True),
    sa.Column("code", sa.String(16), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_id", ID, primary_key=True),
    sa.Column("family_id", ID, nullable=False, index=True),
    sa.Column("username", NAME, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
    sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
)

conversations = sa.Table(
    "conversations",
    metadata,
    sa.Column("conversation_id", ID, primary_key=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_by", NAME, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    # "alice|bob" for private conversations: one per pair
    sa.Column("private_key", sa.String(80), nullable=True, unique=True),
    # the last sequence number handed out in this conversation (R12.2)
    sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
    # API v2 (migration 0008): the topic, when the last message was stored (the inbox's order) and
    # when anything a member sees of it last changed (the inbox's ``since`` sync)
    sa.Column("topic", sa.String(500), nullable=True),
    sa.Column("last_activity_at", UTCDateTime, nullable=True),
    sa.Column("changed_at", UTCDateTime, nullable=True),
)

conversation_members = sa.Table(
    "conversation_members",
    metadata,
    sa.Column(
        "conversation_id",
        ID,
        sa.ForeignKey("conversations.conversation_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("username", NAME, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # API v2 (migration 0008): owner | admin | member; the read cursor; when the member left or
    # was removed (the row stays: what they could see stays theirs); when their view last changed
    sa.Column("role", sa.String(16), nullable=False, server_default="member"),
    sa.Column("read_up_to", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("left_at", UTCDateTime, nullable=True),
    sa.Column("changed_at", UTCDateTime, nullable=True),
    sa.Index("ix_conversation_members_username_created", "username", "created_at", "conversation_id"),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("conversation_id", ID, nullable=False),
    sa.Column("sequence_number", sa.BigInteger, nullable=False),
    sa.Column("sender", NAME, nullable=False),
    sa.Column("recipients", sa.JSON, nullable=False),
    sa.Column("channels", sa.JSON, nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("persisted_at", UTCDateTime, nullable=False),
    # API v2 (migration 0008): user | system; set by an edit; a tombstone's deletion time
    sa.Column("kind", sa.String(8), nullable=False, server_default="user"),
    sa.Column("edited_at", UTCDateTime, nullable=True),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("conversation_id", "sequence_number"),
)

# Every version of an edited message (API v2): version 1 is the original; a delete removes them
message_versions = sa.Table(
    "message_versions",
    metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("message_id", ID, primary_key=True),
    sa.Column("username", NAME, primary_key=True),
    sa.Column("channel", sa.String(32), primary_key=True),
    # copied from the message so that pending deliveries come out in order without a join
    sa.Column("conversation_id", ID, nullable=False),
    sa.Column("sequence_number", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # retry state for external channels (the connectors issue fills these)
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    # the connector dispatcher holding it (its lease ends at next_attempt_at)
    sa.Column("claimed_by", sa.String(100), nullable=True),
    # the router's span for the message (W3C traceparent): the connector send joins its trace
    sa.Column("traceparent", sa.String(55), nullable=True),
    # only pending external deliveries have next_attempt_at: a small index, untouched by internal ones
    sa.Index(
        "ix_deliveries_dispatch",
        "channel",
        "next_attempt_at",
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
    ),
    # only what is still SENT: as small as the backlog, and never a candidate for key lookups
    sa.Index(
        "ix_deliveries_pending",
        "username",
        "channel",
        "conversation_id",
        "sequence_number",
        postgresql_where=sa.text("status = 'SENT'"),
        sqlite_where=sa.text("status = 'SENT'"),
    ),
)

status_history = sa.Table(
    "status_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("message_id", ID, nullable=False, index=True),
    sa.Column("username", NAME, nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
)

# The durable event log of the embedded profile (adapters/sqllog.py).
event_log = sa.Table(
    "event_log",
    metadata,
    sa.Column("offset", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("topic", sa.String(100), nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("appended_at", UTCDateTime, nullable=False),
    sa.Index("ix_event_log_topic_partition_offset", "topic", "partition", "offset"),
)

consumer_offsets = sa.Table(
    "consumer_offsets",
    metadata,
    sa.Column("group_id", sa.String(100), primary_key=True),
    sa.Column("topic", sa.String(100), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True),
    # the next offset to read
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)

# Uploaded files (R5.4): the metadata; the bytes live in the BlobStore under storage_key.
files = sa.Table(
    "files",
    metadata,
    sa.Column("file_id", ID, primary_key=True),
    sa.Column("owner", NAME, nullable=False),
    sa.Column("filename", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("content_type", sa.String(255), nullable=False),
    sa.Column("part_size", sa.BigInteger, nullable=False),
    sa.Column("part_count", sa.Integer, nullable=False),
    sa.Column("storage_key", sa.String(255), nullable=False),
    # the blob store's handle on the multipart upload (S3 UploadId); cleared once completed
    sa.Column("upload_id", sa.String(1024), nullable=True),
    # declared at initiate (optional), then the verified digest once completed
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    sa.Index("ix_files_status_created_at", "status", "created_at"),
)

# Conversations a file was sent to in a message: their members may download it (R5.5).
file_shares = sa.Table(
    "file_shares",
    metadata,
    sa.Column("file_id", ID, primary_key=True),
    sa.Column("conversation_id", ID, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Webhooks (R6.5, R8.5). Registrations live here when the metadata store is the database
# (etcd holds them in production); the outbox, its attempts and each endpoint's failure streak
# are always here: the durable, transactional part of webhook delivery.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("webhook_id", ID, primary_key=True),
    sa.Column("owner", NAME, nullable=False, index=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column("secret", sa.String(100), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disabled_at", UTCDateTime, nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
)

# One callback to POST: the body is stored (and signed at each attempt) so every attempt sends
# the same bytes; the delivery state lives in the row, so a restarted worker resumes it.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("webhook_id", ID, nullable=False),
    sa.Column("owner", NAME, nullable=False),
    sa.Column("event_id", ID, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    # callbacks of one subject (a message, a file) go out one at a time, in id order
    sa.Column("subject_id", sa.String(64), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # when it is due; while a worker holds it, when its claim lapses
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("claimed_by", sa.String(100), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    # the trace of the status change it reports (W3C traceparent): the callback joins it
    sa.Column("traceparent", sa.String(55), nullable=True),
    sa.UniqueConstraint("webhook_id", "event_id"),
    sa.Index("ix_webhook_outbox_due", "state", "next_attempt_at"),
    sa.Index("ix_webhook_outbox_subject", "webhook_id", "subject_id", "state", "id"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("outbox_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("webhook_id", ID, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)

# Consecutive callbacks that failed for good, per webhook (reset by a success).
webhook_health = sa.Table(
    "webhook_health",
    metadata,
    sa.Column("webhook_id", ID, primary_key=True),
    sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Connectors (R9.3): each channel's configuration, when the metadata store is the database
# (etcd holds it in production).
connector_configs = sa.Table(
    "connector_configs",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Provider message ids of bridged messages, so that a reply on the channel finds the
# conversation it answers (R14.3).
connector_links = sa.Table(
    "connector_links",
    metadata,
    sa.Column("channel", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(255), primary_key=True),
    sa.Column("provider_message_id", sa.String(255), primary_key=True),
    sa.Column("message_id", ID, nullable=False),
    sa.Column("conversation_id", ID, nullable=False),
    sa.Column("username", NAME, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_connector_links_latest", "channel", "external_id", "created_at"),
)

# StatusEvents written in the transaction that changes a delivery's status (the transactional
# outbox); the relay (adapters/sql/status_outbox.py) appends them to the log in id order and
# deletes them
status_outbox = sa.Table(
    "status_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(255), nullable=False),
    sa.Column("value", sa.LargeBinary, nullable=False),
)

# client-chosen message_ids taken at accept time (before the router stores the message), so an
# immediate retry is answered as the duplicate it is; rows older than the TTL are deleted
accepted_ids = sa.Table(
    "accepted_ids",
    metadata,
    sa.Column("message_id", sa.String(36), primary_key=True),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("conversation_id", sa.String(36), nullable=False),
    sa.Column("accepted_at", UTCDateTime, nullable=False),
    sa.Index("ix_accepted_ids_accepted_at", "accepted_at"),
)
