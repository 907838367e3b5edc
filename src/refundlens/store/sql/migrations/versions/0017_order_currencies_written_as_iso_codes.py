"""order currencies written as ISO 4217 codes

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 23:00:00

The API now reads a currency as its upper-case ISO 4217 code ("cny" is CNY) and the amount rules
and the legal threshold apply to amounts in their own currency only. Orders saved before kept
the code as sent: a shop resending such an order was refused as a conflict ("cny" against
"CNY"), and its claims' amounts were left out of the buyer's record in yuan (a review). Codes
are upper-cased here; one that is no code at all (``RMB``, ``元``) stays as it was and goes to a
person, as any currency other than the policy's does.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE orders SET currency = UPPER(currency) WHERE currency <> UPPER(currency)")


def downgrade() -> None:
    pass  # the code as sent is not kept; upper case is what the API writes from now on
