"""The relational schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it.

Portable SQL only: it runs on SQLite (embedded) and PostgreSQL (production).
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


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
    sa.UniqueConstraint("conversation_id", "sequence_number"),
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
    sa.Index(
        "ix_deliveries_pending",
        "username",
        "channel",
        "status",
        "conversation_id",
        "sequence_number",
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
