"""The pending-deliveries index holds only deliveries still SENT.

With status as a column, a delivery stayed in the index after it was delivered, and the
planner took the index for key lookups (username, channel, then a filter on message_id over
every delivery the user ever had) where the primary key answers at once. As a partial index
it is as small as the backlog, an ack removes the row from it, and a lookup by key can only
use the primary key.

The index is rebuilt in the migration's transaction: writes to deliveries wait for it, which
on a large table means minutes; run it in a maintenance window.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SENT = sa.text("status = 'SENT'")
COLUMNS = ["username", "channel", "conversation_id", "sequence_number"]


def upgrade() -> None:
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.create_index(
        "ix_deliveries_pending", "deliveries", COLUMNS, postgresql_where=SENT, sqlite_where=SENT
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_pending", table_name="deliveries")
    op.create_index(
        "ix_deliveries_pending", "deliveries", ["username", "channel", "status", "conversation_id", "sequence_number"]
    )
