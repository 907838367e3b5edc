"""store: where the service keeps what it knows.

``interface`` is the boundary the case workflow sees (narrow protocols, no SQL); ``memory``
implements it in dictionaries (tests, examples, the workflow with no database); ``sql``
implements it with SQLAlchemy, with the Alembic migrations and the tamper-evident audit chain.
``blobs`` keeps files by content hash, ``crypto`` seals personal data, ``features`` keeps
reference features on disk.
"""

from .blobs import BlobStore
from .sql.db import Database

__all__ = ["BlobStore", "Database"]
