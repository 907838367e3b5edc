"""The store in a relational database: SQLAlchemy models, the repositories that implement
:mod:`refundlens.store.interface` over a session, the Alembic migrations and the audit chain."""
