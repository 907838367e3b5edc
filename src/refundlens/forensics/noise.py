"""Sensor-noise evidence: the level of noise, and the statistics of the noise residual.

A camera leaves noise everywhere in a photo. Paint, an inpainted patch, a region smoothed and
re-grained, or a piece pasted from another photo carry a different noise, or none. Two maps say
where: the local noise level [1]_ (the simple baseline the benchmark reports beside us), and the
local co-occurrence statistics of the quantized high-pass residual, split into two populations
without supervision, after Splicebuster [2]_.

References
----------
.. [1] J. Immerkær, "Fast noise variance estimation", Computer Vision and Image Understanding
       64(2), 1996. Used locally as in B. Mahdian, S. Saic, "Using noise inconsistencies for blind
       image forensics", Image and Vision Computing 27(10), 2009.
.. [2] D. Cozzolino, G. Poggi, L. Verdoliva, "Splicebuster: a new blind image splicing detector",
       IEEE Workshop on Information Forensics and Security (WIFS), 2015.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import scipy.linalg

__all__ = [
    "gray",
    "noise_level",
    "noise_level_and_map",
    "noise_level_map",
    "residual_cooccurrence_map",
]

FloatArray = npt.NDArray[np.float32]

_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def gray(rgb: npt.ArrayLike) -> FloatArray:
    """Luma (ITU-R BT.601, 0-255) as float32 from an RGB uint8 image."""
    arr = np.asarray(rgb)
    if arr.ndim == 2:
        return arr.astype(np.float32)
    return cv2.cvtColor(arr.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _flat_mask(luma: FloatArray, percentile: float = 60.0) -> npt.NDArray[np.bool_]:
    # Edges and texture inflate any noise estimate; keep the flatter part of the picture. The
    # gradient is taken on a blurred copy so that the selection does not prefer pixels whose
    # noise happens to be small (which would bias the estimate low).
    smooth = cv2.GaussianBlur(luma, (0, 0), 2.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = cv2.GaussianBlur(np.hypot(gx, gy), (0, 0), 1.5)
    clipped = (luma < 4) | (luma > 251)
    return (magnitude <= np.percentile(magnitude, percentile)) & ~clipped


def _level(response: FloatArray, flat: npt.NDArray[np.bool_]) -> float:
    values = response[flat] if flat.sum() > 64 else response.ravel()
    return float(np.sqrt(np.pi / 2.0) * values.mean() / 6.0)


def _level_map(response: FloatArray, flat: npt.NDArray[np.bool_], block: int) -> FloatArray:
    by, bx = response.shape[0] // block, response.shape[1] // block
    if by == 0 or bx == 0:
        return np.full((max(by, 1), max(bx, 1)), np.nan, np.float32)
    r = response[: by * block, : bx * block].reshape(by, block, bx, block)
    f = flat[: by * block, : bx * block].reshape(by, block, bx, block)
    counts = f.sum(axis=(1, 3))
    sums = (r * f).sum(axis=(1, 3))
    sigma = np.sqrt(np.pi / 2.0) * sums / np.maximum(counts, 1) / 6.0
    sigma[counts < block * block // 8] = np.nan
    return sigma.astype(np.float32)


def noise_level(rgb: npt.ArrayLike) -> float:
    """One noise standard deviation (grey levels) for the whole image [1]_, on flat pixels."""
    luma = gray(rgb)
    if min(luma.shape) < 8:
        return 0.0
    response = np.abs(cv2.filter2D(luma, cv2.CV_32F, _IMMERKAER))[1:-1, 1:-1]
    return _level(response, _flat_mask(luma)[1:-1, 1:-1])


def noise_level_map(rgb: npt.ArrayLike, block: int = 32) -> FloatArray:
    """Local noise standard deviation (grey levels) per ``block`` x ``block`` tile [1]_.

    Returns
    -------
    (rows // block, cols // block) float32; NaN where a tile has too few flat pixels to say.
    """
    luma = gray(rgb)
    response = np.abs(cv2.filter2D(luma, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    return _level_map(response, _flat_mask(luma), block)


def noise_level_and_map(rgb: npt.ArrayLike, block: int = 32) -> tuple[float, FloatArray]:
    """``(noise_level(rgb), noise_level_map(rgb, block))``, the same numbers for half the work.

    Both read the same flat-pixel mask and the same filter response; the whole-image level
    leaves out the one-pixel border, where only the border rule differs, so its response is
    the map's with that border cut off.
    """
    luma = gray(rgb)
    if min(luma.shape) < 8:
        return 0.0, noise_level_map(rgb, block)
    response = np.abs(cv2.filter2D(luma, cv2.CV_32F, _IMMERKAER, borderType=cv2.BORDER_REFLECT))
    flat = _flat_mask(luma)
    return _level(response[1:-1, 1:-1], flat[1:-1, 1:-1]), _level_map(response, flat, block)


def _residual_codes(luma: FloatArray, q: float, t: int) -> npt.NDArray[np.int32]:
    """Third-order horizontal and vertical residuals, quantized and truncated to [-t, t]."""
    kernel = np.array([[1.0, -3.0, 3.0, -1.0]], np.float32)
    codes = []
    for k in (kernel, kernel.T):
        residual = cv2.filter2D(luma, cv2.CV_32F, k, borderType=cv2.BORDER_REFLECT)
        codes.append(np.clip(np.rint(residual / q), -t, t).astype(np.int32) + t)
    return np.stack(codes)


def residual_cooccurrence_map(
    rgb: npt.ArrayLike,
    *,
    window: int = 64,
    stride: int = 16,
    q: float = 2.0,
    t: int = 2,
    components: int = 16,
    iterations: int = 30,
) -> tuple[FloatArray, float]:
    """Splicebuster-style map [2]_: how far each window's residual statistics are from the bulk.

    The high-pass residual is quantized (step ``q``) and truncated to ``[-t, t]``; co-occurrences
    of four neighbours along rows and columns form a histogram per window. After a square-root
    transform and PCA to ``components`` dimensions, a two-class model (the image's bulk and an
    outlier class) is fitted by EM; each window's score is the log-likelihood ratio of the outlier
    class over the bulk. No training data: each image is its own reference.

    Returns
    -------
    heat : (rows, cols) float32 in [0, 1], at the input's resolution (smoothly upsampled).
    separation : the Mahalanobis distance between the two classes' means (in bulk units); small
        when the image is homogeneous.
    """
    luma = gray(rgb)
    rows, cols = luma.shape
    if rows < window * 2 or cols < window * 2:
        return np.zeros((rows, cols), np.float32), 0.0
    base = 2 * t + 1
    codes = _residual_codes(luma, q, t)
    features = []
    for direction, code in enumerate(codes):
        if direction == 0:
            a, b, c, d = code[:, :-3], code[:, 1:-2], code[:, 2:-1], code[:, 3:]
        else:
            a, b, c, d = code[:-3], code[1:-2], code[2:-1], code[3:]
        index = ((a * base + b) * base + c) * base + d
        index = np.pad(index, ((0, rows - index.shape[0]), (0, cols - index.shape[1])))
        features.append(index)
    bins = base**4
    ys = list(range(0, rows - window + 1, stride))
    xs = list(range(0, cols - window + 1, stride))
    # Integral-histogram over stride cells makes each window a sum of (window/stride)^2 cells.
    cell = stride
    ny, nx = rows // cell, cols // cell
    hist = np.zeros((ny, nx, bins), np.float32)
    for index in features:
        idx = index[: ny * cell, : nx * cell].reshape(ny, cell, nx, cell).transpose(0, 2, 1, 3)
        flat = idx.reshape(ny * nx, cell * cell)
        offsets = (np.arange(ny * nx) * bins)[:, None]
        counts = np.bincount((flat + offsets).ravel(), minlength=ny * nx * bins)
        hist += counts.reshape(ny, nx, bins).astype(np.float32)
    span = window // cell
    integral = np.zeros((ny + 1, nx + 1, bins), np.float32)
    integral[1:, 1:] = hist.cumsum(0).cumsum(1)
    gy = np.array([y // cell for y in ys])
    gx = np.array([x // cell for x in xs])
    gy, gx = gy[gy + span <= ny], gx[gx + span <= nx]
    win = (
        integral[gy[:, None] + span, gx[None, :] + span]
        - integral[gy[:, None], gx[None, :] + span]
        - integral[gy[:, None] + span, gx[None, :]]
        + integral[gy[:, None], gx[None, :]]
    )
    shape = win.shape[:2]
    x = np.sqrt(win.reshape(-1, bins) / np.maximum(win.reshape(-1, bins).sum(1, keepdims=True), 1))
    x = x - x.mean(0)
    # Principal axes from the covariance of a subsample (eigh of 625x625 beats an SVD of the rows;
    # asking LAPACK for the leading ``components`` alone is about 3x faster than all 625).
    sample = x[:: max(1, x.shape[0] // 3000)]
    _, vectors = scipy.linalg.eigh(
        sample.T @ sample, subset_by_index=[bins - components, bins - 1], driver="evr"
    )
    z = x @ vectors[:, ::-1]
    llr, separation = _two_class_em(z, iterations)
    score = llr.reshape(shape)
    heat = 1.0 / (1.0 + np.exp(-np.clip(score, -30, 30)))
    # Window centres sit at (y + window/2); place the coarse map on the image grid.
    full = cv2.resize(heat.astype(np.float32), (shape[1] * stride, shape[0] * stride))
    top = window // 2 - stride // 2
    out = np.zeros((rows, cols), np.float32)
    h, w = min(full.shape[0], rows - top), min(full.shape[1], cols - top)
    out[top : top + h, top : top + w] = full[:h, :w]
    out = cv2.copyMakeBorder(
        out[top : top + h, top : top + w],
        top,
        rows - top - h,
        top,
        cols - top - w,
        cv2.BORDER_REPLICATE,
    )
    return out.astype(np.float32), separation


def _two_class_em(
    z: npt.NDArray[np.float64], iterations: int
) -> tuple[npt.NDArray[np.float64], float]:
    """Fit bulk (Gaussian) vs outlier (Gaussian, prior <= 0.5) by EM; per-row log-ratio."""
    n, d = z.shape
    center = np.median(z, axis=0)
    distance = np.linalg.norm(z - center, axis=1)
    weight = (distance > np.percentile(distance, 85)).astype(np.float64)
    ridge = 1e-3 * np.eye(d)
    llr = np.zeros(n)
    mu0 = mu1 = center
    cov0 = np.cov(z.T) + ridge
    for _ in range(iterations):
        w1 = np.clip(weight, 1e-6, 1 - 1e-6)
        w0 = 1 - w1
        prior = float(np.clip(w1.mean(), 0.01, 0.5))
        s0, s1 = float(w0.sum()), float(w1.sum())
        # Weighted means and covariances as matrix products (BLAS), not broadcast copies.
        mu0, mu1 = (w0 @ z) / s0, (w1 @ z) / s1
        c0, c1 = z - mu0, z - mu1
        cov0 = ((c0.T * w0) @ c0) / s0 + ridge
        cov1 = ((c1.T * w1) @ c1) / s1 + ridge
        ll0 = _gauss_loglik(c0, cov0)
        ll1 = _gauss_loglik(c1, cov1)
        llr = ll1 - ll0 + np.log(prior / (1 - prior))
        weight = 1.0 / (1.0 + np.exp(-np.clip(llr, -50, 50)))
    diff = mu1 - mu0
    separation = float(np.sqrt(max(float(diff @ np.linalg.solve(cov0, diff)), 0.0)))
    return llr, separation


def _gauss_loglik(
    centered: npt.NDArray[np.float64], cov: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Gaussian log-likelihood (without the 2 pi term) of rows already centred on the mean, by
    Cholesky: one triangular solve instead of a general one, and the log-determinant from the
    factor's diagonal (``cov`` is symmetric positive definite: a covariance plus a ridge)."""
    factor = np.linalg.cholesky(cov)
    solved = scipy.linalg.solve_triangular(factor, centered.T, lower=True, check_finite=False)
    logdet = 2.0 * float(np.log(np.diag(factor)).sum())
    return -0.5 * (np.einsum("ij,ij->j", solved, solved) + logdet)
