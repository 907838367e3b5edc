"""Decoded images kept by content hash: a SKU's reference photos are opened once per worker.

A claim is compared with every reference photo of its SKU; without this each claim would decode
them again (about 20 ms for a 1 MP JPEG, more with its fingerprints), the largest cost left once
the references' features are cached.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from ..config import Settings
from .decode import Media, media_from_bytes

__all__ = ["DecodedCache"]


class DecodedCache:
    """The ``size`` most recently used decoded images, by (sha256, name).

    >>> cache = DecodedCache(2)
    >>> from refundlens.synth import jpeg_bytes
    >>> import numpy as np
    >>> data = jpeg_bytes(np.full((64, 64, 3), 128, np.uint8), 90)
    >>> first = cache.get("a" * 64, "ref.jpg", lambda: data)
    >>> cache.get("a" * 64, "ref.jpg", lambda: b"never read") is first
    True

    The name is part of the key because findings name the reference they matched. ``size`` 0
    keeps nothing. Memory: each entry holds the file's bytes, the analysis copy (at most
    ``analysis_side`` px) and, once a detector asked for it, the full-resolution pixels.
    """

    def __init__(self, size: int, settings: Settings | None = None) -> None:
        self.size = size
        self.settings = settings
        self._items: OrderedDict[tuple[str, str], Media] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, sha256: str, name: str, load: Callable[[], bytes]) -> Media:
        key = (sha256, name)
        with self._lock:
            media = self._items.get(key)
            if media is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return media
            self.misses += 1
        media = media_from_bytes(load(), name, self.settings)
        if self.size > 0:
            with self._lock:
                self._items[key] = media
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
        return media
