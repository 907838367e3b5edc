"""Local-feature matching and robust homography between a claim and a reference image.

Coordinates in this module are OpenCV's (x, y) = (col, row) pixel positions, because keypoints and
homographies are exchanged with OpenCV; everything else in refundlens uses (row, col).

References
----------
.. [1] D. G. Lowe, "Distinctive image features from scale-invariant keypoints", IJCV 60(2), 2004.
.. [2] R. Arandjelovic and A. Zisserman, "Three things everyone should know to improve object
       retrieval" (RootSIFT), CVPR 2012.
.. [3] D. Barath, J. Noskova, M. Ivashechkin and J. Matas, "MAGSAC++, a fast, reliable and accurate
       robust estimator", CVPR 2020 (OpenCV's USAC_MAGSAC).
.. [4] R. Ma, J. Chen and Z. Su, "MI-SIFT: mirror and inversion invariant generalization for SIFT
       descriptor", CIVR 2010 (how a mirror permutes the SIFT histogram cells and bins).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "FeatureSetIndex",
    "Features",
    "Match",
    "claim_index",
    "detect_features",
    "homography_from_pairs",
    "match_homography",
    "mirror_features",
]

FloatArray = npt.NDArray[np.float32]


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Features:
    """Keypoints (x, y) in the coordinates of the image they were found in, with RootSIFT descriptors."""

    points: FloatArray
    descriptors: FloatArray

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Match:
    """A homography mapping reference (x, y) to claim (x, y), with its RANSAC support."""

    homography: npt.NDArray[np.float64]
    inliers: int
    tentative: int
    ref_points: FloatArray
    claim_points: FloatArray

    @property
    def inlier_ratio(self) -> float:
        return self.inliers / self.tentative if self.tentative else 0.0


def _gray(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb


def detect_features(
    rgb: npt.NDArray[np.uint8], *, max_features: int = 1000, contrast_threshold: float = 0.04
) -> Features:
    """SIFT keypoints with RootSIFT descriptors (L1-normalised, square-rooted) [1]_ [2]_.

    Contrast is equalised locally first (CLAHE) so that the same surface found under another
    exposure, gamma or tone curve gives the same keypoints.
    """
    gray = _gray(rgb)
    gray = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    sift = cv2.SIFT_create(  # type: ignore[attr-defined]
        nfeatures=max_features, contrastThreshold=contrast_threshold
    )
    keypoints, desc = sift.detectAndCompute(gray, None)
    if desc is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    desc = desc.astype(np.float32)
    desc /= desc.sum(axis=1, keepdims=True) + 1e-7
    desc = np.sqrt(desc)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32)
    return Features(points, desc)


def mirror_features(features: Features, width: int) -> Features:
    """The features of the left-right mirrored image, without detecting them again [4]_.

    ``width`` is the width in pixels of the image the features were found in. A mirror maps a
    keypoint at x to ``width - 1 - x`` and its orientation theta to pi - theta; in the keypoint's
    own frame the patch is then reflected about its orientation axis, so the descriptor's 4 x 4
    grid of cells reverses along the axis across the orientation and each cell's 8 orientation
    bins run backwards (bin o becomes bin -o mod 8). RootSIFT is computed per element, so the
    permutation applies to it unchanged. Against descriptors computed on the mirrored image the
    permuted ones differ by about a tenth of a descriptor's mean magnitude (interpolation and
    orientation rounding) and match as many points (tests/test_matching.py); they cost a copy
    instead of a second SIFT pass, half of a reference's preparation.
    """
    points = features.points.copy()
    points[:, 0] = (width - 1) - points[:, 0]
    cells = features.descriptors.reshape(-1, 4, 4, 8)[:, ::-1][..., _MIRRORED_BINS]
    return Features(points, np.ascontiguousarray(cells.reshape(-1, 128), np.float32))


_MIRRORED_BINS = (-np.arange(8)) % 8


def _plausible(h: npt.NDArray[np.float64], ref_shape: tuple[int, int]) -> bool:
    """Reject degenerate homographies: folded, collapsed or absurdly stretched quads."""
    rows, cols = ref_shape
    corners = np.array([[0, 0], [cols, 0], [cols, rows], [0, rows]], np.float64).reshape(-1, 1, 2)
    quad = cv2.perspectiveTransform(corners, h).reshape(-1, 2)
    if not np.all(np.isfinite(quad)):
        return False
    area = cv2.contourArea(quad.astype(np.float32))
    ref_area = float(rows * cols)
    if area < 0.002 * ref_area or area > 400 * ref_area:
        return False
    if not cv2.isContourConvex(quad.astype(np.float32)):
        return False
    # Perspective terms that flip the horizon inside the image are not a photo of a product.
    w = h[2, 0] * corners[:, 0, 0] + h[2, 1] * corners[:, 0, 1] + h[2, 2]
    return bool(np.all(w > 0) or np.all(w < 0))


def claim_index(claim: Features) -> Any:
    """A FLANN index (randomised k-d trees) over the claim's descriptors, built once and queried
    with every reference: several times faster than brute force at 1,500 x 1,500 RootSIFT
    descriptors; the ratio test discards the rare wrong neighbour anyway."""
    matcher = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 32})
    if len(claim):
        matcher.add([claim.descriptors])
        # The trees are randomised from OpenCV's per-thread RNG: seeded, the same claim gets
        # the same matches whatever ran before it in this thread.
        cv2.setRNGSeed(20251)
        matcher.train()
    return matcher


def match_homography(
    ref: Features,
    claim: Features,
    ref_shape: tuple[int, int],
    *,
    index: Any = None,
    ratio: float = 0.8,
    reproj_threshold: float = 3.0,
) -> Match | None:
    """Lowe's ratio test, then a MAGSAC++ homography from reference to claim [3]_.

    Returns None when fewer than 8 tentative matches exist or no plausible homography is found.
    ``ref_shape`` is (rows, cols) of the reference image the points are in.
    """
    if len(ref) < 8 or len(claim) < 8:
        return None
    index = index if index is not None else claim_index(claim)
    pairs = index.knnMatch(ref.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    return homography_from_pairs(
        ref.points[[m.queryIdx for m in good]],
        claim.points[[m.trainIdx for m in good]],
        ref_shape,
        reproj_threshold=reproj_threshold,
    )


def homography_from_pairs(
    src: FloatArray,
    dst: FloatArray,
    ref_shape: tuple[int, int],
    *,
    reproj_threshold: float = 3.0,
) -> Match | None:
    """A MAGSAC++ homography from tentative pairs reference (x, y) -> claim (x, y) [3]_, or None
    when fewer than 8 pairs exist or no plausible homography is found."""
    if len(src) < 8:
        return None
    h, mask = cv2.findHomography(
        src, dst, cv2.USAC_MAGSAC, reproj_threshold, maxIters=4000, confidence=0.999
    )
    if h is None or mask is None:
        return None
    keep = mask.ravel().astype(bool)
    if keep.sum() < 4 or not _plausible(h, ref_shape):
        return None
    return Match(h, int(keep.sum()), len(src), src[keep], dst[keep])


class FeatureSetIndex:
    """One FLANN index over several feature sets (a SKU's reference photos, plain and mirrored),
    queried once with the claim's descriptors instead of once per set.

    The ratio test [1]_ is applied per set: a claim descriptor's nearest neighbour in a set is kept
    when it is closer than ``ratio`` times the second nearest *in the same set*. Where the second is
    not among the ``k`` neighbours returned, the k-th distance stands in for it; it is a lower bound,
    so the test only gets stricter. Sets that show the same picture twice (a listing photo uploaded
    at two sizes) therefore do not cancel each other out as they would under a global ratio test.
    """

    def __init__(self, sets: list[Features], *, checks: int = 64) -> None:
        self.sets = sets
        sizes = [len(f) for f in sets]
        self.owner = np.repeat(np.arange(len(sets)), sizes)
        self.row = np.concatenate([np.arange(n) for n in sizes]) if sets else np.zeros(0, int)
        self.checks = checks
        self.index: Any = None
        if sum(sizes) >= 2:
            data = np.ascontiguousarray(np.concatenate([f.descriptors for f in sets]), np.float32)
            cv2.setRNGSeed(20251)  # randomised k-d trees: the same sets give the same index
            self.index = cv2.flann_Index(data, {"algorithm": 1, "trees": 4})  # type: ignore[attr-defined]

    def tentative_pairs(
        self, claim: Features, *, ratio: float = 0.8
    ) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
        """Per set: (set row indices, claim row indices) of the pairs passing the ratio test."""
        empty = (np.zeros(0, np.intp), np.zeros(0, np.intp))
        if self.index is None or len(claim) < 8:
            return [empty for _ in self.sets]
        k = min(len(self.owner), max(4, 2 * len(self.sets)))
        idx, dist = self.index.knnSearch(
            np.ascontiguousarray(claim.descriptors, np.float32), k, params={"checks": self.checks}
        )
        idx = idx.astype(np.intp)
        valid = idx >= 0
        owners = np.where(valid, self.owner[np.clip(idx, 0, None)], -1)
        floor = dist[:, -1]  # squared L2, as FLANN returns it
        rows = np.arange(len(idx))
        out = []
        for s in range(len(self.sets)):
            mine = owners == s
            seen = np.cumsum(mine, axis=1)
            has1 = seen[:, -1] >= 1
            p1 = np.argmax(mine, axis=1)
            p2 = np.argmax(mine & (seen == 2), axis=1)
            d1 = dist[rows, p1]
            d2 = np.where(seen[:, -1] >= 2, dist[rows, p2], floor)
            keep = has1 & (d1 < ratio * ratio * d2)
            out.append((self.row[idx[rows[keep], p1[keep]]], rows[keep].astype(np.intp)))
        return out
