"""Claims with an unboxing video, for the contract test: a frame supports the photo, or the photo
is a frame with damage painted in."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from .. import synth
from ..media import Media, media_from_bytes
from ._examples import _product
from .base import Context, Example


def _jpeg(rgb: np.ndarray, name: str, quality: int = 92) -> Media:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return media_from_bytes(out.getvalue(), name)


def _scene(seed: int, shift: int = 0) -> np.ndarray:
    product = _product(seed)
    rows, cols = product.shape[:2]
    canvas = np.full((rows + 60, cols + 80, 3), 230, np.uint8)
    canvas[30 : 30 + rows, 40 + shift : 40 + shift + cols] = product
    return canvas


def _new_view(seed: int) -> np.ndarray:
    """The same scene photographed again: slightly rotated and zoomed, other light, sensor noise."""
    import cv2

    scene = _scene(seed).astype(np.float32)
    rows, cols = scene.shape[:2]
    matrix = cv2.getRotationMatrix2D((cols / 2, rows / 2), 4.0, 1.05)
    view = cv2.warpAffine(scene, matrix, (cols, rows), borderValue=(230, 230, 230))
    view = view * 0.9 + 12 + np.random.default_rng(seed).normal(0, 3.0, view.shape)
    return np.clip(view, 0, 255).astype(np.uint8)


def _sample(file: str, name: str) -> Media:
    from importlib import resources

    return media_from_bytes(
        resources.files("refundlens").joinpath("samples", file).read_bytes(), name
    )


def _painted(seed: int) -> Media:
    frame = _scene(seed)
    damaged, _ = synth.paint_damage(frame, frame.min(axis=2) < 220, "crack", 0.04, seed=seed)
    return _jpeg(damaged, "claim.jpg", 88)


def unboxing_examples() -> list[Example]:
    return [
        Example(
            # Two real exposures of one carton (the bundled samples): a drawn scene with noise
            # added reads as a copy of the frame, which supports nothing.
            "a new photo of the product the unboxing video shows supports the buyer",
            lambda: (
                _sample("claim_genuine.jpg", "claim.jpg"),
                Context(unboxing=(_sample("listing.jpg", "unboxing.mp4@3.0s"),)),
            ),
            frozenset({"unboxing.same_scene"}),
        ),
        Example(
            "a frame of the unboxing video with damage painted in is caught",
            lambda: (_painted(22), Context(unboxing=(_jpeg(_scene(22), "unboxing.mp4@2.0s"),))),
            frozenset({"unboxing.photo_differs_from_video"}),
        ),
        Example(
            "a video made of the claim photo itself supports nothing",
            lambda: (
                _jpeg(_scene(25), "claim.jpg", 88),
                Context(
                    unboxing=tuple(
                        _jpeg(_scene(25), f"unboxing.mp4@{n / 10:.1f}s", 88) for n in range(3)
                    )
                ),
            ),
            frozenset(),
        ),
        Example(
            "an unrelated video says nothing",
            lambda: (
                _jpeg(_new_view(23), "claim.jpg"),
                Context(unboxing=(_jpeg(_scene(24), "unboxing.mp4@1.0s"),)),
            ),
            frozenset(),
        ),
    ]
