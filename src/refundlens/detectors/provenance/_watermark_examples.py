"""Embed invisible-watermark's dwtDct mark, written from its published description (one Haar
level of the U channel, 4x4 blocks, largest non-first coefficient quantised with step 36), so
the examples and tests need neither invisible-watermark nor torch. The decoder under test was
also checked against invisible-watermark's own encoder (see docs/detectors/provenance.md)."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from .watermark import BLOCK, SCALE, haar_approximation

__all__ = ["embed"]


def embed(rgb: npt.NDArray[np.uint8], bits: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    rows, cols = rgb.shape[0] // 4 * 4, rgb.shape[1] // 4 * 4
    yuv = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV).astype(np.float64)
    u = yuv[:rows, :cols, 1]
    band = haar_approximation(u)
    new = band.copy()
    br, bc = band.shape[0] // BLOCK, band.shape[1] // BLOCK
    num = 0
    for i in range(br):
        for j in range(bc):
            block = new[i * BLOCK : (i + 1) * BLOCK, j * BLOCK : (j + 1) * BLOCK]
            flat = block.ravel()
            pos = int(np.argmax(np.abs(flat[1:]))) + 1
            val, bit = flat[pos], bits[num % len(bits)]
            q = (abs(val) // SCALE + 0.25 + 0.5 * bit) * SCALE
            block[pos // BLOCK, pos % BLOCK] = q if val >= 0 else -q
            num += 1
    # a change d in the approximation band changes each of its 2x2 pixels by d / 2
    delta = np.kron(new - band, np.ones((2, 2))) / 2.0
    yuv[:rows, :cols, 1] = u + delta
    out = np.clip(np.rint(yuv), 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_YUV2RGB)
