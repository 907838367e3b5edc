"""The forgeries the benchmark makes from camera originals, and the pixel detector's net learns from.

Each recipe takes an RGB uint8 photo and returns the forged photo with its truth mask. They import
nothing but NumPy and OpenCV so that the training script (training/pixels_net) runs them on a
machine that has no refundlens installed.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["KINDS", "forge"]


def _blob(shape: tuple[int, int], rng: np.random.Generator, share: float) -> np.ndarray:
    rows, cols = shape
    mask = np.zeros(shape, np.uint8)
    area = share * rows * cols
    ry = int(np.sqrt(area / np.pi) * rng.uniform(0.7, 1.4))
    rx = int(area / (np.pi * max(ry, 1)))
    cy = int(rng.uniform(ry + 8, max(ry + 9, rows - ry - 8)))
    cx = int(rng.uniform(rx + 8, max(rx + 9, cols - rx - 8)))
    cv2.ellipse(mask, (cx, cy), (max(rx, 4), max(ry, 4)), float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask.astype(bool)


def _feather(mask: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)[..., None]


KINDS = ("splice", "copy_move", "inpaint", "smooth_regrain", "diffusion_like")


def forge(
    kind: str, image: np.ndarray, donor: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``image`` forged by recipe ``kind`` (one of :data:`KINDS`), and the mask of what changed.

    The edited area is an ellipse of 1 to 12 % of the image (log-uniform), feathered by 1 to 2 px.
    """
    rows, cols = image.shape[:2]
    share = float(np.exp(rng.uniform(np.log(0.01), np.log(0.12))))
    mask = _blob((rows, cols), rng, share)
    out = image.astype(np.float32)
    if kind == "splice":
        patch = cv2.resize(donor, (cols, rows), interpolation=cv2.INTER_AREA).astype(np.float32)
        alpha = _feather(mask, 1.0)
        out = out * (1 - alpha) + patch * alpha
    elif kind == "copy_move":
        ys, xs = np.nonzero(mask)
        h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        dy = int(rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * h)
        dx = int(rng.choice([-1, 1]) * rng.uniform(0.5, 1.0) * w)
        dy = int(np.clip(dy, -ys.min(), rows - 1 - ys.max()))
        dx = int(np.clip(dx, -xs.min(), cols - 1 - xs.max()))
        shifted = np.roll(np.roll(image, dy, 0), dx, 1).astype(np.float32)
        moved = np.roll(np.roll(mask, dy, 0), dx, 1)
        alpha = _feather(moved, 1.0)
        out = out * (1 - alpha) + shifted * alpha
        mask = moved
    elif kind == "inpaint":
        out = cv2.inpaint(image, mask.astype(np.uint8), 5, cv2.INPAINT_TELEA).astype(np.float32)
    elif kind == "smooth_regrain":
        smooth = cv2.GaussianBlur(image, (0, 0), 3.0).astype(np.float32)
        smooth += rng.normal(0, rng.uniform(0.5, 2.0), smooth.shape).astype(np.float32)
        alpha = _feather(mask)
        out = out * (1 - alpha) + smooth * alpha
    elif kind == "diffusion_like":
        # An autoencoder's decode: detail from a 4x smaller latent, then fresh uniform grain.
        small = cv2.resize(
            image, (max(1, cols // 4), max(1, rows // 4)), interpolation=cv2.INTER_AREA
        )
        decoded = cv2.resize(small, (cols, rows), interpolation=cv2.INTER_CUBIC).astype(np.float32)
        decoded += rng.normal(0, 1.5, (rows, cols, 1)).astype(np.float32)
        alpha = _feather(mask)
        out = out * (1 - alpha) + decoded * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask
