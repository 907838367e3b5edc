"""The listing photo with damage painted in, then resampled by a factor of 0.5 to 2 with one of
the common kernels, as an editor, a chat app or a phone would: cases for bench/run_resize.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from refundlens import synth
from refundlens.detectors.residual import background_mask

from . import cases as bench_cases

FACTORS = (0.5, 0.67, 0.8, 0.9, 1.1, 1.25, 1.5, 2.0)
KERNELS = ("nearest", "bilinear", "bicubic", "lanczos", "area", "opencv-linear")
"""PIL's nearest, bilinear, bicubic and Lanczos (antialiased when reducing, as editors do),
OpenCV's area, and OpenCV's bilinear without antialiasing (as phone GPUs and many apps scale)."""

_PIL = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def resample(image: npt.NDArray[np.uint8], factor: float, kernel: str) -> npt.NDArray[np.uint8]:
    size = (max(8, round(image.shape[1] * factor)), max(8, round(image.shape[0] * factor)))
    if kernel in _PIL:
        return np.asarray(Image.fromarray(image).resize(size, _PIL[kernel]))
    interp = cv2.INTER_AREA if kernel == "area" else cv2.INTER_LINEAR
    return cv2.resize(image, size, interpolation=interp)


@dataclasses.dataclass(frozen=True)
class ResizeCase:
    id: str
    split: str
    claim: bytes
    ref: bytes
    mask: npt.NDArray[np.bool_]
    style: str
    share: float
    factor: float
    kernel: str
    source: str


def resize_cases(n: int, seed: int, split: str) -> Iterator[ResizeCase]:
    """``n`` cases of ``split``: every (factor, kernel) in turn, damage styles in turn, damage
    shares log-uniform in 0.3%-10% of the object (as bench/cases.py; a fifth under 0.5%), JPEG q85."""
    rng = np.random.default_rng(seed)
    sources = [s for s in bench_cases.listing_sources() if bench_cases.split_of(s) == split]
    styles = sorted(synth.DAMAGE_STYLES)
    cells = [(f, k) for f in FACTORS for k in KERNELS]
    made = 0
    while made < n:
        src = sources[int(rng.integers(len(sources)))]
        try:
            image = bench_cases._load(bench_cases.DATA / src)
        except OSError:
            continue
        if min(image.shape[:2]) < 96:
            continue
        obj = ~background_mask(image)
        if obj.sum() < 0.2 * obj.size:
            obj = np.ones_like(obj)
        style = styles[made % len(styles)]
        share = float(np.exp(rng.uniform(np.log(0.003), np.log(0.10))))
        case_seed = int(rng.integers(1 << 31))
        damaged, mask = synth.paint_damage(image, obj, style, share, case_seed)
        if mask.sum() < 20:
            continue
        factor, kernel = cells[made % len(cells)]
        out = resample(damaged, factor, kernel)
        m = cv2.resize(mask.astype(np.uint8) * 255, (out.shape[1], out.shape[0])) >= 128
        if m.sum() < 8:
            continue
        yield ResizeCase(
            f"resize-{seed}-{made}",
            split,
            synth.jpeg_bytes(out, 85),
            synth.jpeg_bytes(image, 90),
            m,
            style,
            share,
            factor,
            kernel,
            src,
        )
        made += 1
