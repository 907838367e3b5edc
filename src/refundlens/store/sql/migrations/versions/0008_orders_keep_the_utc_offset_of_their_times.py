"""orders keep the UTC offset their times were sent in; idempotency keys their request

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:40:00

Times are stored in UTC from this revision on (store.sql.models.UtcDateTime). Order times stored
on SQLite before it lost their offset without being converted and cannot be recovered: they
stay as stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("utc_offset_minutes", sa.Integer(), nullable=True))
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("request_sha256")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("utc_offset_minutes")
