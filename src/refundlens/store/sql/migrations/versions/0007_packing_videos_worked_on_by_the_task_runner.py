"""packing videos worked on by the task runner

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "packing_videos",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("video_sha256", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("submitted_by", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("frames_kept", sa.JSON(), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("packing_videos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_packing_videos_order_id"), ["order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_packing_videos_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("packing_videos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_packing_videos_status"))
        batch_op.drop_index(batch_op.f("ix_packing_videos_order_id"))
    op.drop_table("packing_videos")
