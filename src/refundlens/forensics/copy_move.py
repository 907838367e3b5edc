"""Copy-move: a region of the photo cloned onto another part of the same photo.

Keypoints are matched against the same image's other keypoints with the generalised 2-NN test
[1]_; pairs further apart than a minimum distance that agree on one affine transform (RANSAC) are
a clone. Identical objects side by side (two bottles of one product, tiles, printed patterns) match
the same way, so the finding says so and stays weak on its own.

References
----------
.. [1] I. Amerini, L. Ballan, R. Caldelli, A. Del Bimbo, G. Serra, "A SIFT-based forensic method for
       copy-move attack detection and transformation recovery", IEEE Trans. Information Forensics
       and Security 6(3), 2011.
"""

from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["CopyMove", "find_copy_move"]


@dataclasses.dataclass(frozen=True, slots=True)
class CopyMove:
    """One cloned pair of regions. ``mask`` covers source and copy (analysis resolution)."""

    pairs: int
    inliers: int
    shift_px: float
    scale: float
    rotation_deg: float
    mask: npt.NDArray[np.bool_]
    source_box: tuple[int, int, int, int]
    copy_box: tuple[int, int, int, int]


def _box(points: npt.NDArray[np.float32]) -> tuple[int, int, int, int]:
    x0, y0 = points.min(0)
    x1, y1 = points.max(0)
    return int(y0), int(x0), int(y1 - y0 + 1), int(x1 - x0 + 1)


def find_copy_move(
    rgb: npt.ArrayLike,
    *,
    max_features: int = 4000,
    ratio: float = 0.5,
    min_distance: float = 24.0,
    min_inliers: int = 10,
    reprojection_px: float = 3.0,
) -> CopyMove | None:
    """The strongest cloned region pair, or None.

    Parameters
    ----------
    rgb : RGB uint8 image (the analysis copy; about 1 MP is enough).
    ratio : g2NN threshold between a keypoint's successive neighbour distances [1]_.
    min_distance : pixels between a keypoint and its match (a keypoint is not its own clone).
    min_inliers : matches that must agree on one affine transform.
    """
    arr = np.asarray(rgb, dtype=np.uint8)
    luma = cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    sift = cv2.SIFT_create(  # type: ignore[attr-defined]
        nfeatures=max_features, contrastThreshold=0.02
    )
    keypoints, descriptors = sift.detectAndCompute(luma, None)
    if descriptors is None or len(keypoints) < 2 * min_inliers:
        return None
    points = np.array([k.pt for k in keypoints], np.float32)
    descriptors = descriptors.astype(np.float32)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    k = min(8, len(keypoints))
    src: list[int] = []
    dst: list[int] = []
    for row in matcher.knnMatch(descriptors, descriptors, k=k):
        neighbours = [m for m in row if m.trainIdx != m.queryIdx]
        for first, second in itertools.pairwise(neighbours):
            if first.distance >= ratio * max(second.distance, 1e-6):
                break
            i, j = first.queryIdx, first.trainIdx
            if i < j and np.linalg.norm(points[i] - points[j]) >= min_distance:
                src.append(i)
                dst.append(j)
    if len(src) < min_inliers:
        return None
    a, b = points[src], points[dst]
    # A clone and its source can be listed either way round; orient pairs by the shift's sign.
    flip = (b[:, 0] - a[:, 0]) < 0
    a[flip], b[flip] = b[flip].copy(), a[flip].copy()
    cv2.setRNGSeed(20251)  # same answer whatever ran before in this thread
    matrix, inliers = cv2.estimateAffinePartial2D(
        a, b, method=cv2.RANSAC, ransacReprojThreshold=reprojection_px, maxIters=4000
    )
    if matrix is None or inliers is None or int(inliers.sum()) < min_inliers:
        return None
    keep = inliers.ravel().astype(bool)
    a_in, b_in = a[keep], b[keep]
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    shift = float(np.median(np.linalg.norm(b_in - a_in, axis=1)))
    if shift < min_distance:
        return None
    mask = np.zeros(luma.shape, np.uint8)
    for group in (a_in, b_in):
        hull = cv2.convexHull(group.astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1)
    radius = max(3, round(0.02 * max(luma.shape)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
    return CopyMove(
        pairs=len(src),
        inliers=int(keep.sum()),
        shift_px=shift,
        scale=scale,
        rotation_deg=float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0]))),
        mask=mask.astype(bool),
        source_box=_box(a_in),
        copy_box=_box(b_in),
    )
