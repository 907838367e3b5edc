"""one-time sign-in links for buyers

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 07:00:00

A buyer reached its claim page only with an API key made on the CLI, one per buyer. The
platform's app now asks for a one-time link (``POST /v1/buyers/{buyer_id}/sign-in-link``) and
sends it to the buyer; opening it and pressing the button logs the buyer in. The table keeps
each link's secret as a SHA-256, the buyer key it opens a session for, and when it ends and
was used.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["key_id"], ["api_keys.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sign_in_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sign_in_links_key_id"), ["key_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_sign_in_links_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sign_in_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sign_in_links_expires_at"))
        batch_op.drop_index(batch_op.f("ix_sign_in_links_key_id"))
    op.drop_table("sign_in_links")
