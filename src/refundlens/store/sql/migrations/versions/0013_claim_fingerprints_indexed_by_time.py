"""claim fingerprints indexed by time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 23:00:00

A live capture is checked for replays outside the transaction that accepts it (the check
decodes and compares pictures); the accepting transaction then looks again, under the audit
log's lock, at the prints committed since the check began, so that two captures of one photo
sent at once on two claims cannot both be accepted. That look asks for prints by time.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # A plain CREATE INDEX holds off every write to the table while it builds: claims
        # could not be filed during an upgrade of a large installation. CONCURRENTLY builds
        # beside the writes, and runs outside a transaction.
        with op.get_context().autocommit_block():
            # A build interrupted before (a timeout, a killed start-up) leaves an INVALID index
            # of this name and the version at 0012: drop it, or this step fails for ever.
            op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_claim_fingerprints_created_at")
            op.create_index(
                "ix_claim_fingerprints_created_at",
                "claim_fingerprints",
                ["created_at"],
                unique=False,
                postgresql_concurrently=True,
            )
        return
    op.create_index(
        "ix_claim_fingerprints_created_at", "claim_fingerprints", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_claim_fingerprints_created_at", table_name="claim_fingerprints")
