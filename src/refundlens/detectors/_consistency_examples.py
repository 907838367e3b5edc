"""Two views of one item, for the contract test and the unit tests: the same crack seen from
another angle under other light (agrees), a crack in one view only, two different cracks, and a
second view that shares almost nothing.

Everything is generated: a textured box standing on a plain table (``_examples._product``), the
second view its plane turned by a known angle about the vertical axis (an exact homography).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import numpy.typing as npt

from .. import synth
from ..media import Media, media_from_bytes
from ._examples import _product
from .base import Context, Example

RGB = npt.NDArray[np.uint8]


def tilt_homography(shape: tuple[int, int], degrees: float) -> npt.NDArray[np.float64]:
    """The image of a plane facing the camera after the plane turns by ``degrees`` about its
    vertical axis through the image centre (a pinhole camera, focal length 1.2 x the longest
    side): source (x, y) -> view (x, y)."""
    rows, cols = shape
    f = 1.2 * max(rows, cols)
    t = math.radians(degrees)
    cx, cy = (cols - 1) / 2, (rows - 1) / 2
    centre = np.array([[1, 0, cx], [0, 1, cy], [0, 0, 1]], np.float64)
    m = np.array([[f * math.cos(t), 0, 0], [0, f, 0], [math.sin(t), 0, f]], np.float64)
    return centre @ m @ np.linalg.inv(centre)


def scene(seed: int) -> tuple[RGB, npt.NDArray[np.bool_]]:
    """A product on a table (an uneven grey backdrop) and the product's mask."""
    product = _product(seed, 320)
    rng = np.random.default_rng(seed + 1000)
    canvas = np.empty((400, 400, 3), np.float32)
    ramp = np.linspace(150, 200, 400, dtype=np.float32)
    canvas[:] = ramp[:, None, None]
    canvas += rng.normal(0, 2, canvas.shape).astype(np.float32)
    canvas[40:360, 40:360] = product
    # A plain printed panel (a label's white field) where the crack runs: a crack shows on any
    # surface, and on a plain one it stands out as it does on a carton.
    canvas[200:250, 200:250] = 205.0
    obj = np.zeros((400, 400), bool)
    obj[80:320, 80:320] = True  # the printed box inside the product photo
    return np.clip(canvas, 0, 255).astype(np.uint8), obj


def new_exposure(image: RGB, seed: int, *, degrees: float = 30.0, crop: float = 1.0) -> RGB:
    """``image`` seen again: the plane turned by ``degrees``, another light (gain, gamma, a
    brightness gradient), a little blur, sensor noise; ``crop`` < 1 keeps only that share of the
    width at the left edge (a view that shares little)."""
    rng = np.random.default_rng(seed)
    rows, cols = image.shape[:2]
    h = tilt_homography((rows, cols), degrees)
    view = cv2.warpPerspective(
        image, h, (cols, rows), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
    ).astype(np.float32)
    x = view / 255.0
    x = x ** rng.uniform(0.8, 1.25)
    light = np.linspace(0.8, 1.1, cols, dtype=np.float32)[None, :, None]
    x = x * light * rng.uniform(0.85, 1.05)
    view = cv2.GaussianBlur(x * 255.0, (0, 0), 0.7) + rng.normal(0, 2.5, x.shape)
    out = np.clip(view, 0, 255).astype(np.uint8)
    if crop < 1.0:
        out = np.ascontiguousarray(out[:, : max(16, int(cols * crop))])
    return out


def _jpeg(image: RGB, name: str, quality: int = 88) -> Media:
    return media_from_bytes(synth.jpeg_bytes(image, quality), name)


def crack(image: RGB, obj: npt.NDArray[np.bool_], seed: int, share: float = 0.03) -> RGB:
    """A dark crack, 3 px wide, painted over about ``share`` of the box."""
    rng = np.random.default_rng(seed)
    damaged, _ = synth.paint_damage(image, obj, "stain", share * 0.5, seed)
    mask = np.zeros(image.shape[:2], np.uint8)
    y, x = (int(v) for v in rng.integers(210, 240, 2))
    angle = rng.uniform(0, 2 * np.pi)
    points = [(x, y)]
    for _ in range(6):
        angle += rng.normal(0, 0.5)
        x, y = int(x + 8 * np.cos(angle)), int(y + 8 * np.sin(angle))
        points.append((x, y))
    cv2.polylines(mask, [np.array(points, np.int32).reshape(-1, 1, 2)], False, 1, 3, cv2.LINE_AA)
    alpha = (cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.6) * 0.9)[..., None]
    out = damaged.astype(np.float32) * (1 - alpha) + 25.0 * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def damage_box(before: RGB, after: RGB, grow: float = 0.25) -> tuple[float, float, float, float]:
    """The box a buyer would draw around what ``after`` added to ``before``: its bounds, a
    quarter larger, as fractions of the frame."""
    rows, cols = before.shape[:2]
    ys, xs = np.nonzero(np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2) > 12)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad_y, pad_x = grow * (bottom - top) / 2, grow * (right - left) / 2
    return (
        float(max(0.0, (left - pad_x) / cols)),
        float(max(0.0, (top - pad_y) / rows)),
        float(min(1.0, (right + pad_x) / cols)),
        float(min(1.0, (bottom + pad_y) / rows)),
    )


def marked_pair(kind: str, seed: int = 31) -> tuple[Media, Context]:
    """:func:`pair` with the buyer's box around the claim photo's damage."""
    claim, context = pair(kind, seed)
    base, obj = scene(seed)
    box = damage_box(base, crack(base, obj, seed))
    return claim, dataclasses.replace(context, damage_marks={claim.sha256: box})


def shop_reference(seed: int = 31) -> Media:
    """The merchant's photo of the intact item: the undamaged scene from 20 degrees the other
    way, under its own light."""
    base, _ = scene(seed)
    return _jpeg(new_exposure(base, seed + 500, degrees=-20.0), "shop.jpg", 90)


def marked_with_reference(kind: str, seed: int = 31) -> tuple[Media, Context]:
    """``same``: :func:`marked_pair` with the shop's photo of the intact item as the SKU's
    reference. ``intact_spot``: two photos of the undamaged item, the box drawn around a spot
    both show (what a forger who keeps the added damage out of the live capture would box), and
    the same reference."""
    if kind == "same":
        claim, context = marked_pair("same", seed)
    elif kind == "intact_spot":
        claim, context = pair("no_damage", seed)
        context = dataclasses.replace(context, damage_marks={claim.sha256: (0.3, 0.3, 0.42, 0.42)})
    else:
        raise ValueError(kind)
    return claim, dataclasses.replace(context, references=(shop_reference(seed),))


def pair(kind: str, seed: int = 31, degrees: float = 30.0) -> tuple[Media, Context]:
    """Two photos of one claim: ``same`` crack in both, ``one_only``, ``independent`` cracks,
    ``no_damage`` in either, or ``tiny_overlap``."""
    base, obj = scene(seed)
    if kind == "same":
        damaged = crack(base, obj, seed)
        first, second = damaged, new_exposure(damaged, seed, degrees=degrees)
    elif kind == "one_only":
        first, second = crack(base, obj, seed), new_exposure(base, seed, degrees=degrees)
    elif kind == "independent":
        first = crack(base, obj, seed)
        second = new_exposure(crack(base, obj, seed + 7), seed, degrees=degrees)
    elif kind == "no_damage":
        first, second = base, new_exposure(base, seed, degrees=degrees)
    elif kind == "tiny_overlap":
        first, second = base, new_exposure(base, seed, degrees=degrees, crop=0.16)
    else:
        raise ValueError(kind)
    claim = _jpeg(first, "claim.jpg")
    other = _jpeg(second, "capture.jpg", 84)
    return claim, Context(views=(other,), live_captures=frozenset({other.sha256}))


def consistency_examples() -> list[Example]:
    return [
        Example(
            "the same crack from 30 degrees further round, under other light: agrees",
            lambda: pair("same"),
            frozenset({"consistency.damage_confirmed"}),
        ),
        Example(
            "the same crack, and the buyer's box around it on the claim photo: the marked "
            "damage itself was compared",
            lambda: marked_pair("same"),
            frozenset({"consistency.marked_damage_confirmed"}),
        ),
        Example(
            "the same crack, boxed, and the shop's photo of the intact item: the marked spot "
            "differs from the intact item, so the agreement confirms damage",
            lambda: marked_with_reference("same"),
            frozenset({"consistency.marked_damage_confirmed"}),
        ),
        Example(
            "an undamaged spot boxed in two photos of the intact item, which the shop's photo "
            "shows the same: the agreement confirms no damage",
            lambda: marked_with_reference("intact_spot"),
            frozenset({"consistency.mark_matches_intact_reference"}),
        ),
        Example(
            "a crack the buyer marked that the live capture of the same surface lacks",
            lambda: marked_pair("one_only"),
            frozenset({"consistency.damage_missing_in_other_view"}),
        ),
        Example(
            "two different cracks painted into two photos of one surface",
            lambda: pair("independent"),
            frozenset({"consistency.damage_missing_in_other_view"}),
        ),
        Example(
            "a second view that shares almost no surface: cannot tell",
            lambda: pair("tiny_overlap"),
            frozenset({"consistency.cannot_tell"}),
        ),
        Example(
            "a claim with one photo: abstains", lambda: (pair("same")[0], Context()), frozenset()
        ),
    ]
