"""Crafted images with known answers for pixel forensics; the contract test and the tests use them.

The "camera photo" is smooth random content plus Gaussian sensor noise, so every forgery below is
made the way a forger makes it: from a photo with noise, by pasting, smoothing, cloning or
recompressing.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from ..config import Settings
from ..media import Media, media_from_bytes
from .base import Context, Example

__all__ = [
    "REGENERATED_BOX",
    "camera_photo",
    "cloned",
    "demosaiced",
    "encode",
    "pasted_with_other_compression",
    "pasted_without_demosaicing",
    "pixel_examples",
    "regenerated_shop_photo",
    "regrained_shop_photo",
    "screen_photo",
    "smoothed_patch",
]


def camera_photo(
    seed: int = 1, size: tuple[int, int] = (768, 1024), noise: float = 3.0
) -> np.ndarray:
    """Smooth random scene (RGB uint8) with sensor-like noise of ``noise`` grey levels."""
    rng = np.random.default_rng(seed)
    rows, cols = size
    coarse = rng.uniform(30, 225, (rows // 64 + 2, cols // 64 + 2, 3)).astype(np.float32)
    scene = cv2.resize(coarse, (cols, rows), interpolation=cv2.INTER_CUBIC)
    detail = cv2.resize(
        rng.uniform(-25, 25, (rows // 8, cols // 8, 3)).astype(np.float32), (cols, rows)
    )
    photo = scene + detail + rng.normal(0, noise, (rows, cols, 3)).astype(np.float32)
    return np.clip(photo, 0, 255).astype(np.uint8)


def encode(rgb: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    if fmt == "JPEG":
        Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    else:
        Image.fromarray(rgb).save(buffer, fmt)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def pasted_with_other_compression(seed: int = 1) -> bytes:
    """A photo saved at quality 70, a patch of another photo pasted in, saved again at 92."""
    base = _decode(encode(camera_photo(seed), quality=70))
    other = camera_photo(seed + 100, noise=5.0)
    base[256:512, 384:704] = other[256:512, 384:704]
    return encode(base, quality=92)


def smoothed_patch(seed: int = 1) -> bytes:
    """A noisy photo (PNG) with one patch blurred flat, the way inpainting leaves it."""
    photo = camera_photo(seed, noise=4.0)
    patch = photo[300:520, 350:650]
    photo[300:520, 350:650] = cv2.GaussianBlur(patch, (0, 0), 4.0)
    return encode(photo, "PNG")


def cloned(seed: int = 1) -> bytes:
    """A textured photo with one region copied 400 px to the right."""
    rng = np.random.default_rng(seed)
    photo = camera_photo(seed)
    texture = cv2.resize(
        rng.uniform(0, 255, (96, 128, 3)).astype(np.uint8),
        (1024, 768),
        interpolation=cv2.INTER_NEAREST,
    )
    photo = cv2.addWeighted(photo, 0.5, texture, 0.5, 0)
    photo[200:400, 560:800] = photo[200:400, 100:340]
    return encode(photo, quality=95)


def screen_photo(seed: int = 1) -> bytes:
    """A photo of an LCD: the picture on an RGB sub-pixel grid, photographed slightly rotated."""
    rng = np.random.default_rng(seed)
    shown = camera_photo(seed, size=(400, 520), noise=1.0).astype(np.float32)
    rows, cols = shown.shape[:2]
    up = np.repeat(np.repeat(shown, 3, 0), 3, 1)
    subpixels = np.zeros((1, 3 * cols, 3), np.float32)
    for channel in range(3):
        subpixels[0, channel::3, channel] = 1.0
    screen = up * (0.85 * subpixels + 0.15)
    screen[2::3] *= 0.6
    matrix = cv2.getRotationMatrix2D((1.5 * cols, 1.5 * rows), 2.5, 0.4)
    shot = cv2.warpAffine(screen, matrix, (3 * cols, 3 * rows), flags=cv2.INTER_LINEAR)
    shot = shot[
        int(0.35 * 3 * rows) : int(0.65 * 3 * rows), int(0.33 * 3 * cols) : int(0.67 * 3 * cols)
    ]
    shot = cv2.GaussianBlur(shot, (0, 0), 0.6) + rng.normal(0, 2.0, shot.shape)
    return encode(np.clip(shot, 0, 255).astype(np.uint8), quality=92)


def demosaiced(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as a camera records it: one colour per pixel on a Bayer (BGGR) mosaic, the other
    two interpolated back (OpenCV's bilinear demosaicing)."""
    bayer = np.zeros(rgb.shape[:2], np.uint8)
    bayer[0::2, 0::2] = rgb[0::2, 0::2, 2]
    bayer[1::2, 1::2] = rgb[1::2, 1::2, 0]
    bayer[0::2, 1::2] = rgb[0::2, 1::2, 1]
    bayer[1::2, 0::2] = rgb[1::2, 0::2, 1]
    return cv2.cvtColor(bayer, cv2.COLOR_BayerBG2RGB)


def pasted_without_demosaicing(seed: int = 5) -> bytes:
    """A demosaiced photo (PNG) with a patch of another photo, resized on the way, pasted in:
    the patch carries no Bayer pattern."""
    base = demosaiced(camera_photo(seed, noise=2.0))
    donor = cv2.resize(camera_photo(seed + 1, noise=2.0), None, fx=0.8, fy=0.8)
    rows, cols = base.shape[:2]
    top, left, h, w = rows // 3, cols // 3, rows // 4, cols // 4
    base[top : top + h, left : left + w] = donor[top : top + h, left : left + w]
    return encode(base, "PNG")


def regrained_shop_photo(sigma: float = 3.0, grain: float = 1.0) -> tuple[bytes, np.ndarray]:
    """The bundled shop photo (claim_genuine.jpg, 348x348) with an ellipse smoothed and re-grained,
    as a "beauty" filter or an inpainting tool leaves it, saved as PNG; and the ellipse's mask."""
    from importlib import resources

    data = (resources.files("refundlens.samples") / "claim_genuine.jpg").read_bytes()
    photo = _decode(data)
    rows, cols = photo.shape[:2]
    mask = np.zeros((rows, cols), np.uint8)
    cv2.ellipse(mask, (2 * cols // 3, rows // 3), (cols // 8, rows // 10), 20, 0, 360, 1, -1)
    smooth = cv2.GaussianBlur(photo, (0, 0), sigma).astype(np.float32)
    smooth += np.random.default_rng(0).normal(0, grain, photo.shape).astype(np.float32)
    out = np.where(mask[..., None] > 0, np.clip(smooth + 0.5, 0, 255), photo).astype(np.uint8)
    return encode(out, "PNG"), mask.astype(bool)


# Where regenerated_patch.png goes in the shop photo: top, left, rows, cols (16-pixel cells).
REGENERATED_BOX = (96, 96, 160, 160)


def _shop_photo() -> np.ndarray:
    from importlib import resources

    return _decode((resources.files("refundlens.samples") / "claim_genuine.jpg").read_bytes())


def regenerated_shop_photo() -> tuple[bytes, np.ndarray]:
    """The bundled shop photo (claim_genuine.jpg) with a box whose pixels a learned decoder made:
    the same photo passed through one of the small autoencoders the generator-trace net was
    trained against (training/generator_traces/make_example.py wrote the box,
    samples/regenerated_patch.png), saved as PNG; and the box's mask."""
    from importlib import resources

    photo = _shop_photo()
    patch = _decode((resources.files("refundlens.samples") / "regenerated_patch.png").read_bytes())
    top, left, rows, cols = REGENERATED_BOX
    photo[top : top + rows, left : left + cols] = patch
    mask = np.zeros(photo.shape[:2], bool)
    mask[top : top + rows, left : left + cols] = True
    return encode(photo, "PNG"), mask


# The crafted scenes above are enlarged from a coarse random grid (cubic interpolation): upsampled
# pixels, which the generator-trace net marks as it should (a generator upsamples too). The
# examples of the other maps therefore run without it; its own examples use the shop photo.
_WITHOUT_GENERATOR_NET = Settings(pixels_generator_enabled=False)
# The net is off by default (settings.md); its examples switch it on.
_WITH_GENERATOR_NET = Settings(pixels_generator_enabled=True)
# The maps a reviewer can turn on (off by default: bench/results/forensics.md, "Which maps earn
# their cost"); their examples run with them on, and one example shows them off.
_WITH_OPTIONAL_MAPS = Settings(
    pixels_generator_enabled=False,
    pixels_residual_enabled=True,
    pixels_copy_move_enabled=True,
    pixels_cfa_enabled=True,
)


def _case(
    data: bytes, name: str, settings: Settings = _WITHOUT_GENERATOR_NET
) -> tuple[Media, Context]:
    return media_from_bytes(data, name), Context(settings=settings)


def _with_checkerboard(rgb: np.ndarray, period: int, depth: float) -> np.ndarray:
    """``rgb`` with the faint periodic checkerboard a transposed-convolution upsampler leaves
    (Odena et al., "Deconvolution and Checkerboard Artifacts", Distill 2016)."""
    rows, cols = np.mgrid[0 : rgb.shape[0], 0 : rgb.shape[1]]
    sign = ((rows // (period // 2) + cols // (period // 2)) % 2) * 2 - 1
    return np.clip(rgb + depth * sign[..., None], 0, 255).astype(np.uint8)


def _noise_free() -> np.ndarray:
    """A blurred random picture enlarged 2x: smooth everywhere, as rendered images are."""
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    small = Image.fromarray((rng.random((300, 350, 3)) * 255).astype(np.uint8))
    small = small.filter(ImageFilter.GaussianBlur(1.5))
    return np.asarray(small.resize((700, 600), Image.Resampling.NEAREST))


def pixel_examples() -> list[Example]:
    return [
        Example(
            "a camera-like photo saved once is left alone",
            lambda: _case(encode(camera_photo(3), quality=90), "genuine.jpg"),
            frozenset({"pixels.none_found"}),
        ),
        Example(
            "a camera-like photo saved as PNG is left alone",
            lambda: _case(encode(camera_photo(3), "PNG"), "genuine.png"),
            frozenset({"pixels.none_found"}),
        ),
        Example(
            "the same photo with a generator's period-4 checkerboard, 1.5 grey levels deep",
            lambda: _case(encode(_with_checkerboard(camera_photo(3), 4, 1.5), "PNG"), "gen.png"),
            frozenset({"pixels.upsampling_peaks", "pixels.none_found"}),
        ),
        Example(
            "a smooth picture enlarged, saved as PNG: no sensor noise anywhere",
            lambda: _case(encode(_noise_free(), "PNG"), "smooth.png"),
            frozenset({"pixels.no_sensor_noise", "pixels.none_found"}),
        ),
        Example(
            "a patch pasted between two compressions is localised",
            lambda: _case(pasted_with_other_compression(), "pasted.jpg"),
            frozenset({"pixels.double_jpeg_inconsistency"}),
        ),
        Example(
            "a smoothed patch in a noisy photo is localised",
            lambda: _case(smoothed_patch(), "smoothed.png", _WITH_OPTIONAL_MAPS),
            frozenset({"pixels.noise_inconsistency"}),
        ),
        Example(
            "a region without the camera's demosaicing pattern is localised",
            lambda: _case(pasted_without_demosaicing(), "pasted.png", _WITH_OPTIONAL_MAPS),
            frozenset({"pixels.cfa_inconsistency"}),
        ),
        Example(
            "a cloned region is found",
            lambda: _case(cloned(), "cloned.jpg", _WITH_OPTIONAL_MAPS),
            frozenset({"pixels.copy_move", "pixels.none_found"}),
        ),
        Example(
            "a cloned region goes unreported by default: copy-move search is off",
            lambda: _case(cloned(), "cloned.jpg"),
            frozenset({"pixels.none_found"}),
        ),
        Example(
            "a patch re-grained in a shop photo is outlined by the learned net at threshold 0.5",
            lambda: (
                media_from_bytes(regrained_shop_photo()[0], "regrained.png"),
                Context(
                    settings=Settings(pixels_painted_threshold=0.5, pixels_generator_enabled=False)
                ),
            ),
            frozenset({"pixels.painted_patch"}),
        ),
        Example(
            "the untouched shop photo shows no generator traces",
            lambda: _case(encode(_shop_photo(), "PNG"), "shop.png", _WITH_GENERATOR_NET),
            frozenset({"pixels.none_found"}),
        ),
        Example(
            "a patch regenerated by a learned decoder in the shop photo is found",
            lambda: _case(regenerated_shop_photo()[0], "regenerated.png", _WITH_GENERATOR_NET),
            frozenset({"pixels.generator_traces"}),
        ),
        Example(
            "a photo of a screen is recognised",
            lambda: _case(screen_photo(), "screen.jpg"),
            frozenset({"pixels.recapture", "pixels.none_found"}),
        ),
    ]
