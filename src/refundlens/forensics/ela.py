"""Error-level analysis: a visual aid, and the benchmark's simplest baseline.

Re-saving a JPEG at a known quality changes regions that were last compressed differently more
than the rest. It also lights up edges, texture and saturated colour, so ELA alone accuses honest
photos readily; refundlens shows it to people and never scores on it [1]_.

References
----------
.. [1] N. Krawetz, "A picture's worth... Digital image analysis and forensics", Black Hat, 2007.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["error_level"]


def error_level(
    rgb: npt.ArrayLike, quality: int = 90, smooth_sigma: float = 2.0
) -> npt.NDArray[np.float32]:
    """Absolute difference to a JPEG re-save at ``quality``, max over channels, in grey levels.

    The re-save is in memory (Pillow's libjpeg, 4:2:0); ``smooth_sigma`` (pixels) blurs the map
    so blocks, not single pixels, stand out.
    """
    arr = np.asarray(rgb, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "JPEG", quality=int(quality))
    buffer.seek(0)
    resaved = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)
    # |a - b| per channel, then the largest of the three: OpenCV's saturating uint8 operations
    # give the same integers as NumPy's int16 ones, fifteen times faster on a 1 MP photo.
    channels = cv2.split(cv2.absdiff(arr, resaved))
    diff = cv2.max(cv2.max(channels[0], channels[1]), channels[2]).astype(np.float32)
    if smooth_sigma > 0:
        diff = cv2.GaussianBlur(diff, (0, 0), smooth_sigma)
    return diff
