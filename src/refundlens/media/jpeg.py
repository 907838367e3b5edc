"""JPEG quantization-table facts.

References
----------
.. [1] Independent JPEG Group, libjpeg ``jcparam.c``: the standard tables of ITU-T T.81 Annex K
       and their scaling by quality (``jpeg_quality_scaling``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["adobe_preset", "estimate_jpeg_quality", "libjpeg_table", "quantization_scale"]

_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64)  # fmt: skip


def libjpeg_table(quality: int) -> np.ndarray:
    """The libjpeg luminance table for ``quality`` in 1..100 (natural order as Pillow stores it)."""
    q = min(100, max(1, int(quality)))
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((_STD_LUMA * scale + 50) / 100), 1, 255)


def adobe_preset(qtables: Mapping[int, Sequence[int]]) -> str | None:
    """The Photoshop quality preset whose tables the file carries exactly, or None.

    The tables are Pillow's ``JpegPresets`` ("equivalent to the Photoshop settings"; Save for Web
    low to maximum and Save As low to maximum). A match says an Adobe encoder (Photoshop,
    Lightroom) or a tool copying its tables wrote the file; it is a fact for a person, not a
    verdict: a Nikon E950 writes the 'high' tables itself (exif-samples, measured).
    """
    from PIL import JpegPresets

    if not qtables:
        return None
    tables = [tuple(int(v) for v in qtables[k]) for k in sorted(qtables)]
    for name, preset in JpegPresets.presets.items():
        listed: Sequence[Sequence[int]] = preset["quantization"]  # type: ignore[assignment]
        wanted = [tuple(int(v) for v in t) for t in listed]
        if tables == wanted:
            return str(name)
    return None


def quantization_scale(quality: int | None, relative_to: int = 90) -> float:
    """libjpeg's table scale at ``quality`` over its scale at ``relative_to`` (1.0 when unknown).

    libjpeg multiplies its standard tables by 5000/q below quality 50 and by 200 - 2q above, so
    quality 75 quantizes 2.5x as coarsely as 90, and 50 five times.
    """
    if quality is None:
        return 1.0

    def scale(q: int) -> float:
        q = min(100, max(1, int(q)))
        return max(5000 / q if q < 50 else 200 - 2 * q, 1.0)

    return scale(quality) / scale(relative_to)


def estimate_jpeg_quality(qtables: Mapping[int, Sequence[int]]) -> int | None:
    """The libjpeg quality (1-100) whose luminance table is closest to table 0; None if absent.

    Pillow lists tables in zig-zag order in some versions and natural order in others; the
    comparison is order-free (sorted values), which is enough for a quality estimate.
    """
    table = qtables.get(0)
    if not table or len(table) != 64:
        return None
    values = np.sort(np.asarray(table, np.float64))
    errors = [np.abs(np.sort(libjpeg_table(q)) - values).mean() for q in range(1, 101)]
    return int(np.argmin(errors)) + 1
