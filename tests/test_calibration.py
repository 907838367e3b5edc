from __future__ import annotations

import math
from pathlib import Path

import pytest

from refundlens.calibration import calibrated_strengths, log_likelihood_ratio
from refundlens.detectors.base import Finding, Reason
from refundlens.fusion import fuse, load_policy


def test_likelihood_ratio_is_jeffreys_smoothed_and_finite_when_genuine_never_show_it() -> None:
    assert log_likelihood_ratio(10, 10, 0, 99) == pytest.approx(math.log((10.5 / 11) / (0.5 / 100)))
    assert log_likelihood_ratio(0, 10, 10, 10) < 0
    with pytest.raises(ValueError):
        log_likelihood_ratio(11, 10, 0, 10)


def test_bundled_calibration_table_gives_every_listed_code_a_finite_strength() -> None:
    strengths = calibrated_strengths()
    assert strengths["reference.derived"] > 3 and strengths["reference.near_copy_unresolved"] > 0
    # The bench has no forgery that is a new exposure: clearing such photos is not measured.
    assert "reference.same_item_new_photo" not in strengths
    assert all(math.isfinite(v) for v in strengths.values())


def test_fusion_uses_the_measured_strength_scaled_by_confidence(tmp_path: Path) -> None:
    finding = Finding("reference.near_copy_unresolved", 0.1, 0.5, Reason("x.", "x。"), {})
    calibrated = fuse([finding], load_policy())
    assert calibrated.reasons[0][1] == pytest.approx(
        calibrated_strengths()["reference.near_copy_unresolved"] * 0.5
    )
    off = tmp_path / "p.yaml"
    off.write_text("use_calibration: false\n")
    assert fuse([finding], load_policy(off)).reasons[0][1] == pytest.approx(0.1)
