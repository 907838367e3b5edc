"""Content-addressed blob store: a file's bytes under ``blobs/ab/cdef...`` by their sha256."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from .private import private_folder

__all__ = ["BlobStore"]


class BlobStore:
    """Write-once files named by their sha256; writing the same bytes twice stores them once."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Each file is written 0600 (NamedTemporaryFile), each new folder 0700.
        private_folder(self.root)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists():
            return digest
        private_folder(target.parent)
        # Write then rename: a reader never sees half a file, a crash leaves only a temp file.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(data)
            temp = Path(handle.name)
        os.replace(temp, target)
        return digest

    def get(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()
