"""detectors/consistency: does the damage agree across two photos of one item?

A crack that exists is the same crack from every side; an AI tool asked twice paints two different
cracks, and a photo of the intact item shows none. For two photos of one claim (the disputed photo
and a live capture, or two photos sent together) the surfaces both show are aligned, one planar
face at a time, the photometry is normalised, and their *structure* is compared (local contrast
normalised detail, with a small spatial tolerance), not their pixels: other light, another angle,
blur and phone JPEG change pixels and leave structure. Structure present in one view and absent in
the other, where the surface is visible in both, is reported with both regions outlined on both
photos (``consistency.damage_missing_in_other_view``); views that agree lower the risk
(``consistency.damage_confirmed``); too little shared surface is said as such
(``consistency.cannot_tell``).

Alone this detector never rejects and never escalates (policy: floor request_capture, ceiling
review): a view that does not agree asks for a live capture or a person, nothing more.

Coordinates: (row, col) everywhere except homographies and keypoints, which are OpenCV's
(x, y) = (col, row), as in :mod:`.matching`. All maps are computed on a copy of the claim image
whose longest side is at most ``WORK_SIDE`` and returned at the claim's analysis size.

References
----------
.. [1] D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004.
.. [2] D. Barath, J. Noskova, M. Ivashechkin and J. Matas, "MAGSAC++, a fast, reliable and accurate
       robust estimator", CVPR 2020; sequential fitting of several planes as in E. Vincent and
       R. Laganiere, "Detecting planar homographies in an image pair", ISPA 2001.
.. [3] G. Farneback, "Two-frame motion estimation based on polynomial expansion", SCIA 2003.
.. [4] K. Jarrett, K. Kavukcuoglu, M. Ranzato and Y. LeCun, "What is the best multi-stage
       architecture for object recognition?", ICCV 2009 (local contrast normalisation).
.. [5] R. Zabih and J. Woodfill, "Non-parametric local transforms for computing visual
       correspondence", ECCV 1994 (comparisons that survive monotonic changes of brightness).
.. [6] D. Chai and K. N. Ngan, "Face segmentation using skin-color map in videophone
       applications", IEEE TCSVT 9(4), 1999 (the YCrCb skin range used for hands).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import numpy.typing as npt

from ..media import Media
from .base import Context, Detector, Example, Finding, Reason, Region, Requirement
from .matching import Features, claim_index, detect_features, homography_from_pairs

__all__ = [
    "ConsistencyDetector",
    "Face",
    "Thresholds",
    "ViewComparison",
    "compare_views",
    "detail_map",
    "find_faces",
    "judge",
    "occluder_mask",
    "side_by_side",
    "tolerant_difference",
]

WORK_SIDE = 512
"""Longest side of the copies compared: damage a reviewer can see at this size is still several
pixels wide, and SIFT, flow and the shifted comparisons cost grows with the area."""

FloatMap = npt.NDArray[np.float32]
BoolMap = npt.NDArray[np.bool_]
RGB = npt.NDArray[np.uint8]
Verdict = Literal["missing", "agrees", "cannot_tell"]


@dataclasses.dataclass(frozen=True, slots=True)
class Thresholds:
    """The detector's operating point. The defaults were chosen on the dev half of the capture
    bench (``bench/run_capture.py``) and are reported on the other half."""

    min_face_inliers: int = 12
    """RANSAC inliers a planar face needs to count as shared surface."""
    max_faces: int = 3
    min_shared_fraction: float = 0.03
    """Shared surface, as a share of the claim's frame, below which the detector cannot tell."""
    min_correlation: float = 0.5
    """Correlation of the two views' normalised detail over the shared surface below which the
    alignment (or the light) is too poor to compare: cannot tell."""
    tolerance_px: int = 2
    """Structure in one view is explained by the other if found within this many work pixels."""
    difference: float = 2.15
    """Block-matched structure difference (in units of local contrast) that marks a region:
    the smallest value flagging at most 1% of the capture bench's honest dev pairs."""
    min_region_px: int = 12
    """Smallest region, in work pixels, reported as damage missing from the other view."""
    max_region_share: float = 0.30
    """Regions covering more of the shared surface than this are not damage but views that do not
    compare (occlusion, glare, another object): cannot tell."""
    max_surround_difference: float = 0.6
    """A region counts only where the surface around it agrees (mean difference at most this):
    a crack on a matching carton, not one more piece of a view that matches nowhere."""
    max_regions: int = 6
    """More separate regions than this are no damage but views that do not compare."""


DEFAULT_THRESHOLDS = Thresholds()


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Face:
    """One planar surface shared by both views: ``homography`` maps the other view's work pixels
    (x, y) onto the claim's, ``region`` is where the face lies in the claim's work frame."""

    homography: npt.NDArray[np.float64]
    inliers: int
    tentative: int
    region: BoolMap


@dataclasses.dataclass(frozen=True, eq=False)
class ViewComparison:
    """The claim compared with one other view, every map in the claim's work frame."""

    verdict: Verdict
    faces: tuple[Face, ...]
    shared: BoolMap
    """Surface visible in both views and compared."""
    heat: FloatMap
    """Structure difference in [0, 1] (1 at twice the threshold), 0 outside ``shared``."""
    here: BoolMap
    """Regions with structure in the claim that the other view lacks."""
    there: BoolMap
    """Regions with structure in the other view that the claim lacks (where it would show)."""
    warped_other: RGB
    """The other view warped onto the claim, face by face (white where no face)."""
    correlation: float
    shared_fraction: float
    occluded_fraction: float
    region_share: float
    blur: tuple[float, float]
    why: str = ""
    difference: FloatMap = dataclasses.field(default_factory=lambda: np.zeros((0, 0), np.float32))
    """Structure difference in units of local contrast (0 outside ``shared``)."""
    claim_side: BoolMap = dataclasses.field(default_factory=lambda: np.zeros((0, 0), bool))
    """Where the difference is structure of the claim's that the other view lacks (else the
    converse)."""


# --- alignment ---------------------------------------------------------------------------------


def _work_copy(rgb: RGB) -> RGB:
    factor = min(1.0, WORK_SIDE / max(rgb.shape[:2]))
    if factor >= 1.0:
        return rgb
    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _hull(points: npt.NDArray[np.float32], shape: tuple[int, int], erode: int) -> BoolMap:
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(points.astype(np.float32)).astype(np.int32)
    cv2.fillConvexPoly(mask, hull, 1)
    if erode > 0:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    return mask.astype(bool)


def _near(points: npt.NDArray[np.float32], shape: tuple[int, int]) -> BoolMap:
    """Pixels within a support radius (6% of the longest side) of a point: where matched features
    show that the homography holds. Between them it is only extrapolated, and an item moved
    against its background, a hand or the shelf behind are not the face."""
    radius = max(12, round(0.06 * max(shape)))
    mask = np.zeros(shape, np.uint8)
    for x, y in np.round(points).astype(int):
        cv2.circle(mask, (int(x), int(y)), radius, 1, -1)
    return mask.astype(bool)


def find_faces(
    claim: Features,
    other: Features,
    claim_shape: tuple[int, int],
    other_shape: tuple[int, int],
    *,
    max_faces: int = 3,
    min_inliers: int = 12,
    ratio: float = 0.8,
    reproj_threshold: float = 3.0,
) -> list[Face]:
    """Planar faces shared by two views: RootSIFT matches under Lowe's ratio test [1]_, then
    MAGSAC++ homographies fitted one after the other on the matches the earlier ones left [2]_.

    A face's region is the convex hull of its inliers in the claim (shrunk by 3 px, off the
    silhouette where the background shows parallax), within a support radius of an inlier, less
    the regions of earlier faces. A later
    face must touch the first (faces of one object are adjacent): the same product standing on a
    shelf behind, matched by its print, is not the item photographed.

    Parameters
    ----------
    claim, other : the two views' features, in their work copies' (x, y).
    claim_shape, other_shape : (rows, cols) of the work copies.

    Returns
    -------
    Faces, most inliers first; empty when no plausible homography has ``min_inliers`` inliers.
    """
    if len(claim) < 8 or len(other) < 8:
        return []
    pairs = claim_index(claim).knnMatch(other.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    src = other.points[[m.queryIdx for m in good]].reshape(-1, 2)
    dst = claim.points[[m.trainIdx for m in good]].reshape(-1, 2)
    faces: list[Face] = []
    taken = np.zeros(claim_shape, bool)
    near_first = np.zeros(claim_shape, bool)
    while len(faces) < max_faces and len(src) >= 8:
        cv2.setRNGSeed(20251)  # USAC draws from OpenCV's RNG: the same pair, the same faces
        match = homography_from_pairs(src, dst, other_shape, reproj_threshold=reproj_threshold)
        if match is None or match.inliers < min_inliers:
            break
        projected = cv2.perspectiveTransform(
            src.reshape(-1, 1, 2).astype(np.float64), match.homography
        ).reshape(-1, 2)
        inlier = np.hypot(*(projected - dst).T) <= reproj_threshold
        region = _hull(dst[inlier], claim_shape, 3) & _near(dst[inlier], claim_shape) & ~taken
        if not faces:
            grow = max(5, round(0.1 * max(claim_shape)))
            near_first = cv2.dilate(
                region.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
            ).astype(bool)
        if region.sum() >= 64 and (not faces or (region & near_first).any()):
            faces.append(Face(match.homography, int(inlier.sum()), len(good), region))
            taken |= region
        src, dst = src[~inlier], dst[~inlier]
    return faces


def _warp_faces(
    other: RGB, faces: Sequence[Face], shape: tuple[int, int], *, margin: int = 7
) -> tuple[RGB, BoolMap]:
    """The other view warped onto the claim: by the first face's homography everywhere (so that
    maps computed over a window see continuous pixels at a face's edge), by each later face's in
    its region. Also where the comparison is valid: inside a face's region and its warp, ``margin``
    px in from both (the windows of the structure maps reach that far)."""
    rows, cols = shape
    ones = np.full(other.shape[:2], 255, np.uint8)
    out = np.zeros((rows, cols, 3), np.uint8)
    valid = np.zeros(shape, bool)
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    for i, face in enumerate(faces):
        warped = cv2.warpPerspective(
            other, face.homography, (cols, rows), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        inside = cv2.warpPerspective(ones, face.homography, (cols, rows), flags=cv2.INTER_NEAREST)
        if i == 0:
            out = warped
        else:
            out[face.region] = warped[face.region]
        here = cv2.erode(face.region.astype(np.uint8), kernel) & cv2.erode(inside, kernel)
        valid |= here > 0
    return out, valid


def _refine_by_flow(claim_grey: FloatMap, warped_grey: FloatMap, shared: BoolMap) -> FloatMap:
    """Residual misalignment after the homography (a curved cup, a bent carton), removed by a
    smooth dense flow [3]_: large windows and heavy smoothing follow the surface's bend, not a
    thin crack, which no smooth deformation can make or remove. Returns the other view's grey
    image moved by the flow."""
    if shared.sum() < 256:
        return warped_grey
    a = cv2.normalize(claim_grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    b = cv2.normalize(warped_grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    a, b = cv2.equalizeHist(a), cv2.equalizeHist(b)
    flow = cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 25, 3, 7, 1.5, 0)
    weight = cv2.GaussianBlur(shared.astype(np.float32), (0, 0), 8) + 1e-3
    for k in range(2):  # smooth inside the shared surface only, then limit to a few pixels
        flow[..., k] = cv2.GaussianBlur(flow[..., k] * shared, (0, 0), 8) / weight
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    flow *= np.minimum(1.0, 6.0 / np.maximum(magnitude, 1e-6))[..., None]
    rows, cols = claim_grey.shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return cv2.remap(
        warped_grey,
        xx + flow[..., 0],
        yy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


# --- structure ---------------------------------------------------------------------------------


def detail_map(
    grey: FloatMap, *, sigma: float = 4.0, spread_sigma: float = 16.0, floor: float = 3.0
) -> FloatMap:
    """Local contrast normalisation [4]_: the grey image less its local mean (Gaussian window of
    ``sigma`` px), divided by the local standard deviation of that detail over a wider window
    (``spread_sigma`` px; ``floor`` grey levels keep flat, noisy surfaces from being amplified
    into structure).

    Light changes a surface's brightness and contrast smoothly; after this map two views of it
    agree wherever their structure does. The wide window for the spread keeps a crack from
    normalising itself away: it stands out against the contrast of the print around it. Values
    are in units of local contrast, mostly within [-3, 3].
    """
    mean = cv2.GaussianBlur(grey, (0, 0), sigma)
    centred = grey - mean
    spread = np.sqrt(cv2.GaussianBlur(centred * centred, (0, 0), spread_sigma))
    return np.asarray(centred / np.sqrt(spread * spread + floor * floor), np.float32)


def tolerant_difference(
    a: FloatMap, b: FloatMap, *, radius: int = 2, window: float = 1.0
) -> FloatMap:
    """For each pixel, the smallest local mean of ``|a - b shifted by d|`` over shifts
    ``|d| <= radius`` (a square); the mean is over a Gaussian window of ``window`` px.

    One shift per neighbourhood, not per pixel: alignment is good to a pixel or two across 60
    degrees of viewpoint, so a patch of ``a`` is explained when ``b`` shows the same patch
    nearby, and a crack, whose patch no shift of the intact surface reproduces, is not. Shifting
    pixels one by one would explain a crack on busy print by picking dark pixels from around it.
    Symmetric in value, asymmetric in what it explains; both directions are used. A block-matching
    comparison in the spirit of the census transform's tolerance to displacement [5]_, on values
    rather than bits so that a faint stain and a deep crack are told apart by how much they differ.
    """
    padded = cv2.copyMakeBorder(b, radius, radius, radius, radius, cv2.BORDER_REPLICATE)
    rows, cols = a.shape
    best = np.full(a.shape, np.inf, np.float32)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            local = cv2.GaussianBlur(
                np.abs(a - padded[dy : dy + rows, dx : dx + cols]), (0, 0), window
            )
            np.minimum(best, local, out=best)
    return best


def occluder_mask(claim: RGB, warped_other: RGB, shared: BoolMap) -> BoolMap:
    """Skin [6]_ in one view and not in the other, in pieces large enough to be a hand and touching
    the frame's border or the shared surface's edge: a hand holding the item covers it in one
    view only, and that surface is not seen in both. Skin-coloured print (an orange carton) is
    skin in both views and stays compared; small skin-coloured stains stay compared."""

    def skin(rgb: RGB) -> BoolMap:
        ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
        cr, cb = ycrcb[..., 1], ycrcb[..., 2]
        return (cr >= 135) & (cr <= 175) & (cb >= 80) & (cb <= 125)

    # Over the whole frame: the hand reaches beyond the surface compared, and its size and its
    # contact with the frame's border are what make it a hand.
    differ = skin(claim) ^ skin(warped_other)
    differ = cv2.morphologyEx(
        differ.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)
    ).astype(bool)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(differ.astype(np.uint8), 8)
    edge = shared & ~cv2.erode(shared.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    rows, cols = shared.shape
    big = max(200, int(0.02 * rows * cols))
    out = np.zeros(shared.shape, bool)
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if area < big:
            continue
        piece = labels == i
        touches = x == 0 or y == 0 or x + w >= cols or y + h >= rows or bool((piece & edge).any())
        if touches:
            out |= piece
    return cv2.dilate(out.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool) & shared


def _blur_matched(
    a: FloatMap, b: FloatMap, shared: BoolMap, sigmas: Sequence[float] = (0.0, 0.8, 1.5, 2.5)
) -> tuple[FloatMap, FloatMap, tuple[float, float]]:
    """Detail maps of both views after blurring the sharper one, by the blur that makes them
    agree best over the shared surface: a foreshortened face warped back, a shaken phone."""
    if not shared.any():
        return detail_map(a), detail_map(b), (0.0, 0.0)
    best: tuple[float, FloatMap, FloatMap, tuple[float, float]] | None = None
    for sa, sb in [(0.0, 0.0)] + [(s, 0.0) for s in sigmas[1:]] + [(0.0, s) for s in sigmas[1:]]:
        na = detail_map(cv2.GaussianBlur(a, (0, 0), sa) if sa else a)
        nb = detail_map(cv2.GaussianBlur(b, (0, 0), sb) if sb else b)
        misfit = float(np.abs(na - nb)[shared].mean())
        if best is None or misfit < best[0]:
            best = (misfit, na, nb, (sa, sb))
    assert best is not None
    return best[1], best[2], best[3]


def _grey(rgb: RGB) -> FloatMap:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def compare_views(
    claim: RGB, other: RGB, *, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> ViewComparison:
    """Compare the structure of two photos of one item where they show the same surface.

    Parameters
    ----------
    claim, other : (rows, cols, 3) uint8 RGB, any size; both are reduced to ``WORK_SIDE``.

    Returns
    -------
    ViewComparison in the claim's work frame: ``missing`` when a region of structure in one view
    is absent from the other, ``agrees`` when the shared surface agrees, ``cannot_tell`` when too
    little surface is shared or the views do not compare.
    """
    a_rgb, b_rgb = _work_copy(claim), _work_copy(other)
    shape = a_rgb.shape[:2]
    faces = find_faces(
        detect_features(a_rgb),
        detect_features(b_rgb),
        shape,
        b_rgb.shape[:2],
        max_faces=thresholds.max_faces,
        min_inliers=thresholds.min_face_inliers,
    )
    empty = np.zeros(shape, bool)
    if not faces:
        zero = np.zeros(shape, np.float32)
        return ViewComparison(
            "cannot_tell", (), empty, zero, empty, empty, np.full_like(a_rgb, 255), 0.0, 0.0,
            0.0, 0.0, (0.0, 0.0), "no_shared_face", zero, empty,
        )  # fmt: skip
    warped, valid = _warp_faces(b_rgb, faces, shape)
    saturated = (a_rgb.min(axis=2) >= 250) | (warped.min(axis=2) >= 250)
    saturated = cv2.dilate(saturated.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    shared = valid & ~saturated
    occluded = occluder_mask(a_rgb, warped, shared)
    shared &= ~occluded
    a_grey = _grey(a_rgb)
    b_grey = _refine_by_flow(a_grey, _grey(warped), shared)
    na, nb, blur = _blur_matched(a_grey, b_grey, shared)
    total = float(shape[0] * shape[1])
    shared_fraction = float(shared.sum()) / total
    correlation = float(np.corrcoef(na[shared], nb[shared])[0, 1]) if shared.sum() > 64 else 0.0
    correlation = correlation if np.isfinite(correlation) else 0.0
    r = thresholds.tolerance_px
    here = tolerant_difference(na, nb, radius=r)
    there = tolerant_difference(nb, na, radius=r)
    diff = np.where(shared, np.maximum(here, there), 0.0).astype(np.float32)
    measured = ViewComparison(
        "cannot_tell", tuple(faces), shared, np.zeros(shape, np.float32), empty, empty, warped,
        correlation, shared_fraction, float(occluded.sum()) / total, 0.0, blur, "",
        diff, here >= there,
    )  # fmt: skip
    return judge(measured, thresholds)


def judge(c: ViewComparison, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> ViewComparison:
    """The verdict on measured maps under ``thresholds`` (only the decision thresholds:
    ``difference``, ``min_region_px``, ``max_region_share``, ``min_shared_fraction``,
    ``min_correlation``); the benchmark re-judges one measurement at several operating points."""
    shape = c.shared.shape
    if not c.faces:
        return dataclasses.replace(c, verdict="cannot_tell", why="no_shared_face")
    diff = c.difference
    heat = np.clip(diff / (2 * thresholds.difference), 0, 1).astype(np.float32)
    marked = diff >= thresholds.difference
    # How well the surface around each pixel agrees, the marked pixels left out: damage is a
    # difference on a surface that otherwise matches; a misaligned or re-lit view differs in
    # scattered pieces whose surroundings do not match either.
    calm = (c.shared & ~marked).astype(np.float32)
    weight = cv2.GaussianBlur(calm, (0, 0), 8.0)
    around = cv2.GaussianBlur(diff * calm, (0, 0), 8.0) / np.maximum(weight, 1e-3)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(marked.astype(np.uint8), 8)
    regions = np.zeros(shape, bool)
    kept = unsupported = 0
    for i in range(1, count):
        if stats[i, cv2.CC_STAT_AREA] < thresholds.min_region_px:
            continue
        piece = labels == i
        if float(around[piece].mean()) > thresholds.max_surround_difference:
            unsupported += 1
            continue
        regions |= piece
        kept += 1
    region_share = float(regions.sum()) / max(1.0, float(c.shared.sum()))
    verdict: Verdict = "missing" if regions.any() else "agrees"
    why = ""
    if c.shared_fraction < thresholds.min_shared_fraction:
        verdict, why = "cannot_tell", "too_little_shared_surface"
    elif c.correlation < thresholds.min_correlation:
        verdict, why = "cannot_tell", "views_do_not_compare"
    elif region_share > thresholds.max_region_share or kept > thresholds.max_regions:
        verdict, why = "cannot_tell", "differences_too_large"
    elif verdict == "agrees" and unsupported > thresholds.max_regions:
        verdict, why = "cannot_tell", "views_do_not_compare"
    return dataclasses.replace(
        c,
        verdict=verdict,
        heat=heat,
        here=regions & c.claim_side,
        there=regions & ~c.claim_side,
        region_share=region_share,
        why=why,
    )


# --- pictures ----------------------------------------------------------------------------------


def _outline(rgb: RGB, mask: BoolMap, colour: tuple[int, int, int]) -> RGB:
    out = rgb.copy()
    if mask.any():
        contours, _ = cv2.findContours(
            cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)),
            cv2.RETR_EXTERNAL,
            cv2.CHAIN_APPROX_SIMPLE,
        )
        cv2.drawContours(
            out, contours, -1, colour, max(1, round(max(rgb.shape[:2]) / 300)), cv2.LINE_AA
        )
    return out


def _to_other(mask: BoolMap, faces: Sequence[Face], other_shape: tuple[int, int]) -> BoolMap:
    """A claim-frame mask drawn into the other view through each face's inverse homography."""
    out = np.zeros(other_shape, bool)
    for face in faces:
        piece = (mask & face.region).astype(np.uint8) * 255
        if piece.any():
            inverse = np.linalg.inv(face.homography)
            out |= (
                cv2.warpPerspective(
                    piece, inverse, (other_shape[1], other_shape[0]), flags=cv2.INTER_LINEAR
                )
                >= 128
            )
    return out


RED = (230, 30, 30)
ORANGE = (250, 150, 0)
GREEN = (40, 200, 60)


def side_by_side(claim: RGB, other: RGB, comparison: ViewComparison) -> RGB:
    """The claim (left) and the other view (right) at the work size, the shared surface's border
    in green on both, regions only the claim shows in red and regions only the other view shows in
    orange, each drawn on both photos (where it is on one, where it should be on the other)."""
    a, b = _work_copy(claim), _work_copy(other)
    left = _outline(a, comparison.shared, GREEN)
    left = _outline(left, comparison.here, RED)
    left = _outline(left, comparison.there, ORANGE)
    faces = comparison.faces
    right = _outline(b, _to_other(comparison.shared, faces, b.shape[:2]), GREEN)
    right = _outline(right, _to_other(comparison.here, faces, b.shape[:2]), RED)
    right = _outline(right, _to_other(comparison.there, faces, b.shape[:2]), ORANGE)
    rows = max(left.shape[0], right.shape[0])
    canvas = np.full((rows, left.shape[1] + 8 + right.shape[1], 3), 255, np.uint8)
    canvas[: left.shape[0], : left.shape[1]] = left
    canvas[: right.shape[0], left.shape[1] + 8 :] = right
    return canvas


def heatmap_picture(claim: RGB, comparison: ViewComparison) -> RGB:
    """The structure difference as a heatmap blended over the claim (grey outside the shared
    surface)."""
    a = _work_copy(claim)
    colour = cv2.applyColorMap((comparison.heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    out = (0.55 * a + 0.45 * colour).astype(np.uint8)
    grey = cv2.cvtColor(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    out[~comparison.shared] = grey[~comparison.shared]
    return out


# --- the detector ------------------------------------------------------------------------------


def _upscale(mask: BoolMap, shape: tuple[int, int]) -> BoolMap:
    if mask.shape == shape:
        return mask.copy()
    return (
        cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        >= 0.5
    )


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _facts(other: Media, c: ViewComparison, live: bool) -> dict[str, Any]:
    shared = max(1.0, float(c.shared.sum()))
    return {
        "other_view": other.name,
        "other_view_sha256": other.sha256,
        "other_view_live_capture": live,
        "faces": len(c.faces),
        "face_inliers": [f.inliers for f in c.faces],
        "tentative_matches": c.faces[0].tentative if c.faces else 0,
        "shared_percent_of_photo": round(100 * c.shared_fraction, 1),
        "hand_or_occluder_percent": round(100 * c.occluded_fraction, 1),
        "structure_correlation": round(c.correlation, 3),
        "differing_percent_of_shared": round(100 * c.region_share, 2),
        "only_in_this_photo_percent": round(100 * float(c.here.sum()) / shared, 2),
        "only_in_other_view_percent": round(100 * float(c.there.sum()) / shared, 2),
        "blur_matched_px": [round(v, 1) for v in c.blur],
        "reason_cannot_tell": c.why or None,
    }


class ConsistencyDetector(Detector):
    """Damage that must agree across two photos of one item (claim photo and live capture, or
    two photos of one claim)."""

    name = "consistency"
    codes: ClassVar[Mapping[str, str]] = {
        "consistency.damage_missing_in_other_view": "structure (damage) seen in one view is absent "
        "from another view of the same surface; regions outlined on both",
        "consistency.damage_confirmed": "the views agree on the shared surface (supports the buyer)",
        "consistency.cannot_tell": "too little surface shared, or the views do not compare "
        "(informational)",
    }
    requires = frozenset({Requirement.VIEWS})

    def __init__(self, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> None:
        self.thresholds = thresholds

    def analyze(self, claim: Media, context: Context) -> list[Finding]:
        others = [v for v in context.views if v.sha256 != claim.sha256]
        if not others:
            return []
        results = [
            (other, compare_views(claim.analysis, other.analysis, thresholds=self.thresholds))
            for other in others
        ]
        live = set(context.live_captures)
        missing = [(o, c) for o, c in results if c.verdict == "missing"]
        agrees = [(o, c) for o, c in results if c.verdict == "agrees"]
        if missing:
            other, c = max(missing, key=lambda oc: oc[1].region_share)
            return [self._missing(claim, other, c, other.sha256 in live)]
        if agrees:
            other, c = max(agrees, key=lambda oc: oc[1].shared_fraction * oc[1].correlation)
            return [self._agrees(claim, other, c, other.sha256 in live)]
        other, c = max(results, key=lambda oc: oc[1].shared_fraction)
        return [self._cannot_tell(claim, other, c, other.sha256 in live)]

    def _pictures(self, claim: Media, other: Media, c: ViewComparison) -> dict[str, RGB]:
        return {
            "views_side_by_side": side_by_side(claim.analysis, other.analysis, c),
            "views_difference": heatmap_picture(claim.analysis, c),
        }

    def _missing(self, claim: Media, other: Media, c: ViewComparison, live: bool) -> Finding:
        facts = _facts(other, c, live)
        what_en = "the live capture" if live else "the other photo"
        what_zh = "实时拍摄的照片" if live else "另一张照片"
        here = 100 * float(c.here.sum()) / max(1.0, float(c.shared.sum()))
        there = 100 * float(c.there.sum()) / max(1.0, float(c.shared.sum()))
        # Confidence: how much surface backs the comparison and how well it aligns.
        confidence = float(
            np.clip(
                0.4 + 0.6 * min(1.0, c.correlation / 0.6) * min(1.0, c.shared_fraction / 0.15),
                0.4,
                1.0,
            )
        )
        return Finding(
            "consistency.damage_missing_in_other_view",
            3.0 * confidence,
            confidence,
            Reason(
                f"{_short(claim.name)} and {what_en} {_short(other.name)} show the same surface "
                f"({100 * c.shared_fraction:.0f}% of the photo, {len(c.faces)} face(s) aligned), but "
                f"they disagree there: {here:.1f}% of it shows structure only in this photo (red) and "
                f"{there:.1f}% only in {what_en} (orange). Damage that exists looks the same from "
                "every side; compare the outlined regions, or ask for a live capture.",
                f"{_short(claim.name)} 与{what_zh} {_short(other.name)} 拍到了同一表面"
                f"（占照片 {100 * c.shared_fraction:.0f}%，对齐 {len(c.faces)} 个面），但两者不一致："
                f"其中 {here:.1f}% 的区域只在本照片中有纹理（红色），{there:.1f}% 只在{what_zh}中有"
                "（橙色）。真实的破损从各个角度看都应一致；请对比标出的区域，或请买家实时拍摄。",
            ),
            facts,
            Region(_upscale(c.here | c.there, claim.analysis.shape[:2]), "mask"),
            self.name,
            self._pictures(claim, other, c),
        )

    def _agrees(self, claim: Media, other: Media, c: ViewComparison, live: bool) -> Finding:
        facts = _facts(other, c, live)
        what_en = "the live capture" if live else "the other photo"
        what_zh = "实时拍摄的照片" if live else "另一张照片"
        confidence = float(
            np.clip(min(c.correlation / 0.6, 1.0) * min(c.shared_fraction / 0.15, 1.0), 0.2, 1.0)
        )
        return Finding(
            "consistency.damage_confirmed",
            -1.0 * confidence,
            confidence,
            Reason(
                f"{_short(claim.name)} and {what_en} {_short(other.name)} agree where they show the "
                f"same surface ({100 * c.shared_fraction:.0f}% of the photo, structure correlation "
                f"{c.correlation:.2f}): nothing seen in one, damage included, is missing from the other.",
                f"{_short(claim.name)} 与{what_zh} {_short(other.name)} 在共同可见的表面上一致"
                f"（占照片 {100 * c.shared_fraction:.0f}%，结构相关系数 {c.correlation:.2f}）："
                "一张中可见的内容（包括破损）在另一张中同样存在。",
            ),
            facts,
            None,
            self.name,
            self._pictures(claim, other, c),
        )

    def _cannot_tell(self, claim: Media, other: Media, c: ViewComparison, live: bool) -> Finding:
        facts = _facts(other, c, live)
        why_en, why_zh = {
            "no_shared_face": (
                "no surface of one could be matched in the other",
                "两张照片中找不到可匹配的共同表面",
            ),
            "too_little_shared_surface": (
                f"only {100 * c.shared_fraction:.1f}% of the photo shows surface the other shows too",
                f"两张照片共同可见的表面仅占 {100 * c.shared_fraction:.1f}%",
            ),
            "views_do_not_compare": (
                f"the shared surface does not compare (structure correlation {c.correlation:.2f}: glare, blur or another object)",
                f"共同表面无法比较（结构相关系数 {c.correlation:.2f}：反光、模糊或其他物体）",
            ),
            "differences_too_large": (
                f"{100 * c.region_share:.0f}% of the shared surface differs, more than damage would (occlusion, glare, another object)",
                f"共同表面 {100 * c.region_share:.0f}% 的区域不同，超出破损可能的范围（遮挡、反光或其他物体）",
            ),
        }.get(c.why, ("the views could not be compared", "两张照片无法比较"))
        return Finding(
            "consistency.cannot_tell",
            0.0,
            0.5,
            Reason(
                f"Cannot tell whether {_short(claim.name)} and {_short(other.name)} agree: {why_en}. "
                "This says nothing either way.",
                f"无法判断 {_short(claim.name)} 与 {_short(other.name)} 是否一致：{why_zh}。仅凭这一点不能得出任何结论。",
            ),
            facts,
            None,
            self.name,
            {"views_side_by_side": side_by_side(claim.analysis, other.analysis, c)}
            if c.faces
            else {},
        )

    @classmethod
    def examples(cls) -> Sequence[Example]:
        from ._consistency_examples import consistency_examples

        return consistency_examples()
