"""Reference features kept on disk: computed once when a SKU's photo is uploaded, read back by
every worker, so a claim is not slowed by analysing its references again.

One ``.npz`` file per (reference bytes, analysis size, feature version) under
``reference_feature_dir``; written then renamed, so a reader never sees half a file. A file that
cannot be read (another version, a torn disk) is a cache miss, never an error.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path

from .private import private_folder

__all__ = ["FeatureFiles", "feature_files"]


class FeatureFiles:
    """Bytes by key in a directory tree (``ab/<key>.npz``); keys are hex-led and path-safe."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdefvx-" for c in key):
            raise ValueError(f"not a feature key: {key!r}")
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> bytes | None:
        from ..metrics import metrics

        try:
            data = self._path(key).read_bytes()
        except OSError:
            metrics().reference_feature_cache.labels("miss").inc()
            return None
        metrics().reference_feature_cache.labels("hit").inc()
        return data

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def put(self, key: str, data: bytes) -> None:
        target = self._path(key)
        private_folder(target.parent)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
            handle.write(data)
            temp = Path(handle.name)
        os.replace(temp, target)


@functools.cache
def feature_files(root: str) -> FeatureFiles | None:
    """The store at ``root``, or None for an empty setting (features kept in memory only)."""
    return FeatureFiles(root) if root else None
