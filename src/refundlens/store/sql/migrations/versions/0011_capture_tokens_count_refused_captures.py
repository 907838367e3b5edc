"""capture tokens count refused captures

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 06:40:00

Each capture refused on a token (a replayed photo, a photo or clip that cannot be used) is
counted on it; at ``capture_max_refusals`` the token is spent, so that a link cannot be used to
store files and run decoding without end. Tokens issued before this revision start at 0.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("capture_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refusals", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("capture_tokens", schema=None) as batch_op:
        batch_op.drop_column("refusals")
