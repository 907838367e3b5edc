"""decisions say whether a rejection found forgery

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 19:00:00

A rejection was read as a confirmed forgery everywhere (the forgery bank, the buyer's record,
the evidence report), though a person rejects claims for other reasons too (not eligible, the
buyer's own doing). Each decision now says whether its person found the evidence forged. Every
rejection taken before this revision keeps the meaning it had: forgery.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("forgery", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.execute(
        sa.text("UPDATE decisions SET forgery = :yes WHERE outcome = 'rejected'").bindparams(
            yes=True
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("forgery")
