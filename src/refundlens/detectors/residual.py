"""Photometric normalisation and residual analysis of a claim against an aligned reference.

Arrays are (row, col[, channel]); intensities are grey levels in [0, 255].

The idea: an image *derived* from a reference (re-encoded, filtered, cropped, with damage painted
in) equals the reference, up to a tone/colour mapping, a mild blur or sharpening and compression
noise, everywhere except the painted region. A *new exposure* of the same object does not: light,
parallax, sensor noise and focus differ everywhere.

References
----------
.. [1] G. D. Finlayson, M. Mackiewicz and A. Hurlbert, "Color correction using root-polynomial
       regression", IEEE TIP 24(5), 2015 (polynomial colour mapping fitted by least squares).
.. [2] P. J. Rousseeuw, "Least median of squares regression", JASA 79, 1984 (trimmed refitting).
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "ResidualAnalysis",
    "analyse_residual",
    "background_mask",
    "fit_colour_mapping",
]

FloatImage = npt.NDArray[np.float32]
BoolImage = npt.NDArray[np.bool_]


def background_mask(
    rgb: npt.NDArray[np.uint8], *, level: int = 235, min_share: float = 0.05
) -> BoolImage:
    """True where a listing photo's plain near-white backdrop is: bright, unsaturated and
    connected to the image border. Returns all-False when such backdrop covers < ``min_share``.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    lo = np.minimum(np.minimum(r, g), b).astype(np.int16)  # far faster than .min(axis=2)
    hi = np.maximum(np.maximum(r, g), b).astype(np.int16)
    flat = ((lo >= level) & (hi - lo <= 18)).astype(np.uint8)
    _count, labels = cv2.connectedComponents(flat, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    mask = np.isin(labels, border) if border.size else np.zeros(flat.shape, bool)
    if mask.mean() < min_share:
        return np.zeros(flat.shape, bool)
    return mask.astype(bool)


def _poly_features(rgb: FloatImage) -> FloatImage:
    """Second-order polynomial colour terms per pixel: r g b r2 g2 b2 rg rb gb 1 (inputs in [0,1])."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    one = np.ones_like(r)
    return np.stack([r, g, b, r * r, g * g, b * b, r * g, r * b, g * b, one], axis=-1)


def fit_colour_mapping(
    source: npt.NDArray[np.float32],
    target: npt.NDArray[np.float32],
    *,
    trim: float = 0.7,
    rounds: int = 2,
) -> npt.NDArray[np.float64]:
    """Fit a 10x3 second-order polynomial colour transform source -> target by trimmed least
    squares [1]_ [2]_: refit on the ``trim`` share of pixels with the smallest residuals, so that
    painted damage and clipped highlights do not bend the fit.

    ``source`` and ``target`` are (n, 3) samples in [0, 255]. Returns the coefficient matrix.
    """
    x = _poly_features(source / 255.0).reshape(-1, 10).astype(np.float64)
    y = target.reshape(-1, 3).astype(np.float64)
    keep = np.ones(len(x), bool)
    coef: npt.NDArray[np.float64] = np.zeros((10, 3))
    ridge = 1e-4 * np.eye(10)
    for _ in range(rounds + 1):
        xs, ys = x[keep], y[keep]
        coef = np.asarray(np.linalg.solve(xs.T @ xs + ridge * len(xs), xs.T @ ys), np.float64)
        err = np.abs(x @ coef - y).max(axis=1)
        keep = err <= np.quantile(err, trim)
    return coef


def apply_colour_mapping(rgb: FloatImage, coef: npt.NDArray[np.float64]) -> FloatImage:
    flat = _poly_features(rgb / 255.0).reshape(-1, 10).astype(np.float32)
    out = flat @ coef.astype(np.float32)
    return np.clip(out, 0, 255).reshape(rgb.shape).astype(np.float32)


def _filters(image: FloatImage) -> list[tuple[str, FloatImage]]:
    """The reference as the forger's blur, resampling or sharpening would have left it."""
    out: list[tuple[str, FloatImage]] = [("none", image)]
    for sigma in (0.7, 1.2, 2.0, 3.0):
        out.append((f"blur {sigma}", cv2.GaussianBlur(image, (0, 0), sigma)))
    soft = cv2.GaussianBlur(image, (0, 0), 1.0)
    for amount in (0.6, 1.5):
        out.append((f"sharpen {amount}", np.clip(image + amount * (image - soft), 0, 255)))
    return out


def _envelope_residual(claim: FloatImage, predicted: FloatImage, radius: int) -> FloatImage:
    """Per-pixel distance of the claim outside the [min, max] of the prediction over a
    (2r+1)^2 window, maximised over channels: tolerant of sub-pixel misalignment at edges."""
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    hi = cv2.dilate(predicted, kernel)
    lo = cv2.erode(predicted, kernel)
    over = np.maximum(claim - hi, lo - claim)
    return np.maximum(over, 0).max(axis=2)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class ResidualAnalysis:
    """The residual of a claim against its aligned, normalised reference, and what it says."""

    residual: FloatImage
    """Envelope residual in grey levels, (rows, cols), 0 outside ``compared``."""
    valid: BoolImage
    """Pixels where the warped reference has data (its footprint on the claim)."""
    compared: BoolImage
    """Pixels where the reference covers the object and the comparison is meaningful."""
    edit_mask: BoolImage
    envelope_level: float
    """Median envelope residual over ``compared`` (grey levels): ~0 for a derived image."""
    noise_level: float
    """Median plain residual over ``compared`` (grey levels): compression noise for a derived image."""
    agreement: float
    """Share of ``compared`` pixels whose envelope residual is within the tolerance."""
    tolerance: float
    filter_name: str
    edit_share: float
    """Edited area as a share of the compared object area."""
    predicted: FloatImage


def analyse_residual(
    claim: npt.NDArray[np.uint8],
    warped_ref: npt.NDArray[np.uint8],
    valid: BoolImage,
    object_mask: BoolImage,
    *,
    tolerance: float = 10.0,
    min_component_share: float = 0.0005,
    sample: int = 40_000,
    seed: int = 0,
) -> ResidualAnalysis:
    """Normalise ``warped_ref`` to the claim's colours, choose the blur/sharpen that fits best,
    and localise where the claim departs from it.

    ``claim`` and ``warped_ref`` are RGB uint8 of the same shape; ``valid`` marks where the warp
    has reference pixels (eroded to avoid border effects); ``object_mask`` marks the product in
    claim coordinates (reference minus its white backdrop).
    """
    compared = valid & object_mask
    if compared.sum() < 64:
        compared = valid
    claim_f = claim.astype(np.float32)
    ref_f = warped_ref.astype(np.float32)
    rows, cols = np.nonzero(compared)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(rows), size=min(sample, len(rows)), replace=False)
    rr, cc = rows[pick], cols[pick]

    best: tuple[float, str, FloatImage] | None = None
    for name, filtered in _filters(ref_f):
        coef = fit_colour_mapping(filtered[rr, cc], claim_f[rr, cc])
        pred_s = apply_colour_mapping(filtered[rr, cc][None], coef)[0]
        score = float(np.median(np.abs(pred_s - claim_f[rr, cc]).max(axis=1)))
        if best is None or score < best[0]:
            best = (score, name, filtered)
    assert best is not None
    _, filter_name, filtered = best
    coef = fit_colour_mapping(filtered[rr, cc], claim_f[rr, cc])
    predicted = apply_colour_mapping(filtered, coef)

    plain = np.abs(claim_f - predicted).max(axis=2)
    noise = float(np.median(plain[compared]))
    env = _envelope_residual(claim_f, predicted, 1)
    env = cv2.GaussianBlur(env, (0, 0), 1.0)
    env[~compared] = 0
    envelope_level = float(np.median(env[compared]))
    agree = float((env[compared] <= tolerance).mean())

    raw = (env > tolerance).astype(np.uint8)
    raw = cv2.morphologyEx(raw, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    raw = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(raw, connectivity=8)
    min_area = max(12, int(min_component_share * compared.sum()))
    keep = np.zeros(count, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    edit = keep[labels] & compared
    share = float(edit.sum() / max(1, compared.sum()))
    return ResidualAnalysis(
        residual=env,
        valid=valid,
        compared=compared,
        edit_mask=edit,
        envelope_level=envelope_level,
        noise_level=noise,
        agreement=agree,
        tolerance=tolerance,
        filter_name=filter_name,
        edit_share=share,
        predicted=predicted,
    )
