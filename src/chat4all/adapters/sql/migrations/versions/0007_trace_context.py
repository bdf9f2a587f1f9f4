"""Deliveries and webhook callbacks keep the W3C trace context of the message they carry.

The router stores the traceparent of its span with each delivery row, and the webhook intake
with each outbox row, so the connector send and the webhook callback — made later, by another
loop or process — join the trace of the request that accepted the message (R13.2). Nullable:
rows stored before, or with tracing off, simply start no child span.

Revision ID: 0007
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex
TRACEPARENT = sa.String(55)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("traceparent", TRACEPARENT, nullable=True))
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.add_column(sa.Column("traceparent", TRACEPARENT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhook_outbox") as batch:
        batch.drop_column("traceparent")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("traceparent")
