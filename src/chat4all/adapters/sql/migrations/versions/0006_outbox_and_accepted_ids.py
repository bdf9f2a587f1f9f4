"""The status outbox (StatusEvents committed with the status change, relayed to the log) and
the accept-time record of client-chosen message_ids.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from chat4all.adapters.sql.schema import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_outbox"),
    )
    op.create_table(
        "accepted_ids",
        sa.Column("message_id", sa.String(36)),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("conversation_id", sa.String(36), nullable=False),
        sa.Column("accepted_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name="pk_accepted_ids"),
    )
    op.create_index("ix_accepted_ids_accepted_at", "accepted_ids", ["accepted_at"])


def downgrade() -> None:
    op.drop_index("ix_accepted_ids_accepted_at", table_name="accepted_ids")
    op.drop_table("accepted_ids")
    op.drop_table("status_outbox")
