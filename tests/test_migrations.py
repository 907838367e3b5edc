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
        assert database.revisions()[0] == "0008"
        database.upgrade()
        assert database.revisions()[0] == database.revisions()[1]
    finally:
        database.dispose()


def _photo_columns(database: Database) -> set[str]:
    return {c["name"] for c in sa.inspect(database.engine).get_columns("claim_photos")}


def test_0010_adds_the_buyers_damage_box_to_claim_photos_and_its_downgrade_removes_it_rows_kept(
    tmp_path: Path,
) -> None:
    database = Database(Settings(data_dir=str(tmp_path)))
    try:
        _migrate(database, "upgrade", "0009")
        assert "damage_box" not in _photo_columns(database)
        raw = database.engine.raw_connection()  # a photo row alone: no claim needed here
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.execute(
                "INSERT INTO claim_photos (id, claim_id, position, sha256, name, live_capture,"
                " created_at) VALUES ('ph_1', 'clm_1', 0, ?, 'a.jpg', 0, '2026-10-02 00:00:00')",
                ("cd" * 32,),
            )
            raw.commit()
        finally:
            raw.close()
        _migrate(database, "upgrade", "0010")
        assert "damage_box" in _photo_columns(database)
        with database.engine.begin() as connection:
            rows = connection.execute(sa.text("SELECT name, damage_box FROM claim_photos")).all()
            assert rows == [("a.jpg", None)]  # photos filed before: not marked
            connection.execute(
                sa.text("UPDATE claim_photos SET damage_box = '[0.1, 0.2, 0.3, 0.4]'")
            )
        _migrate(database, "downgrade", "0009")
        assert "damage_box" not in _photo_columns(database)
        with database.engine.connect() as connection:
            assert connection.execute(sa.text("SELECT name FROM claim_photos")).scalars().all() == [
                "a.jpg"
            ]
    finally:
        database.dispose()


def test_0012_keeps_every_earlier_rejection_a_forgery_and_other_decisions_not(
    tmp_path: Path,
) -> None:
    # Before 0012 a rejection meant a confirmed forgery (banked, in the buyer's record): the
    # rejections taken then keep that meaning; approvals and partial refunds are no forgery.
    from .test_cases import _appeal, _claim_awaiting_capture, _decide

    settings = Settings(data_dir=str(tmp_path))
    runtime, claim = _claim_awaiting_capture(settings)
    _decide(runtime, claim, "reject", "not eligible", settings, forgery=False)
    _appeal(runtime, claim, "look again", settings)
    _decide(runtime, claim, "partial", "half", settings, amount=5.0)
    database = runtime.db
    _migrate(database, "downgrade", "0011")
    with database.engine.begin() as connection:
        # As 0011 stored them: a rejection without a word on forgery.
        assert "forgery" not in {c["name"] for c in sa.inspect(connection).get_columns("decisions")}
    _migrate(database, "upgrade", "0012")
    with database.engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT outcome, forgery FROM decisions ORDER BY created_at")
        ).all()
    assert [(o, bool(f)) for o, f in rows] == [("rejected", True), ("partial", False)]
    _migrate(database, "upgrade", "head")
    assert database.revisions()[0] == database.revisions()[1]


def test_0013_indexes_claim_fingerprints_by_time_and_its_downgrade_drops_the_index(
    tmp_path: Path,
) -> None:
    # A live capture's last look for replays asks for the prints put on file since a moment.
    from .test_cases import _claim_awaiting_capture

    runtime, _ = _claim_awaiting_capture(Settings(data_dir=str(tmp_path)))
    database = runtime.db

    def indexed() -> set[str]:
        with database.engine.connect() as connection:
            found = sa.inspect(connection).get_indexes("claim_fingerprints")
            return {str(i["name"]) for i in found}

    assert "ix_claim_fingerprints_created_at" in indexed()
    _migrate(database, "downgrade", "0012")
    assert "ix_claim_fingerprints_created_at" not in indexed()
    _migrate(database, "upgrade", "head")
    assert "ix_claim_fingerprints_created_at" in indexed()
    assert database.revisions()[0] == database.revisions()[1]


def test_0014_adds_the_note_to_the_buyer_and_earlier_decisions_have_none(
    tmp_path: Path,
) -> None:
    from .test_cases import _claim_awaiting_capture, _decide

    settings = Settings(data_dir=str(tmp_path))
    runtime, claim = _claim_awaiting_capture(settings)
    database = runtime.db
    _migrate(database, "downgrade", "0013")
    with database.engine.connect() as connection:
        columns = {c["name"] for c in sa.inspect(connection).get_columns("decisions")}
        asked = {c["name"] for c in sa.inspect(connection).get_columns("claims")}
    assert "buyer_note" not in columns and "capture_request_note" not in asked
    _migrate(database, "upgrade", "head")
    _decide(runtime, claim, "reject", "not eligible", settings, forgery=False)
    with database.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT buyer_note FROM decisions")).all()
    assert [r[0] for r in rows] == [None]
    assert database.revisions()[0] == database.revisions()[1]


def test_0015_adds_the_sign_in_links_and_takes_them_away(tmp_path: Path) -> None:
    from refundlens.service.auth import issue_sign_in_link

    database = Database(Settings(data_dir=str(tmp_path)))
    database.upgrade()

    def tables() -> set[str]:
        with database.engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())

    with database.session() as session:
        issue_sign_in_link(session, "buyer-9", 15)
    assert "sign_in_links" in tables()
    _migrate(database, "downgrade", "0014")
    assert "sign_in_links" not in tables()
    _migrate(database, "upgrade", "head")
    assert "sign_in_links" in tables()
    assert database.revisions()[0] == database.revisions()[1]
    database.dispose()


def test_0016_indexes_claims_by_when_they_changed_and_takes_it_away(tmp_path: Path) -> None:
    # A platform's sync asks for the claims changed since a moment (?updated_since=).
    database = Database(Settings(data_dir=str(tmp_path)))
    database.upgrade()

    def indexed() -> set[str]:
        with database.engine.connect() as connection:
            return {str(i["name"]) for i in sa.inspect(connection).get_indexes("claims")}

    assert "ix_claims_updated_at" in indexed()
    _migrate(database, "downgrade", "0015")
    assert "ix_claims_updated_at" not in indexed()
    _migrate(database, "upgrade", "head")
    assert "ix_claims_updated_at" in indexed()
    assert database.revisions()[0] == database.revisions()[1]
    database.dispose()


def test_0017_writes_order_currencies_as_their_upper_case_codes(tmp_path: Path) -> None:
    # Saved as sent before: "cny" was a conflict when the shop resent the order as "CNY", and
    # its amounts were left out of the buyer's record in yuan (a review).
    from .test_cases import _claim_awaiting_capture

    runtime, _ = _claim_awaiting_capture(Settings(data_dir=str(tmp_path)))
    database = runtime.db
    _migrate(database, "downgrade", "0016")
    with database.engine.begin() as connection:
        connection.execute(sa.text("UPDATE orders SET currency = 'cny'"))
    _migrate(database, "upgrade", "head")
    with database.engine.connect() as connection:
        codes = connection.execute(sa.text("SELECT DISTINCT currency FROM orders")).scalars().all()
    assert codes == ["CNY"]
    assert database.revisions()[0] == database.revisions()[1]


def test_0018_lets_idempotency_keys_name_evidence_and_its_downgrade_drops_those_keys(
    tmp_path: Path,
) -> None:
    # A packing video sent again after a dropped connection was stored twice.
    from .test_cases import _claim_awaiting_capture

    runtime, claim = _claim_awaiting_capture(Settings(data_dir=str(tmp_path)))
    database = runtime.db

    def columns() -> set[str]:
        with database.engine.connect() as connection:
            return {c["name"] for c in sa.inspect(connection).get_columns("idempotency_keys")}

    assert "evidence_id" in columns()
    with database.engine.begin() as connection:
        for key, evidence in (("for-a-claim", None), ("for-evidence", "evd_1")):
            connection.execute(
                sa.text(
                    "INSERT INTO idempotency_keys (key, claim_id, evidence_id, created_at) "
                    "VALUES (:key, :claim, :evidence, CURRENT_TIMESTAMP)"
                ),
                {"key": key, "claim": claim, "evidence": evidence},
            )
    _migrate(database, "downgrade", "0017")
    assert "evidence_id" not in columns()
    with database.engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT key FROM idempotency_keys")).scalars().all()
    assert kept == ["for-a-claim"]  # a key for evidence would read as one for the claim
    _migrate(database, "upgrade", "head")
    assert "evidence_id" in columns()
    assert database.revisions()[0] == database.revisions()[1]


def test_0019_adds_the_leases_and_takes_them_away(tmp_path: Path) -> None:
    # Two workers' beats ran two ticks at once, and one claim was queued twice.
    database = Database(Settings(data_dir=str(tmp_path)))
    database.upgrade()

    def tables() -> set[str]:
        with database.engine.connect() as connection:
            return set(sa.inspect(connection).get_table_names())

    assert "leases" in tables()
    _migrate(database, "downgrade", "0018")
    assert "leases" not in tables()
    _migrate(database, "upgrade", "head")
    assert "leases" in tables()
    database.dispose()


def test_0020_keeps_a_local_print_on_claim_fingerprints_and_its_downgrade_drops_it(
    tmp_path: Path,
) -> None:
    # A confirmed forgery's bank entry kept PDQ only: a copy cropped by 5% was approved again.
    database = Database(Settings(data_dir=str(tmp_path)))
    database.upgrade()

    def columns() -> set[str]:
        with database.engine.connect() as connection:
            return {c["name"] for c in sa.inspect(connection).get_columns("claim_fingerprints")}

    assert "local_print" in columns()
    _migrate(database, "downgrade", "0019")
    assert "local_print" not in columns()
    _migrate(database, "upgrade", "head")
    assert "local_print" in columns()
    assert database.revisions()[0] == database.revisions()[1] == "0020"
    database.dispose()


def test_on_postgresql_the_time_index_is_built_beside_writes_and_every_step_applies() -> None:
    # 0013 builds its index CONCURRENTLY (outside the migrations' transaction) on PostgreSQL:
    # claims keep being filed while a large installation upgrades. Down and up again works.
    from .service_support import postgres_database

    with postgres_database() as url:
        database = Database(Settings(database_url=url))
        try:
            database.upgrade()
            assert database.revisions()[0] == database.revisions()[1]
            query = sa.text(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = 'ix_claim_fingerprints_created_at'"
            )
            with database.engine.connect() as connection:
                assert connection.execute(query).scalar_one() is True
            _migrate(database, "downgrade", "0012")
            with database.engine.connect() as connection:
                assert connection.execute(query).all() == []
            # A build interrupted before left an INVALID index of that name (and the version at
            # 0012): the step drops it and builds again instead of failing for ever.
            with database.engine.begin() as connection:
                connection.execute(
                    sa.text(
                        "CREATE INDEX ix_claim_fingerprints_created_at "
                        "ON claim_fingerprints (created_at)"
                    )
                )
                connection.execute(
                    sa.text(
                        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
                        "'ix_claim_fingerprints_created_at'::regclass"
                    )
                )
            with database.engine.connect() as connection:
                assert connection.execute(query).scalar_one() is False
            database.upgrade()
            with database.engine.connect() as connection:
                assert connection.execute(query).scalar_one() is True
            database.upgrade()  # idempotent
            assert database.revisions()[0] == database.revisions()[1]
        finally:
            database.dispose()
