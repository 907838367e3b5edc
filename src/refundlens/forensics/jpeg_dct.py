"""JPEG block DCT read back from decoded pixels, and aligned double quantization.

A JPEG stores integers ``round(DCT(block) / Q)``. Decoding and re-transforming a block of the luma
plane gives them back to within rounding (mean error about 0.03 of a step for Q >= 2), so no
DCT-level decoder is needed. A photo compressed twice with different tables leaves periodic
peaks and gaps in the histogram of each frequency's coefficients; a region pasted or painted in
before the second compression lacks them. The block posterior map of [1]_ turns that into a
per-block probability, and the periodicity strength into a file-level fact.

References
----------
.. [1] Z. Lin, J. He, X. Tang, C.-K. Tang, "Fast, automatic and fine-grained tampered JPEG image
       detection via DCT coefficient analysis", Pattern Recognition 42(11), 2009.
.. [2] T. Bianchi, A. Piva, "Image forgery localization via block-grained analysis of JPEG
       artifacts", IEEE Trans. Information Forensics and Security 7(3), 2012.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
from scipy.fft import dctn

__all__ = [
    "ZIGZAG",
    "DoubleQuantization",
    "block_dct",
    "double_quantization",
    "quantized_coefficients",
]

FloatArray = npt.NDArray[np.float32]

# (row, col) of the first coefficients in JPEG zig-zag order, DC excluded.
ZIGZAG: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2), (2, 1), (3, 0), (4, 0),
    (3, 1), (2, 2), (1, 3), (0, 4), (0, 5), (1, 4), (2, 3), (3, 2), (4, 1), (5, 0),
)  # fmt: skip


def block_dct(luma: npt.ArrayLike) -> FloatArray:
    """Orthonormal 8x8 DCT of every whole block on the grid that starts at (0, 0).

    Parameters
    ----------
    luma : (rows, cols) array, values 0-255.

    Returns
    -------
    (rows // 8, cols // 8, 8, 8) float32 array of coefficients of the level-shifted blocks.
    """
    y = np.asarray(luma, dtype=np.float32)
    rows, cols = (y.shape[0] // 8) * 8, (y.shape[1] // 8) * 8
    blocks = (y[:rows, :cols] - 128.0).reshape(rows // 8, 8, cols // 8, 8).transpose(0, 2, 1, 3)
    return dctn(blocks, axes=(2, 3), norm="ortho").astype(np.float32)


def quantized_coefficients(
    luma: npt.ArrayLike, table: npt.ArrayLike
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """The stored integer coefficients of each block, and which blocks can be trusted.

    Blocks with pixels at 0 or 255 were clipped by the decoder, so their coefficients are
    not the stored ones; they are marked untrusted.

    Returns
    -------
    coefficients : (by, bx, 8, 8) int32.
    trusted : (by, bx) bool.
    """
    y = np.asarray(luma, dtype=np.float32)
    q = np.asarray(table, dtype=np.float32).reshape(8, 8)
    coefficients = np.rint(block_dct(y) / q).astype(np.int32)
    rows, cols = coefficients.shape[0] * 8, coefficients.shape[1] * 8
    blocks = y[:rows, :cols].reshape(rows // 8, 8, cols // 8, 8)
    clipped = ((blocks <= 0.5) | (blocks >= 254.5)).any(axis=(1, 3))
    return coefficients, np.asarray(~clipped, dtype=bool)


@dataclasses.dataclass(frozen=True, slots=True)
class DoubleQuantization:
    """What the coefficient histograms say about a second compression.

    ``block_map`` is the probability, per 8x8 block, that the block was *not* compressed twice
    like the rest (1 = looks single-compressed among double-compressed neighbours), or None when
    no frequency shows a period. ``periods`` maps the zig-zag index of each informative frequency
    to its histogram period in quantization steps; ``strength`` is the mean relative FFT peak
    (0 for a smooth single-compression histogram, towards 1 for comb-like ones).
    """

    block_map: FloatArray | None
    periods: dict[int, int]
    strength: float
    trusted_blocks: int


def _period(hist: npt.NDArray[np.float64], max_period: int) -> tuple[int, float]:
    """The histogram's period from its spectrum [1]_, and the peak's relative height.

    The coefficient histogram is a Laplacian bump; its spectrum falls smoothly. A comb of period
    p adds a peak at frequency n/p. The peak is measured against the spectrum's smooth trend
    (median of its neighbours) so a steep Laplacian does not read as a comb.
    """
    n = hist.size
    spectrum = np.abs(np.fft.rfft(hist - hist.mean()))
    if spectrum.size < 8 or spectrum.max() <= 0:
        return 1, 0.0
    best, best_score = 1, 0.0
    for p in range(2, max_period + 1):
        k = round(n / p)
        if k < 3 or k >= spectrum.size - 1:
            continue
        peak = spectrum[k - 1 : k + 2].max()
        lo, hi = max(1, k - 6), min(spectrum.size, k + 7)
        around = np.concatenate([spectrum[lo : k - 2], spectrum[k + 3 : hi]])
        if around.size == 0:
            continue
        score = float((peak - np.median(around)) / (spectrum[1:].max() + 1e-9))
        if score > best_score:
            best, best_score = p, score
    return best, best_score


def double_quantization(
    luma: npt.ArrayLike,
    table: npt.ArrayLike,
    *,
    frequencies: int = 12,
    half_range: int = 48,
    min_score: float = 0.12,
    max_period: int = 12,
) -> DoubleQuantization:
    """Aligned double-quantization analysis of one JPEG luma plane [1]_ [2]_.

    For each of the first ``frequencies`` AC coefficients in zig-zag order, the histogram of
    stored integers over [-half_range, half_range] is tested for a period. Where one stands out
    (relative peak >= ``min_score``), each coefficient's bin is compared with the others of its
    period: a double-compressed block falls in a high bin, a single-compressed one anywhere
    (uniform over the period). The per-frequency likelihood ratios multiply per block.

    Parameters
    ----------
    luma : decoded JPEG luma plane in stored orientation (see ``Media.jpeg_luma``).
    table : the file's luma quantization table, 64 values in natural order. A table with a
        step below 1 is not a JPEG table (the standard's steps are 1 to 65535; a fuzzed file
        had a 0, and dividing by it made every coefficient NaN): no evidence, strength 0.
    """
    if float(np.min(np.asarray(table, dtype=np.float64))) < 1:
        return DoubleQuantization(None, {}, 0.0, 0)
    coefficients, trusted = quantized_coefficients(luma, table)
    count = int(trusted.sum())
    if count < 64:
        return DoubleQuantization(None, {}, 0.0, count)
    by, bx = trusted.shape
    log_ratio = np.zeros((by, bx), np.float64)
    periods: dict[int, int] = {}
    scores: list[float] = []
    edges = np.arange(-half_range, half_range + 2) - 0.5
    for index, (r, c) in enumerate(ZIGZAG[:frequencies]):
        values = coefficients[:, :, r, c]
        hist, _ = np.histogram(values[trusted], bins=edges)
        hist = hist.astype(np.float64)
        if hist.sum() < 256 or np.count_nonzero(hist) < 6:
            continue
        period, score = _period(hist, max_period)
        scores.append(score)
        if period < 2 or score < min_score:
            continue
        periods[index + 1] = period
        # Sum of each bin's period: the bin's share of its period is p_double, 1/p is p_single.
        shifted = values + half_range
        inside = (shifted >= 0) & (shifted < hist.size)
        padded = np.concatenate([hist, np.zeros(period)])
        starts = (np.arange(hist.size) // period) * period
        period_sum = np.array([padded[s : s + period].sum() for s in starts])
        share = np.where(period_sum > 0, hist / np.maximum(period_sum, 1e-9), 1.0 / period)
        p_double = np.full(values.shape, 1.0 / period)
        p_double[inside] = share[shifted[inside]]
        p_double = np.clip(p_double, 1e-3, 1.0)
        log_ratio += np.log(1.0 / period) - np.log(p_double)
    strength = float(np.mean(scores)) if scores else 0.0
    if not periods:
        return DoubleQuantization(None, {}, strength, count)
    block_map = 1.0 / (1.0 + np.exp(-np.clip(log_ratio, -30, 30)))
    block_map[~trusted] = 0.5
    return DoubleQuantization(block_map.astype(np.float32), periods, strength, count)
