"""Alembic migrations one step at a time: a revision upgrades a database holding rows of the one
before, and its downgrade gives that database back, rows kept."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from refundlens.config import Settings
from refundlens.store import Database
from refundlens.store.sql.db import MIGRATIONS


def _migrate(database: Database, step: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, step)(config, revision)


def _bank_columns(database: Database) -> set[str]:
    return {c["name"] for c in sa.inspect(database.engine).get_columns("bank_entries")}


def test_0009_adds_the_bank_entries_local_print_and_its_downgrade_removes_it_rows_kept(
    tmp_path: Path,
) -> None:
    database = Database(Settings(data_dir=str(tmp_path)))
    try:
        _migrate(database, "upgrade", "0008")
        assert "local_print" not in _bank_columns(database)
        with database.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO bank_entries (bank, signer, pdq, codes, confirmed_at, imported_at)"
                    " VALUES ('p1', 'p1', :pdq, '[]', '2026-10-01 00:00:00', '2026-10-02 00:00:00')"
                ),
                {"pdq": "ab" * 32},
            )
        _migrate(database, "upgrade", "0009")
        assert "local_print" in _bank_columns(database)
        with database.engine.begin() as connection:
            rows = connection.execute(sa.text("SELECT pdq, local_print FROM bank_entries")).all()
            assert rows == [("ab" * 32, None)]  # entries held before have no print: PDQ only
            # An id is never given twice (index caches read entries by rising id): the highest
            # deleted, the next entry still gets a new one.
            connection.execute(sa.text("DELETE FROM bank_entries"))
            connection.execute(
                sa.text(
                    "INSERT INTO bank_entries (bank, signer, pdq, codes, confirmed_at, imported_at)"
                    " VALUES ('p1', 'p1', :pdq, '[]', '2026-10-01 00:00:00', '2026-10-02 00:00:00')"
                ),
                {"pdq": "ab" * 32},
            )
            assert connection.execute(sa.text("SELECT id FROM bank_entries")).scalar() == 2
        assert {"ix_bank_entries_bank"} <= {
            i["name"] for i in sa.inspect(database.engine).get_indexes("bank_entries")
        }
        with database.engine.begin() as connection:
            connection.execute(sa.text("UPDATE bank_entries SET local_print = 'orb1:AAA='"))
        _migrate(database, "downgrade", "0008")
        assert "local_print" not in _bank_columns(database)
        with database.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT pdq FROM bank_entries")).scalars().all() == [
                "ab" * 32
            ]
        assert database.revisions() == ("0008", "0009")
        database.upgrade()
        assert database.revisions() == ("0009", "0009")
    finally:
        database.dispose()
