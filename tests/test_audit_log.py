"""The audit log's chain under concurrent writers, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from refundlens.config import Settings
from refundlens.store import Database
from refundlens.store.sql import audit
from refundlens.store.sql.models import AuditEntry

from .service_support import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(Settings(data_dir=str(tmp_path)))
        db.upgrade()
        yield db
        db.dispose()
    else:
        with postgres_database() as url:
            db = Database(Settings(data_dir=str(tmp_path), database_url=url))
            db.upgrade()
            yield db
            db.dispose()


def test_the_first_two_writers_on_an_empty_database_both_append(database: Database) -> None:
    """The first writer creates the log's head row; a second arriving before it commits waits."""
    first_appended = threading.Event()
    errors: list[BaseException] = []

    def slow_first() -> None:
        try:
            with database.session() as session:
                audit.append(session, "first", "test.first")
                first_appended.set()
                time.sleep(0.5)  # hold the transaction open while the second writer arrives
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
            first_appended.set()

    def second() -> None:
        first_appended.wait(10)
        try:
            with database.session() as session:
                audit.append(session, "second", "test.second")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=slow_first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with database.session() as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert [(row.seq, row.actor) for row in rows] == [(1, "first"), (2, "second")]
        assert audit.verify(session) == (2, None)
