"""Measurements that more than one detector reads, taken once per photo.

The capture check (a JPEG compressed twice is not a camera's first save) and pixel forensics (the
region that was not compressed twice like the rest) both read the double-quantization analysis of
the JPEG's luma plane, about 15 ms on a 1 MP photo. Each photo keeps its result for as long as
the photo itself lives (a weak reference: nothing outlives the analysis).
"""

from __future__ import annotations

import threading
import weakref

from ..forensics.jpeg_dct import DoubleQuantization, double_quantization
from ..media import Media

__all__ = ["jpeg_double_quantization"]

_DOUBLE_QUANTIZATION: weakref.WeakKeyDictionary[Media, DoubleQuantization | None] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def jpeg_double_quantization(photo: Media) -> DoubleQuantization | None:
    """``double_quantization`` of ``photo``'s stored luma plane and its luma table, or None where
    the file is no JPEG with a whole 64-step table."""
    with _LOCK:
        if photo in _DOUBLE_QUANTIZATION:
            return _DOUBLE_QUANTIZATION[photo]
    table = photo.metadata.jpeg_qtables.get(0)
    luma = photo.jpeg_luma if table is not None and len(table) == 64 else None
    result = double_quantization(luma, table) if luma is not None and table is not None else None
    with _LOCK:
        _DOUBLE_QUANTIZATION[photo] = result
    return result
