from __future__ import annotations

import cv2
import numpy as np

from refundlens.detectors._examples import _product
from refundlens.detectors.matching import detect_features, match_homography, mirror_features


def _mirrored_claim(listing: np.ndarray) -> np.ndarray:
    """The listing photo mirrored, turned 10 degrees, shrunk to 80% and saved at JPEG 70."""
    rows, cols = listing.shape[:2]
    turn = cv2.getRotationMatrix2D((cols / 2, rows / 2), 10, 0.8)
    claim = cv2.warpAffine(
        np.ascontiguousarray(listing[:, ::-1]), turn, (cols, rows), borderValue=(255, 255, 255)
    )
    _ok, buffer = cv2.imencode(".jpg", claim, [cv2.IMWRITE_JPEG_QUALITY, 70])
    return cv2.imdecode(buffer, cv2.IMREAD_COLOR)


def test_mirrored_features_sit_where_the_mirror_puts_the_keypoints() -> None:
    listing = _product(31)
    plain = detect_features(listing)
    mirrored = mirror_features(plain, listing.shape[1])
    assert len(mirrored) == len(plain)
    np.testing.assert_allclose(mirrored.points[:, 0], listing.shape[1] - 1 - plain.points[:, 0])
    np.testing.assert_array_equal(mirrored.points[:, 1], plain.points[:, 1])
    # A permutation of each descriptor: the same values, another order.
    np.testing.assert_allclose(
        np.sort(mirrored.descriptors, axis=1), np.sort(plain.descriptors, axis=1)
    )
    assert not np.allclose(mirrored.descriptors, plain.descriptors)


def test_mirrored_features_match_a_mirrored_claim_as_well_as_features_detected_on_the_mirror() -> (
    None
):
    listing = _product(32, size=480)
    claim = detect_features(_mirrored_claim(listing))
    derived = mirror_features(detect_features(listing), listing.shape[1])
    detected = detect_features(np.ascontiguousarray(listing[:, ::-1]))
    got = match_homography(derived, claim, listing.shape[:2])
    want = match_homography(detected, claim, listing.shape[:2])
    assert want is not None and got is not None
    assert got.inliers >= 0.8 * want.inliers
    assert got.inlier_ratio >= 0.5


def test_plain_features_do_not_match_a_mirrored_claim() -> None:
    """The check above means something only if the mirror is what made the match."""
    listing = _product(32, size=480)
    claim = detect_features(_mirrored_claim(listing))
    plain = match_homography(detect_features(listing), claim, listing.shape[:2])
    derived = match_homography(
        mirror_features(detect_features(listing), listing.shape[1]), claim, listing.shape[:2]
    )
    assert derived is not None
    assert plain is None or plain.inliers < 0.2 * derived.inliers
