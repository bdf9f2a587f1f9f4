"""Files (R5): upload metadata and the conversations each file was shared with.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from chat4all.adapters.sql.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ID = sa.String(36)
NAME = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("file_id", ID, nullable=False),
        sa.Column("owner", NAME, nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("part_size", sa.BigInteger, nullable=False),
        sa.Column("part_count", sa.Integer, nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("upload_id", sa.String(1024), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("completed_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("file_id", name="pk_files"),
    )
    op.create_index("ix_files_status_created_at", "files", ["status", "created_at"])
    op.create_table(
        "file_shares",
        sa.Column("file_id", ID, nullable=False),
        sa.Column("conversation_id", ID, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("file_id", "conversation_id", name="pk_file_shares"),
    )


def downgrade() -> None:
    op.drop_table("file_shares")
    op.drop_index("ix_files_status_created_at", table_name="files")
    op.drop_table("files")
