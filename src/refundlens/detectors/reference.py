"""detectors/reference: is the claim photo derived from one of the merchant's reference photos?

Pipeline per (claim, reference): PDQ over the 8 dihedral forms (retrieval and a fallback for tiny
images), RootSIFT + MAGSAC++ homography on reduced copies (plain and mirrored reference), warp of
the reference onto the claim, colour/tone normalisation and blur/sharpen search, residual, mask.
See ``docs/detectors/reference.md`` for the evidence, the failure modes and the numbers.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import cv2
import numpy as np
import numpy.typing as npt

from ..config import Settings
from ..media import Media, estimate_jpeg_quality, hamming
from .base import Context, Detector, Example, Finding, Reason, Region
from .matching import Features, Match, detect_features, match_homography
from .residual import ResidualAnalysis, analyse_residual, background_mask

__all__ = [
    "ReferenceDetector",
    "ReferenceModel",
    "ReferenceOutcome",
    "compare",
    "prepare_reference",
]

MATCH_SIDE = 512  # matching on a 512-px copy: SIFT cost grows with area, accuracy barely does


def _match_copy(rgb: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.uint8], float]:
    """A copy with longest side <= MATCH_SIDE and the factor analysis px -> match px."""
    factor = min(1.0, MATCH_SIDE / max(rgb.shape[:2]))
    if factor >= 1.0:
        return rgb, 1.0
    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), factor


@dataclasses.dataclass(frozen=True, eq=False)
class ReferenceModel:
    """What matching needs from a reference, computed once and cached (per SKU in the service)."""

    media: Media
    features: Features
    features_mirrored: Features
    match_factor: float
    match_shape: tuple[int, int]
    object_mask: npt.NDArray[np.bool_]


_CACHE: OrderedDict[str, ReferenceModel] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 256


def prepare_reference(media: Media) -> ReferenceModel:
    """Features of the reference (plain and mirrored) and its object mask; cached by sha256."""
    with _CACHE_LOCK:
        hit = _CACHE.get(media.sha256)
        if hit is not None:
            _CACHE.move_to_end(media.sha256)
            return hit
    small, factor = _match_copy(media.analysis)
    feats = detect_features(small)
    flipped = detect_features(np.ascontiguousarray(small[:, ::-1]))
    # Mirrored keypoints are stored in the unmirrored image's coordinates, so one homography
    # (with a reflection in it) maps the reference onto the claim either way.
    mirrored_points = flipped.points.copy()
    mirrored_points[:, 0] = (small.shape[1] - 1) - mirrored_points[:, 0]
    background = background_mask(media.analysis)
    model = ReferenceModel(
        media=media,
        features=feats,
        features_mirrored=Features(mirrored_points, flipped.descriptors),
        match_factor=factor,
        match_shape=(small.shape[0], small.shape[1]),
        object_mask=~background,
    )
    with _CACHE_LOCK:
        _CACHE[media.sha256] = model
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


@dataclasses.dataclass(frozen=True, eq=False)
class ReferenceOutcome:
    """The comparison of one claim with one reference."""

    verdict: str  # derived | identical | same_item_new_photo | no_match
    reference: Media
    pdq_distance: int
    match: Match | None
    mirrored: bool
    homography: npt.NDArray[np.float64] | None
    coverage: float
    residual: ResidualAnalysis | None
    warped: npt.NDArray[np.uint8] | None
    via: str

    def facts(self, claim: Media) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "reference": self.reference.name,
            "reference_sha256": self.reference.sha256,
            "pdq_distance": self.pdq_distance,
            "matched_by": self.via,
        }
        if self.match is not None:
            facts.update(
                inliers=self.match.inliers,
                tentative_matches=self.match.tentative,
                inlier_ratio=round(self.match.inlier_ratio, 3),
            )
        if self.homography is not None:
            facts["coverage_of_reference"] = round(self.coverage, 3)
            facts["transform"] = describe_homography(self.homography, self.mirrored)
        if self.residual is not None:
            r = self.residual
            outside = r.compared & ~r.edit_mask
            facts.update(
                agreement=round(r.agreement, 4),
                residual_median_outside_edit=round(
                    float(np.median(r.residual[outside])) if outside.any() else 0.0, 2
                ),
                noise_level=round(r.noise_level, 2),
                envelope_level=round(r.envelope_level, 2),
                tolerance=round(r.tolerance, 2),
                matched_filter=r.filter_name,
                edited_percent_of_object=round(100 * r.edit_share, 2),
                claim_jpeg_quality=estimate_jpeg_quality(claim.metadata.jpeg_qtables),
            )
        return facts


def describe_homography(h: npt.NDArray[np.float64], mirrored: bool) -> dict[str, float | bool]:
    """Scale, rotation (degrees, counter-clockwise), mirror flag and perspective strength of h."""
    a = h[:2, :2] / h[2, 2]
    det = float(np.linalg.det(a))
    scale = math.sqrt(abs(det))
    if det < 0:
        a = a @ np.diag([-1.0, 1.0])
    rotation = math.degrees(math.atan2(-a[1, 0], a[0, 0]))
    return {
        "scale": round(scale, 3),
        "rotation_deg": round(rotation, 1),
        "mirrored": bool(det < 0 or mirrored),
        "perspective": round(float(np.hypot(h[2, 0], h[2, 1]) / abs(h[2, 2]) * 1000), 3),
    }


def _dihedral_homography(
    index: int, ref_shape: tuple[int, int], claim_shape: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """Homography for pdqhash's dihedral ordering: 0 id, 1 rot90, 2 rot180, 3 rot270,
    4 flip rows (upside down), 5 flip columns (mirror), 6 transpose, 7 transverse; followed by a stretch to the claim's size."""
    rows, cols = ref_shape
    w, hgt = cols - 1.0, rows - 1.0
    forms = {
        0: [[1, 0, 0], [0, 1, 0]],
        1: [[0, 1, 0], [-1, 0, w]],
        2: [[-1, 0, w], [0, -1, hgt]],
        3: [[0, -1, hgt], [1, 0, 0]],
        4: [[1, 0, 0], [0, -1, hgt]],
        5: [[-1, 0, w], [0, 1, 0]],
        6: [[0, 1, 0], [1, 0, 0]],
        7: [[0, -1, hgt], [-1, 0, w]],
    }
    m = np.vstack([np.array(forms[index], np.float64), [0, 0, 1]])
    out_rows, out_cols = (cols, rows) if index in (1, 3, 6, 7) else (rows, cols)
    s = np.diag([claim_shape[1] / out_cols, claim_shape[0] / out_rows, 1.0])
    return s @ m


def _coverage(
    h: npt.NDArray[np.float64], ref_shape: tuple[int, int], claim_shape: tuple[int, int]
) -> float:
    """Share of the reference's area that lands inside the claim frame."""
    rows, cols = ref_shape
    corners = np.array([[0, 0], [cols, 0], [cols, rows], [0, rows]], np.float32).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, h).reshape(-1, 2).astype(np.float32)
    frame = np.array(
        [[0, 0], [claim_shape[1], 0], [claim_shape[1], claim_shape[0]], [0, claim_shape[0]]],
        np.float32,
    )
    area = abs(cv2.contourArea(quad))
    if area <= 0:
        return 0.0
    inter, _ = cv2.intersectConvexConvex(quad, frame)
    return float(min(1.0, inter / area))


def compare(
    claim: Media,
    claim_features: Features,
    claim_factor: float,
    ref: ReferenceModel,
    settings: Settings,
) -> ReferenceOutcome:
    """Compare one claim with one prepared reference (see the module docstring for the steps)."""
    distance = min(hamming(claim.pdq, h) for h in ref.media.pdq_dihedral)
    best: tuple[Match, bool] | None = None
    for feats, mirrored in ((ref.features, False), (ref.features_mirrored, True)):
        m = match_homography(feats, claim_features, ref.match_shape)
        if m is not None and (best is None or m.inliers > best[0].inliers):
            best = (m, mirrored)
    claim_shape = claim.analysis.shape[:2]
    ref_shape = ref.media.analysis.shape[:2]
    confirmed = (
        best is not None
        and best[0].inliers >= settings.reference_min_inliers
        and best[0].inlier_ratio >= settings.reference_min_inlier_ratio
    )
    homography: npt.NDArray[np.float64] | None = None
    via = "none"
    mirrored = False
    if confirmed and best is not None:
        sc = np.diag([1 / claim_factor, 1 / claim_factor, 1.0])
        sr = np.diag([ref.match_factor, ref.match_factor, 1.0])
        homography = sc @ best[0].homography @ sr
        mirrored = best[1]
        via = "local_features"
    elif distance <= settings.reference_pdq_match_distance and claim.pdq.quality >= 50:
        # Too few features (a tiny or flat listing photo), but the whole frame is a
        # near-duplicate under one of the dihedral forms: align by that form.
        index = min(range(8), key=lambda i: hamming(claim.pdq, ref.media.pdq_dihedral[i]))
        homography = _dihedral_homography(index, ref_shape, claim_shape)
        mirrored = index in (4, 5, 6, 7)
        via = "pdq_dihedral"
    match = best[0] if best is not None else None
    if homography is None:
        return ReferenceOutcome(
            "no_match", ref.media, distance, match, False, None, 0.0, None, None, via
        )

    size = (claim_shape[1], claim_shape[0])
    warped = cv2.warpPerspective(
        ref.media.analysis,
        homography,
        size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    valid = cv2.warpPerspective(
        np.full(ref_shape, 255, np.uint8), homography, size, flags=cv2.INTER_NEAREST
    )
    valid = cv2.erode(valid, np.ones((5, 5), np.uint8)) > 0
    obj = (
        cv2.warpPerspective(
            ref.object_mask.astype(np.uint8) * 255, homography, size, flags=cv2.INTER_NEAREST
        )
        > 0
    )
    coverage = _coverage(homography, ref_shape, claim_shape)
    if valid.sum() < 256:
        return ReferenceOutcome(
            "no_match", ref.media, distance, match, mirrored, homography, coverage, None, None, via
        )
    analysis = analyse_residual(
        claim.analysis, warped, valid, obj, tolerance=settings.reference_tolerance
    )
    if (
        analysis.agreement >= settings.reference_agreement_derived
        and analysis.envelope_level <= settings.reference_max_envelope
        and analysis.edit_share <= settings.reference_max_edit_share
    ):
        verdict = (
            "derived" if analysis.edit_share >= settings.reference_min_edit_share else "identical"
        )
    else:
        verdict = "same_item_new_photo" if via == "local_features" else "no_match"
    return ReferenceOutcome(
        verdict, ref.media, distance, match, mirrored, homography, coverage, analysis, warped, via
    )


_RANK = {"derived": 0, "identical": 1, "same_item_new_photo": 2, "no_match": 3}


def _finding(claim: Media, outcome: ReferenceOutcome, others: int) -> Finding:
    facts = outcome.facts(claim)
    facts["references_compared"] = others
    name = outcome.reference.name.rsplit("/", 1)[-1]
    r = outcome.residual
    pictures: dict[str, npt.NDArray[np.uint8]] = {}
    if outcome.warped is not None:
        shown = outcome.warped.copy()
        if r is not None:
            # outside the reference's footprint the warp only replicates its edge pixels
            footprint = cv2.dilate(r.valid.astype(np.uint8), np.ones((7, 7), np.uint8))
            shown[footprint == 0] = 255
        pictures["aligned_reference"] = shown
    if outcome.verdict == "derived" and r is not None:
        pct = 100 * r.edit_share
        confidence = float(np.clip((r.agreement - 0.6) / 0.35, 0.3, 1.0))
        return Finding(
            "reference.derived",
            6.0 * confidence,
            confidence,
            Reason(
                f"Made from the merchant's photo {name}: {100 * r.agreement:.1f}% of the product matches "
                f"it to compression-noise level, and {pct:.1f}% of the product was changed (outlined).",
                f"由商家图片 {name} 修改而成：商品 {100 * r.agreement:.1f}% 的区域与原图一致（仅有压缩噪声），"
                f"{pct:.1f}% 的区域被改动（已标出）。",
            ),
            facts,
            Region(r.edit_mask.copy(), "mask"),
            "reference",
            pictures,
        )
    if outcome.verdict == "identical" and r is not None:
        return Finding(
            "reference.identical",
            3.5,
            float(np.clip((r.agreement - 0.6) / 0.35, 0.3, 1.0)),
            Reason(
                f"The photo is the merchant's own photo {name} with no visible change: it shows no "
                "damage to the goods received.",
                f"该图片就是商家图片 {name}，没有可见改动：不能证明收到的商品有损坏。",
            ),
            facts,
            None,
            "reference",
            pictures,
        )
    if outcome.verdict == "same_item_new_photo" and r is not None and outcome.match is not None:
        confidence = float(np.clip(outcome.match.inliers / 60, 0.2, 1.0))
        return Finding(
            "reference.same_item_new_photo",
            -1.5 * confidence,
            confidence,
            Reason(
                f"A new photo of the same product as {name} ({outcome.match.inliers} matching points), "
                f"not a copy of it: only {100 * r.agreement:.0f}% agrees at noise level, as a real "
                "exposure would.",
                f"与 {name} 是同一商品的新拍照片（{outcome.match.inliers} 个匹配点），并非复制："
                f"仅 {100 * r.agreement:.0f}% 的区域在噪声水平内一致，符合真实拍摄。",
            ),
            facts,
            None,
            "reference",
            pictures,
        )
    return Finding(
        "reference.no_match",
        0.0,
        0.5,
        Reason(
            "The photo does not match any of the merchant's reference photos; this alone says "
            "nothing about whether it is genuine.",
            "图片与商家的参考图均不匹配；仅凭这一点不能判断真假。",
        ),
        facts,
        None,
        "reference",
        {},
    )


class ReferenceDetector(Detector):
    """Finds claims made from the merchant's own photos and localises the added damage."""

    name = "reference"
    codes: ClassVar[Mapping[str, str]] = {
        "reference.derived": "made from this reference with an edit, localised as a mask",
        "reference.identical": "the reference itself, no visible change",
        "reference.same_item_new_photo": "the same product in a new exposure (supports the buyer)",
        "reference.no_match": "no reference matches (informational)",
    }
    requires = frozenset({"references"})

    def analyze(self, claim: Media, context: Context) -> list[Finding]:
        if not context.references:
            return []
        small, factor = _match_copy(claim.analysis)
        claim_features = detect_features(small)
        outcomes = [
            compare(claim, claim_features, factor, prepare_reference(ref), context.settings)
            for ref in context.references
        ]

        def rank(o: ReferenceOutcome) -> tuple[int, float]:
            support = o.residual.agreement if o.residual is not None else 0.0
            inliers = o.match.inliers if o.match is not None else 0
            return (
                _RANK[o.verdict],
                -(support if o.verdict in ("derived", "identical") else inliers),
            )

        best = min(outcomes, key=rank)
        return [_finding(claim, best, len(outcomes))]

    @classmethod
    def examples(cls) -> Sequence[Example]:
        from ._examples import reference_examples

        return reference_examples()
