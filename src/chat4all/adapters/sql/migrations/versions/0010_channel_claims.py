"""Pending claims of channel identities: a user is linked to (channel, external_id) only after
a code given to them arrives from that identity (hardening: nobody squats another's number).

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

from chat4all.adapters.sql.schema import UTCDateTime

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_claims",
        sa.Column("channel", sa.String(32)),
        sa.Column("external_id", sa.String(255)),
        sa.Column("username", sa.String(32)),
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("channel", "external_id", "username", name="pk_channel_claims"),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], name="fk_channel_claims_username_users", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("channel_claims")
