"""claim photos keep the buyer's mark of the damage

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:00:00

The box a buyer draws around the damage on a claim photo (``damage_boxes`` on filing, the
capture page's first step), as [left, top, right, bottom] fractions of the photo. The
consistency check compares the other views there. Photos filed before this revision have none
(NULL): they are compared as before, without a mark.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claim_photos", schema=None) as batch_op:
        batch_op.add_column(sa.Column("damage_box", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("claim_photos", schema=None) as batch_op:
        batch_op.drop_column("damage_box")
