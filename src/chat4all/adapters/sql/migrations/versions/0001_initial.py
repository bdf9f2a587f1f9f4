"""Users, channel mappings, refresh tokens, conversations, messages, deliveries, history, event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from chat4all.adapters.sql.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.String(36)
NAME = sa.String(32)
BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", NAME, primary_key=True),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_users"),
    )
    op.create_table(
        "channel_mappings",
        sa.Column("username", NAME, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("username", "channel", name="pk_channel_mappings"),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], ondelete="CASCADE", name="fk_channel_mappings_username_users"
        ),
        sa.UniqueConstraint("channel", "external_id", name="uq_channel_mappings_channel_external_id"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_id", ID, nullable=False),
        sa.Column("family_id", ID, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("used_at", UTCDateTime, nullable=True),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("token_id", name="pk_refresh_tokens"),
    )
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_table(
        "conversations",
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_by", NAME, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("private_key", sa.String(80), nullable=True),
        sa.Column("last_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_conversations"),
        sa.UniqueConstraint("private_key", name="uq_conversations_private_key"),
    )
    op.create_table(
        "conversation_members",
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "username", name="pk_conversation_members"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.conversation_id"],
            ondelete="CASCADE",
            name="fk_conversation_members_conversation_id_conversations",
        ),
    )
    op.create_index(
        "ix_conversation_members_username_created",
        "conversation_members",
        ["username", "created_at", "conversation_id"],
    )
    op.create_table(
        "messages",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("sequence_number", sa.BigInteger, nullable=False),
        sa.Column("sender", NAME, nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("persisted_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_messages"),
        sa.UniqueConstraint(
            "conversation_id", "sequence_number", name="uq_messages_conversation_id_sequence_number"
        ),
    )
    op.create_table(
        "deliveries",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("sequence_number", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("message_id", "username", "channel", name="pk_deliveries"),
    )
    op.create_index(
        "ix_deliveries_pending",
        "deliveries",
        ["username", "channel", "status", "conversation_id", "sequence_number"],
    )
    op.create_table(
        "status_history",
        sa.Column("id", BIGID, autoincrement=True, nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("detail", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_status_history"),
    )
    op.create_index("ix_status_history_message_id", "status_history", ["message_id"])
    op.create_table(
        "event_log",
        sa.Column("offset", BIGID, autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("appended_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("offset", name="pk_event_log"),
    )
    op.create_index("ix_event_log_topic_partition_offset", "event_log", ["topic", "partition", "offset"])
    op.create_table(
        "consumer_offsets",
        sa.Column("group_id", sa.String(100), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "topic", "partition", name="pk_consumer_offsets"),
    )


def downgrade() -> None:
    for table in (
        "consumer_offsets",
        "event_log",
        "status_history",
        "deliveries",
        "messages",
        "conversation_members",
        "conversations",
        "refresh_tokens",
        "channel_mappings",
        "users",
    ):
        op.drop_table(table)
