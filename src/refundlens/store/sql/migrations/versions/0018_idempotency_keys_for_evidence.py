"""idempotency keys for evidence

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 01:00:00

Evidence is added with an Idempotency-Key as claims are filed: a packing video sent again after
a dropped connection was stored twice and counted twice against the party's evidence limit. The
key's row now names the evidence the request added.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("evidence_id", sa.String(length=40), nullable=True))


def downgrade() -> None:
    # Keys for evidence would read as keys for the claim filed: they go with the column.
    op.execute("DELETE FROM idempotency_keys WHERE evidence_id IS NOT NULL")
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.drop_column("evidence_id")
