"""Demosaicing (CFA) traces: the Bayer lattice a camera leaves in the green channel.

A camera samples green on half of the pixels (a quincunx lattice) and interpolates the other half
from their neighbours. Interpolated pixels are therefore predictable from their four neighbours
and acquired ones much less so: the variance of the prediction error differs between the two
lattices, with the same sign over the whole photo [1]_ [2]_. A region pasted from another photo
(scaled, rotated or shifted by an odd number of pixels), painted or synthesised has no such
pattern, or the other lattice's. Resizing and JPEG compression below about quality 95 erase the
pattern everywhere: then there is nothing to compare a region with, and the strength says so.

References
----------
.. [1] A. C. Popescu, H. Farid, "Exposing digital forgeries in color filter array interpolated
       images", IEEE Trans. Signal Processing 53(10), 2005.
.. [2] P. Ferrara, T. Bianchi, A. De Rosa, A. Piva, "Image forgery localization via fine-grained
       analysis of CFA artifacts", IEEE Trans. Information Forensics and Security 7(5), 2012.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["CfaTraces", "cfa_traces"]

FloatMap = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class CfaTraces:
    """The demosaicing pattern of one image, block by block."""

    block_map: FloatMap
    """Per block of ``block`` x ``block`` pixels: the log ratio of the prediction-error energy on
    the image's acquired lattice over its interpolated one, signed so that the image's own
    pattern is positive (about 0 where a block has none; NaN on flat blocks, no evidence)."""
    strength: float
    """Median of ``block_map`` over textured blocks: how strongly the whole photo carries a
    demosaicing pattern (0 when resizing or compression erased it)."""
    agreement: float
    """Share of textured blocks whose lattice agrees with the image's."""
    spread: float
    """Robust standard deviation (1.4826 x MAD) of ``block_map`` over textured blocks: with
    ``strength`` below a few times this, a block without the pattern does not stand out from
    the photo's own block-to-block variation."""
    block: int


def cfa_traces(rgb: npt.ArrayLike, *, block: int = 32, min_texture: float = 1.0) -> CfaTraces:
    """Measure the green-channel CFA pattern of ``rgb`` per block.

    Parameters
    ----------
    rgb : RGB uint8 at the resolution the camera wrote (any resampling erases the pattern).
    block : block side in pixels (even).
    min_texture : root-mean-square prediction error (grey levels) below which a block is flat.
    """
    arr = np.asarray(rgb, dtype=np.uint8)
    green = np.ascontiguousarray(arr[..., 1], dtype=np.float32)
    # Error of predicting each pixel from its 4-neighbourhood (bilinear demosaicing's own rule).
    kernel = np.array([[0, -0.25, 0], [-0.25, 1.0, -0.25], [0, -0.25, 0]], np.float32)
    error = cv2.filter2D(green, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)
    rows, cols = error.shape
    half = block // 2
    by, bx = rows // block, cols // block
    if by < 2 or bx < 2:
        return CfaTraces(
            np.full((max(by, 1), max(bx, 1)), np.nan, np.float32), 0.0, 0.0, 0.0, block
        )
    squares = np.square(error[: by * block, : bx * block])

    def energy(r0: int, c0: int) -> npt.NDArray[np.float32]:
        part = squares[r0::2, c0::2]
        return part.reshape(by, half, bx, half).sum(axis=(1, 3), dtype=np.float32)

    even = energy(0, 0) + energy(1, 1)  # row + col even
    odd = energy(0, 1) + energy(1, 0)
    ratio = np.log((even + 1e-3) / (odd + 1e-3)).astype(np.float32)
    rms = np.sqrt((even + odd) / (block * block))
    ratio[rms < min_texture] = np.nan
    textured = ratio[np.isfinite(ratio)]
    if textured.size < 8:
        return CfaTraces(ratio, 0.0, 0.0, 0.0, block)
    centre = float(np.median(textured))
    sign = np.float32(1.0 if centre >= 0 else -1.0)
    spread = 1.4826 * float(np.median(np.abs(textured - centre)))
    return CfaTraces(sign * ratio, abs(centre), float((sign * textured > 0).mean()), spread, block)
