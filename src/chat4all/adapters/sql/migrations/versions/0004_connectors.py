"""Connectors: configuration, provider message links, and the dispatcher's claim on deliveries.

External deliveries that were waiting before this revision (status SENT, never attempted)
become due, so the connectors deliver them once enabled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from chat4all.adapters.sql.schema import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.String(36)
NAME = sa.String(32)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(100), nullable=True))
    # partial: only pending external deliveries have next_attempt_at
    pending = sa.text("next_attempt_at IS NOT NULL")
    op.create_index(
        "ix_deliveries_dispatch",
        "deliveries",
        ["channel", "next_attempt_at"],
        postgresql_where=pending,
        sqlite_where=pending,
    )
    op.execute(
        "UPDATE deliveries SET next_attempt_at = updated_at "
        "WHERE status = 'SENT' AND channel <> 'internal' AND next_attempt_at IS NULL"
    )
    op.create_table(
        "connector_configs",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("channel", name="pk_connector_configs"),
    )
    op.create_table(
        "connector_links",
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(255), nullable=False),
        sa.Column("provider_message_id", sa.String(255), nullable=False),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("channel", "external_id", "provider_message_id", name="pk_connector_links"),
    )
    op.create_index("ix_connector_links_latest", "connector_links", ["channel", "external_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_connector_links_latest", table_name="connector_links")
    op.drop_table("connector_links")
    op.drop_table("connector_configs")
    op.drop_index("ix_deliveries_dispatch", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_by")
