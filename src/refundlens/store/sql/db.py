"""Database engine, sessions and migrations: SQLite in ``data_dir`` by default, PostgreSQL by URL."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from ...config import Settings
from ..private import private_file, private_folder, tighten

__all__ = ["Database", "database_url", "sqlite_path"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

UPGRADE_LOCK = 0x7265666C756E64  # "reflund": the PostgreSQL advisory lock `db upgrade` holds


def sqlite_path(settings: Settings) -> Path | None:
    """The embedded default's database file (None when ``database_url`` names a server)."""
    if settings.database_url:
        return None
    return Path(settings.data_dir).resolve() / "refundlens.db"


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL: ``database_url``, or the embedded SQLite in ``data_dir``. A server
    named the way PostgreSQL's own tools and most hosts write it (``postgres://``,
    ``postgresql://``) is reached through psycopg 3, the driver refundlens ships."""
    if settings.database_url:
        for plain in ("postgres://", "postgresql://"):
            if settings.database_url.startswith(plain):
                return "postgresql+psycopg://" + settings.database_url[len(plain) :]
        return settings.database_url
    folder = Path(settings.data_dir).resolve()
    private_folder(folder)
    path = folder / "refundlens.db"
    # SQLite gives its -wal and -shm files the database file's mode, so an empty 0600 file made
    # before SQLite opens it covers all three (an empty file is an empty database).
    private_file(path)
    tighten(path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    return f"sqlite:///{path}"


def _sqlite_pragmas(busy_timeout_ms: int):  # type: ignore[no-untyped-def]
    def on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Transactions are begun by _sqlite_begin (BEGIN IMMEDIATE), not by the driver.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets the API read while a worker writes. The busy timeout is short on purpose: no
        # transaction holds the write lock over slow work (decoding, features), so a wait longer
        # than sqlite_busy_timeout_seconds means overload, answered 503 with Retry-After.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return on_connect


@functools.cache
def head_revision() -> str | None:
    """The newest migration this code ships. Read once per process: parsing the migration
    scripts took 30 ms, and ``/readyz``, which needs no key and no rate limit, asked for it on
    every probe (a security review: a flood of probes slowed every other request)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


class Database:
    """One engine and session factory per process."""

    def __init__(self, settings: Settings) -> None:
        self.url = database_url(settings)
        # hide_parameters: a logged database error names its statement, never its values
        # (claim reasons, statements, buyer ids).
        self.engine: Engine = create_engine(
            self.url, pool_pre_ping=True, future=True, hide_parameters=True
        )
        if self.engine.dialect.name == "sqlite":
            busy_ms = round(settings.sqlite_busy_timeout_seconds * 1000)
            event.listen(self.engine, "connect", _sqlite_pragmas(busy_ms))
            # One writer at a time, decided when the transaction starts: a deferred transaction
            # that read first and writes later fails with SQLITE_BUSY under WAL instead of waiting.
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, future=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def upgrade(self) -> None:
        """Apply every Alembic migration (``refundlens db upgrade``); idempotent."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        if self.engine.dialect.name != "postgresql":
            # One transaction around every step (on SQLite, BEGIN IMMEDIATE): processes that
            # start together upgrade one after the other.
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
            return
        # On PostgreSQL a step may leave the migrations' transaction (0013 builds an index
        # CONCURRENTLY), so the steps run in their own; a session lock keeps processes that
        # start together from upgrading at once.
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK})
            connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                connection.rollback()
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK})
                connection.commit()

    def revisions(self) -> tuple[str | None, str | None]:
        """(the database's migration revision, the newest one this code ships)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current, head_revision()

    def dispose(self) -> None:
        self.engine.dispose()
