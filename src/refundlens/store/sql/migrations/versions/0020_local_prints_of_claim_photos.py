"""local prints of claim photos

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 04:40:00

This platform's forgery bank kept only PDQ hashes of a confirmed forgery's photos: a copy
cropped by 5% (PDQ 60 bits away) filed at another shop was approved again minutes after a
person rejected the first as forged. A claim photo's whole-photo row now keeps its local print
(ORB, ``reuse.prints``), computed when the photo is filed, and a confirmed forgery's bank entry
carries it, as imported entries do. Rows filed before stay without one (PDQ only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claim_fingerprints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("local_print", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claim_fingerprints", schema=None) as batch_op:
        batch_op.drop_column("local_print")
