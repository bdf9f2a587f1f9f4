"""API v2 conversations: topics, roles, read cursors, former members, inbox order and sync,
system messages, edits (with their versions) and deletes (tombstones).

Existing groups get their creator as owner; existing conversations take their creation time
(or their newest message's) as last activity.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from chat4all.adapters.sql.schema import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("topic", sa.String(500), nullable=True))
        batch.add_column(sa.Column("last_activity_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("changed_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("conversation_members") as batch:
        batch.add_column(sa.Column("role", sa.String(16), nullable=False, server_default="member"))
        batch.add_column(sa.Column("read_up_to", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("left_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("changed_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="user"))
        batch.add_column(sa.Column("edited_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("deleted_at", UTCDateTime, nullable=True))
    op.create_table(
        "message_versions",
        sa.Column("message_id", sa.String(36)),
        sa.Column("version", sa.Integer),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "version", name="pk_message_versions"),
    )
    op.execute(
        "UPDATE conversation_members SET role = 'owner' WHERE EXISTS (SELECT 1 FROM conversations c"
        " WHERE c.conversation_id = conversation_members.conversation_id AND c.type = 'group'"
        " AND c.created_by = conversation_members.username)"
    )
    op.execute(
        # the newest message by sequence number: read through the (conversation_id, sequence_number) index
        "UPDATE conversations SET last_activity_at = COALESCE((SELECT m.created_at FROM messages m"
        " WHERE m.conversation_id = conversations.conversation_id ORDER BY m.sequence_number DESC LIMIT 1),"
        " created_at), changed_at = created_at"
    )


def downgrade() -> None:
    op.drop_table("message_versions")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("deleted_at")
        batch.drop_column("edited_at")
        batch.drop_column("kind")
    with op.batch_alter_table("conversation_members") as batch:
        batch.drop_column("changed_at")
        batch.drop_column("left_at")
        batch.drop_column("read_up_to")
        batch.drop_column("role")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("changed_at")
        batch.drop_column("last_activity_at")
        batch.drop_column("topic")
