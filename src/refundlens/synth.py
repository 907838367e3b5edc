"""Synthetic damage and the transforms forgers and phones apply, for examples, tests and benches.

Every painter takes an RGB uint8 image, a boolean ``where`` mask (the object), a target share of
that object to cover and a NumPy ``Generator``; it returns the damaged image and the boolean mask
of the pixels it changed. Transforms return the image and the mask carried along with it.
Arrays are (row, col[, channel]).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = [
    "DAMAGE_STYLES",
    "TRANSFORMS",
    "jpeg_bytes",
    "paint_damage",
    "photograph_on_screen",
    "transform",
]

RGB = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]


def _blob(shape: tuple[int, int], area: float, rng: np.random.Generator, where: Mask) -> Mask:
    """An irregular blob of about ``area`` pixels centred inside ``where``."""
    rows, cols = np.nonzero(where)
    i = rng.integers(len(rows))
    cy, cx = int(rows[i]), int(cols[i])
    radius = max(3.0, np.sqrt(area / np.pi))
    noise = cv2.GaussianBlur(
        rng.standard_normal(shape).astype(np.float32), (0, 0), max(1.0, radius / 3)
    )
    noise /= noise.std() + 1e-6
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    aspect = rng.uniform(0.6, 1.6)
    dist = np.sqrt(((yy - cy) * aspect) ** 2 + ((xx - cx) / aspect) ** 2) / radius
    field = dist - 0.35 * noise
    # choose the level that gives the wanted area
    level = np.quantile(field, min(0.999, area / field.size))
    return (field <= level) & where


def _polyline_mask(
    shape: tuple[int, int],
    area: float,
    rng: np.random.Generator,
    where: Mask,
    width: int,
    branches: int,
) -> Mask:
    mask = np.zeros(shape, np.uint8)
    rows, cols = np.nonzero(where)
    length_needed = area / max(1, width)
    drawn = 0.0
    guard = 0
    while drawn < length_needed and guard < 50:
        guard += 1
        i = rng.integers(len(rows))
        y, x = float(rows[i]), float(cols[i])
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(branches):
            steps = int(rng.integers(8, 30))
            pts = [(x, y)]
            for _ in range(steps):
                angle += rng.normal(0, 0.5)
                step = rng.uniform(2, 6) * max(1, width / 2)
                x, y = x + step * np.cos(angle), y + step * np.sin(angle)
                pts.append((x, y))
            arr = np.array(pts, np.int32).reshape(-1, 1, 2)
            cv2.polylines(mask, [arr], False, 1, thickness=width, lineType=cv2.LINE_AA)
            drawn = float(mask.sum()) / max(1, width)
            angle += rng.uniform(-1.2, 1.2)
    return (mask > 0) & where


def _blend(image: RGB, colour: npt.NDArray[np.float32], alpha: npt.NDArray[np.float32]) -> RGB:
    out = image.astype(np.float32) * (1 - alpha[..., None]) + colour * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _soft(mask: Mask, sigma: float) -> npt.NDArray[np.float32]:
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma) * 1.2, 0, 1)


def crack(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    area = share * where.sum()
    width = max(1, int(np.sqrt(image.shape[0] * image.shape[1]) / 250))
    m = _polyline_mask(where.shape, area, rng, where, width, branches=3)
    shade = rng.uniform(10, 50)
    return _blend(image, np.full(3, shade, np.float32), _soft(m, 0.6) * 0.9), m


def scratch(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    area = share * where.sum()
    m = _polyline_mask(where.shape, area, rng, where, 1 + int(rng.integers(0, 2)), branches=1)
    return _blend(image, np.full(3, rng.uniform(200, 245), np.float32), _soft(m, 0.5) * 0.8), m


def stain(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    m = _blob(where.shape, share * where.sum(), rng, where)
    colour = np.array([rng.uniform(60, 140), rng.uniform(40, 110), rng.uniform(10, 70)], np.float32)
    alpha = _soft(m, 2.0) * rng.uniform(0.45, 0.8)
    return _blend(image, colour, alpha), m & (alpha > 0.15)


def tear(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    m = _blob(where.shape, share * where.sum(), rng, where)
    jag = cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~m
    out = _blend(image, np.full(3, rng.uniform(15, 45), np.float32), m.astype(np.float32) * 0.92)
    out = _blend(out, np.full(3, 235, np.float32), jag.astype(np.float32) * 0.8)
    return out, m | jag


def chip(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    m = _blob(where.shape, share * where.sum(), rng, where)
    base = rng.uniform(150, 210)
    grain = rng.normal(0, 12, image.shape[:2]).astype(np.float32)
    out = image.astype(np.float32)
    out[m] = np.clip(base + grain[m], 0, 255)[:, None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), m


def dent(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    m = _blob(where.shape, share * where.sum(), rng, where)
    shade = _soft(m, 4.0)
    dy = cv2.Sobel(shade, cv2.CV_32F, 0, 1, ksize=5)
    light = 1.0 - 0.45 * shade + 2.5 * dy
    out = np.clip(image.astype(np.float32) * light[..., None], 0, 255)
    changed = np.abs(out - image).max(axis=2) > 8
    return (out + 0.5).astype(np.uint8), changed & where


def strokes(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    area = share * where.sum()
    width = max(2, int(np.sqrt(image.shape[0] * image.shape[1]) / 120))
    m = _polyline_mask(where.shape, area, rng, where, width, branches=2)
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    return _blend(image, colour, _soft(m, 0.8)), m


def pasted_texture(
    image: RGB, where: Mask, share: float, rng: np.random.Generator
) -> tuple[RGB, Mask]:
    m = _blob(where.shape, share * where.sum(), rng, where)
    tex = rng.normal(0, 1, image.shape).astype(np.float32)
    tex = cv2.GaussianBlur(tex, (0, 0), 1.5) * 40 + rng.uniform(60, 160, 3).astype(np.float32)
    alpha = _soft(m, 2.5) * rng.uniform(0.6, 0.95)
    out = image.astype(np.float32) * (1 - alpha[..., None]) + tex * alpha[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), m & (alpha > 0.15)


def darkening(image: RGB, where: Mask, share: float, rng: np.random.Generator) -> tuple[RGB, Mask]:
    m = _blob(where.shape, share * where.sum(), rng, where)
    alpha = _soft(m, 3.0)
    factor = 1 - alpha * rng.uniform(0.35, 0.6)
    tint = 1 + alpha[..., None] * (rng.uniform(-0.25, 0.25, 3)).astype(np.float32)
    out = image.astype(np.float32) * factor[..., None] * tint
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), m


DAMAGE_STYLES: dict[str, Callable[[RGB, Mask, float, np.random.Generator], tuple[RGB, Mask]]] = {
    "crack": crack,
    "stain": stain,
    "tear": tear,
    "scratch": scratch,
    "chip": chip,
    "dent": dent,
    "strokes": strokes,
    "pasted_texture": pasted_texture,
    "darkening": darkening,
}


def paint_damage(image: RGB, where: Mask, style: str, share: float, seed: int) -> tuple[RGB, Mask]:
    """Paint ``style`` damage over about ``share`` (0-1) of the ``where`` pixels."""
    rng = np.random.default_rng(seed)
    out, mask = DAMAGE_STYLES[style](image, where, share, rng)
    return out, mask


# --- transforms: (image, mask, rng) -> (image, mask) -----------------------------------------


def _warp(
    image: RGB, mask: Mask, h: npt.NDArray[np.float64], size: tuple[int, int]
) -> tuple[RGB, Mask]:
    out = cv2.warpPerspective(
        image,
        h,
        size,
        flags=cv2.INTER_AREA if abs(np.linalg.det(h[:2, :2])) < 1 else cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(255, 255, 255),
    )
    m = cv2.warpPerspective(mask.astype(np.uint8) * 255, h, size, flags=cv2.INTER_LINEAR) >= 128
    return out, m


def _crop(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    rows, cols = image.shape[:2]
    keep = rng.uniform(0.6, 0.9)
    h, w = int(rows * keep), int(cols * keep)
    # keep the damage in frame, as a forger would
    ys, xs = np.nonzero(mask)
    y0 = int(np.clip(rng.integers(0, rows - h + 1), 0, rows - h))
    x0 = int(np.clip(rng.integers(0, cols - w + 1), 0, cols - w))
    if ys.size:
        y0 = int(np.clip(ys.mean() - h / 2, 0, rows - h))
        x0 = int(np.clip(xs.mean() - w / 2, 0, cols - w))
    return image[y0 : y0 + h, x0 : x0 + w].copy(), mask[y0 : y0 + h, x0 : x0 + w].copy()


def _scale(
    image: RGB, mask: Mask, rng: np.random.Generator, lo: float = 0.5, hi: float = 2.0
) -> tuple[RGB, Mask]:
    f = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    size = (max(8, round(image.shape[1] * f)), max(8, round(image.shape[0] * f)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, size, interpolation=interp), cv2.resize(
        mask.astype(np.uint8) * 255, size
    ) >= 128


def _rotate(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    angle = rng.uniform(-180, 180)
    rows, cols = image.shape[:2]
    m = cv2.getRotationMatrix2D((cols / 2, rows / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    w, h = int(rows * sin + cols * cos), int(rows * cos + cols * sin)
    m[0, 2] += w / 2 - cols / 2
    m[1, 2] += h / 2 - rows / 2
    return _warp(image, mask, np.vstack([m, [0, 0, 1]]), (w, h))


def _mirror(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1])


def _perspective(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    rows, cols = image.shape[:2]
    src = np.array([[0, 0], [cols, 0], [cols, rows], [0, rows]], np.float32)
    jitter = rng.uniform(-0.08, 0.08, (4, 2)) * [cols, rows]
    dst = (src + jitter).astype(np.float32)
    dst -= dst.min(axis=0)
    h = cv2.getPerspectiveTransform(src, dst)
    size = (int(dst[:, 0].max()) + 1, int(dst[:, 1].max()) + 1)
    return _warp(image, mask, h.astype(np.float64), size)


def _tone(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    x = image.astype(np.float32) / 255
    x = x ** rng.uniform(0.7, 1.4)
    x = (x - 0.5) * rng.uniform(0.75, 1.3) + 0.5 + rng.uniform(-0.12, 0.12)
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8), mask


def _colour(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-12, 12)) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.6, 1.5), 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB), mask


def _blur(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.6, 1.8)), mask


def _sharpen(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    soft = cv2.GaussianBlur(image, (0, 0), 1.0).astype(np.float32)
    out = image + rng.uniform(0.5, 1.5) * (image.astype(np.float32) - soft)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask


def _resave(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    for _ in range(int(rng.integers(2, 4))):
        image = decode_jpeg(jpeg_bytes(image, int(rng.integers(70, 92))))
    return image, mask


def _border_caption(image: RGB, mask: Mask, rng: np.random.Generator) -> tuple[RGB, Mask]:
    rows, cols = image.shape[:2]
    top, bottom = int(rows * rng.uniform(0.05, 0.12)), int(rows * rng.uniform(0.1, 0.2))
    side = int(cols * rng.uniform(0.0, 0.05))
    colour = (245, 245, 245) if rng.random() < 0.5 else (20, 20, 20)
    out = cv2.copyMakeBorder(image, top, bottom, side, side, cv2.BORDER_CONSTANT, value=colour)
    ink = (20, 20, 20) if colour[0] > 128 else (235, 235, 235)
    cv2.putText(
        out,
        "12:41  4G  87%",
        (side + 8, max(12, top - 8)),
        cv2.FONT_HERSHEY_SIMPLEX,
        max(0.3, cols / 1400),
        ink,
        1,
        cv2.LINE_AA,
    )
    cv2.putText(
        out,
        "Order 2025-0917 arrived damaged",
        (side + 8, top + rows + bottom // 2),
        cv2.FONT_HERSHEY_SIMPLEX,
        max(0.35, cols / 1200),
        ink,
        1,
        cv2.LINE_AA,
    )
    m = cv2.copyMakeBorder(
        mask.astype(np.uint8), top, bottom, side, side, cv2.BORDER_CONSTANT, value=0
    )
    return out, m.astype(bool)


TRANSFORMS: dict[str, Callable[[RGB, Mask, np.random.Generator], tuple[RGB, Mask]]] = {
    "none": lambda i, m, r: (i, m),
    "crop": _crop,
    "scale": _scale,
    "rotate": _rotate,
    "mirror": _mirror,
    "perspective": _perspective,
    "tone": _tone,
    "colour": _colour,
    "blur": _blur,
    "sharpen": _sharpen,
    "resave": _resave,
    "border_caption": _border_caption,
}


def transform(image: RGB, mask: Mask, name: str, seed: int) -> tuple[RGB, Mask]:
    """Apply the named forger/phone transform to the image and carry the mask along."""
    return TRANSFORMS[name](image, mask, np.random.default_rng(seed))


def photograph_on_screen(image: RGB, seed: int, *, severity: float = 1.0) -> RGB:
    """``image`` shown on a screen and photographed with a phone: the cheap way around a
    reference check, which the issue names (moire, screen grid, bezel).

    The photo fills 55 to 75% of the frame's width, seen in perspective, inside a dark bezel on
    a desk. The screen shifts the white balance; the beat between its pixel grid and the
    sensor's draws moire bands; a lamp leaves a glare; the camera blurs and adds noise.
    ``severity`` (about 0.5 to 1.5) scales the moire, glare, blur and noise together.
    """
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    out_w = round(float(w) / rng.uniform(0.55, 0.75))
    out_h = round(out_w * 0.75)
    desk = np.array(rng.uniform(60, 160, 3), np.float32)
    canvas = np.empty((out_h, out_w, 3), np.float32)
    canvas[:] = desk
    scale = min(out_w * 0.9 / w, out_h * 0.85 / h) * rng.uniform(0.85, 1.0)
    cx, cy = out_w / 2 + rng.uniform(-0.05, 0.05) * out_w, out_h / 2
    jitter = 0.06 * min(w, h) * scale
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    dst = corners * scale + [cx, cy] + rng.uniform(-jitter, jitter, (4, 2))
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    homography = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    rim = 0.06 * max(w, h)
    bezel = np.array(
        [[-rim, -rim], [w + rim, -rim], [w + rim, h + rim], [-rim, h + rim]], np.float32
    )
    quad = cv2.perspectiveTransform(bezel.reshape(-1, 1, 2), homography).reshape(-1, 2)
    cv2.fillConvexPoly(canvas, quad.astype(np.int32), (14, 14, 16))
    shown = image.astype(np.float32) * rng.uniform(0.9, 1.1, 3).astype(np.float32)
    warped = cv2.warpPerspective(shown, homography, (out_w, out_h))
    inside = cv2.warpPerspective(np.ones((h, w), np.float32), homography, (out_w, out_h)) > 0.5
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    f1, f2 = rng.uniform(0.06, 0.11, 2)
    moire = 1 + 0.3 * severity * np.cos(2 * np.pi * (xx * f1 + yy * 0.02)) * np.cos(
        2 * np.pi * (yy * f2 - xx * 0.015)
    )
    gy, gx = rng.uniform(0.2, 0.8) * out_h, rng.uniform(0.2, 0.8) * out_w
    glare = 80 * severity * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.15 * out_w) ** 2))
    warped = warped * moire[..., None] + glare[..., None]
    canvas[inside] = warped[inside]
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.8 + 1.2 * severity)
    canvas += rng.normal(0, 3 + 4 * severity, canvas.shape).astype(np.float32)
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def jpeg_bytes(image: RGB, quality: int) -> bytes:
    """Encode RGB uint8 as a baseline JPEG with libjpeg's tables for ``quality``."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=int(quality))
    return buf.getvalue()


def decode_jpeg(data: bytes) -> RGB:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
