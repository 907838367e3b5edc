"""store: the database (SQLAlchemy + Alembic), content-addressed blobs, the audit chain, PII sealing."""

from .blobs import BlobStore
from .db import Database

__all__ = ["BlobStore", "Database"]
