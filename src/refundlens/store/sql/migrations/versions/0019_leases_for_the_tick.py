"""leases: one tick at a time queues claims

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 01:30:00

Every ``refundlens worker`` runs Celery's beat unless told ``--no-beat``, and workers started
from one image all run it: two ticks at once read the same outbox and handed one claim to the
queue twice (it was analysed twice). The tick's queueing now holds a lease named in this table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leases")
