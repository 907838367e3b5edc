"""claims indexed by when they changed

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 22:30:00

A platform keeps its own copy of each claim's state and asks for the claims that changed since
its last sync (``GET /v1/claims?updated_since=``): an integrator's walkthrough found no way to
ask but to read every claim. That question asks for claims by ``updated_at``.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # CONCURRENTLY, as 0013: claims go on being filed while the index builds.
        with op.get_context().autocommit_block():
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_claims_updated_at")
            op.create_index(
                "ix_claims_updated_at",
                "claims",
                ["updated_at"],
                unique=False,
                postgresql_concurrently=True,
            )
        return
    op.create_index("ix_claims_updated_at", "claims", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_claims_updated_at", table_name="claims")
