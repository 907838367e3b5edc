"""bank entries keep their local print; their ids are never reused

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 16:00:00

``bank import`` stores each entry's local print (``reuse.prints``, format-2 bank files) so that
claim analysis can match a cropped copy that whole-image PDQ misses. Entries imported before this
revision, from format-1 files, and this platform's own entries have none (NULL): they are matched
by PDQ only until a format-2 file brings their print again. Such an entry is then stored anew,
under a new id: the services' index caches read bank entries by rising id. On SQLite the table is
rebuilt with AUTOINCREMENT so that an id is never given twice (PostgreSQL's sequence never does).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _batch(autoincrement: bool) -> Any:
    """The table altered in place, except on SQLite: rebuilt there, AUTOINCREMENT or not."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    return op.batch_alter_table(
        "bank_entries",
        schema=None,
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": autoincrement} if sqlite else {},
    )


def upgrade() -> None:
    with _batch(autoincrement=True) as batch_op:
        batch_op.add_column(sa.Column("local_print", sa.Text(), nullable=True))


def downgrade() -> None:
    with _batch(autoincrement=False) as batch_op:
        batch_op.drop_column("local_print")
