"""decisions carry a note to the buyer

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 02:30:00

A decision's reason is written for the platform, the reviewers and the merchant: it may name
what the analysis found, which a buyer must never read (a forger could tune its next edit). A
buyer whose claim was not approved was told only "not approved". Each decision may now carry a
separate note written for the buyer, shown on its page and in its view of the API; and a
person asking for a live capture may say what to photograph (claims.capture_request_note).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("buyer_note", sa.Text(), nullable=True))
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("capture_request_note", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite drops a column in place (3.35+); a batch would copy the claims table and drop
        # the old one, which the rows that refer to claims forbid.
        op.execute("ALTER TABLE claims DROP COLUMN capture_request_note")
    else:
        op.drop_column("claims", "capture_request_note")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("buyer_note")
