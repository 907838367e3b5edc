"""The listing photo resized by any common kernel (issue 23), and new photos of a static scene at
low resolution that agree with the reference at noise level."""

from __future__ import annotations

import io
import itertools
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from refundlens import synth
from refundlens.detectors import ReferenceDetector
from refundlens.detectors.base import Context
from refundlens.detectors.reference import resampled_predictions
from refundlens.detectors.residual import background_mask
from refundlens.fusion import fuse, load_policy
from refundlens.media import media_from_bytes

FREIBURG = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "superglue-assets"
    / "freiburg_sequence"
)
PIL_KERNELS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}


def _listing() -> np.ndarray:
    """The bundled real photo (CC0 cup), as a listing photo."""
    path = resources.files("refundlens") / "samples" / "claim_unrelated.jpg"
    return np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _outline_f1(factor: float, kernel: str) -> tuple[str, float]:
    listing = _listing()
    obj = ~background_mask(listing)
    damaged, mask = synth.paint_damage(listing, obj, "crack", 0.01, seed=11)
    size = (round(listing.shape[1] * factor), round(listing.shape[0] * factor))
    claim = np.asarray(Image.fromarray(damaged).resize(size, PIL_KERNELS[kernel]))
    truth = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    (finding,) = ReferenceDetector().analyze(
        media_from_bytes(_jpeg(claim, 85), "claim.jpg"),
        Context(references=(media_from_bytes(_jpeg(listing, 92), "listing.jpg"),)),
    )
    if finding.region is None:
        return finding.code, 0.0
    got = finding.region.full_size(size[0], size[1]) > 0
    return finding.code, float(2 * (got & truth).sum() / max(1, got.sum() + truth.sum()))


@pytest.mark.parametrize(
    ("factor", "kernel"),
    [(1.1, "lanczos"), (1.1, "bicubic"), (0.6, "area"), (0.8, "bilinear"), (1.5, "nearest")],
)
def test_resized_listing_with_a_crack_stays_derived_with_its_outline(
    factor: float, kernel: str
) -> None:
    _, unresized = _outline_f1(1.0, "lanczos")
    code, f1 = _outline_f1(factor, kernel)
    assert code == "reference.derived"
    # The crack is 1 px wide on this 600-px photo. Outlined at its own width (issue 23 part 2),
    # the unresized outline's F1 rose from 0.32 to 0.55 and the 0.6x one from 0.16 to 0.21 only:
    # at 0.6x the line is 0.6 px wide and which pixels carry it depends on the resampling phase.
    # Before, every case here kept at least half the unresized F1; now at least 0.35 of it.
    assert f1 >= 0.35 * unresized, (f1, unresized)


def test_resampled_predictions_model_the_kernel_only_for_a_resize() -> None:
    ref = _listing()
    assert resampled_predictions(ref, np.eye(3), (360, 360)) == []
    scale = np.diag([1.1, 1.1, 1.0])
    names = [name for name, _ in resampled_predictions(ref, scale, (396, 396))]
    assert {"nearest", "bilinear", "bicubic", "lanczos", "area"} <= set(names)
    perspective = scale.copy()
    perspective[2, 0] = 1e-3
    assert resampled_predictions(ref, perspective, (396, 396)) == []


def _shop_photo(path: Path, side: int, quality: int, crop: float = 0.0) -> bytes:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    image = image.crop((int(w * crop), int(h * crop), int(w * (1 - crop)), int(h * (1 - crop))))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.mark.skipif(not FREIBURG.is_dir(), reason=f"real photos not found at {FREIBURG}")
def test_two_low_resolution_photos_of_a_static_scene_are_never_escalated() -> None:
    """Consecutive frames of the TUM desk sequence (a second apart), at 348 px and JPEG 75, the
    second zoomed in: they agree at noise level as a copy would; the finding must say that the
    resolution leaves little room, and the claim must not be escalated on it."""
    frames = sorted(FREIBURG.glob("*.png"))
    actions = []
    for first, second in itertools.pairwise(frames[:9]):
        reference = media_from_bytes(_shop_photo(first, 348, 75), "listing.jpg")
        claim = media_from_bytes(_shop_photo(second, 348, 75, crop=0.1), "claim.jpg")
        findings = ReferenceDetector().analyze(claim, Context(references=(reference,)))
        (finding,) = findings
        assert finding.code not in ("reference.derived", "reference.identical"), finding.facts
        room = finding.facts.get("room_to_tell_apart")
        if room is not None:
            assert room["level"] == "low" and room["compared_pixels"] < 250_000
        actions.append(fuse(findings, load_policy()).action)
    assert "escalate" not in actions
