from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from refundlens.detectors.base import Finding, Reason
from refundlens.fusion import ACTIONS, PolicyError, fuse, load_policy


def _finding(code: str, strength: float) -> Finding:
    return Finding(code, strength, 0.9, Reason("x.", "x。"), {})


def test_derived_finding_escalates_on_its_own_even_when_weak() -> None:
    verdict = fuse([_finding("reference.derived", 0.5)], load_policy())
    assert verdict.action == "escalate"
    assert verdict.risk >= load_policy().thresholds["escalate"]


def test_same_item_new_photo_approves() -> None:
    verdict = fuse([_finding("reference.same_item_new_photo", -1.5)], load_policy())
    assert verdict.action == "approve" and verdict.risk < 0.05


def test_reasons_are_sorted_by_how_much_they_moved_the_risk() -> None:
    verdict = fuse(
        [_finding("a.small", 0.3), _finding("b.big", -2.0), _finding("c.mid", 1.0)], load_policy()
    )
    assert [f.code for f, _ in verdict.reasons] == ["b.big", "c.mid", "a.small"]


def test_no_policy_can_make_fusion_reject() -> None:
    assert "reject" not in ACTIONS
    verdict = fuse([_finding("reference.derived", 50.0)] * 3, load_policy())
    assert verdict.action == "escalate"


def test_platform_policy_overrides_thresholds_and_weights(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("weights:\n  x.signal: 0\nthresholds:\n  request_capture: 0.01\n")
    policy = load_policy(path)
    assert policy.thresholds["request_capture"] == 0.01 and policy.thresholds["escalate"] == 0.90
    assert fuse([_finding("x.signal", 10.0)], policy).action == "request_capture"


def test_policy_with_falling_thresholds_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("thresholds:\n  review: 0.2\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert info.value.code == "policy.invalid"


def test_pixel_forensics_alone_reaches_review_but_never_escalates() -> None:
    policy = load_policy()
    strong = fuse(
        [_finding("pixels.noise_inconsistency", 9.0), _finding("pixels.copy_move", 9.0)], policy
    )
    assert strong.action == "review"


def test_pixel_evidence_with_a_derived_reference_escalates() -> None:
    verdict = fuse(
        [_finding("pixels.noise_inconsistency", 3.0), _finding("reference.derived", 3.0)],
        load_policy(),
    )
    assert verdict.action == "escalate"


def test_a_bank_match_by_local_print_alone_asks_for_a_live_capture_and_never_more() -> None:
    policy = load_policy()
    weak = fuse([_finding("reuse.bank_local_match", 0.1)], policy)
    assert weak.action == "request_capture"
    strong = fuse([_finding("reuse.bank_local_match", 8.0)], policy)
    assert strong.action == "request_capture"
    with_pixels = fuse(
        [_finding("reuse.bank_local_match", 3.0), _finding("pixels.copy_move", 4.0)], policy
    )
    assert with_pixels.action == "review"
    with_derived = fuse(
        [_finding("reuse.bank_local_match", 3.0), _finding("reference.derived", 3.0)], policy
    )
    assert with_derived.action == "escalate"


def test_a_photo_of_a_screen_loses_the_support_of_a_new_photo_of_the_product() -> None:
    new_photo = _finding("reference.same_item_new_photo", -1.5)
    screen = _finding("pixels.recapture", 2.5)
    alone = fuse([new_photo], load_policy())
    both = fuse([new_photo, screen], load_policy())
    assert alone.action == "approve"
    assert both.action == "request_capture"
    voided, contribution = next(
        (f, c) for f, c in both.reasons if f.code == "reference.same_item_new_photo"
    )
    assert contribution == 0.0
    assert voided.facts["voided_by"] == "pixels.recapture"
    assert "pixels.recapture" in voided.reason.en and "pixels.recapture" in voided.reason.zh


def test_a_new_photo_of_the_product_does_not_answer_a_local_edit_found_in_it() -> None:
    # A real Photoshop edit beside the photo it came from read as a new photo of the product,
    # which cancelled the pasted region the pixels found: approved (a merchant's walkthrough).
    # The buyer's own photo with damage painted in is a new photo of the product too.
    new_photo = _finding("reference.same_item_new_photo", -1.5)
    policy = load_policy()
    cancelling = dataclasses.replace(policy, voids_support={})
    edit = _finding("pixels.double_jpeg_inconsistency", 2.7)
    assert fuse([new_photo, edit], cancelling).action == "approve"
    assert fuse([new_photo, edit], policy).action == "request_capture"
    for code in ("pixels.double_jpeg_inconsistency", "pixels.painted_patch", "pixels.copy_move"):
        both = fuse([new_photo, _finding(code, 2.7)], policy)
        assert both.risk > fuse([new_photo, _finding(code, 2.7)], cancelling).risk, code
        voided = next(f for f, _ in both.reasons if f.code == "reference.same_item_new_photo")
        assert voided.facts["voided_by"] == code
    # Alone it still speaks for the buyer, and a finding that lowers nothing voids nothing.
    assert fuse([new_photo], load_policy()).action == "approve"
    quiet = fuse([new_photo, _finding("pixels.none_found", 0.0)], load_policy())
    assert quiet.action == "approve"


def test_what_the_buyer_controls_does_not_answer_an_edit_the_pixels_found() -> None:
    """A "video" made of the forged photo (unboxing.same_scene) and an EXIF time written into
    it (capture.consistent_with_order) each took an edited photo to approve (a security
    review): like a new photo of the product, neither answers a local edit."""
    policy = load_policy()
    cancelling = dataclasses.replace(policy, voids_support={})
    edit = _finding("pixels.double_jpeg_inconsistency", 2.7)
    for support, strength in (
        ("unboxing.same_scene", -1.5),
        ("capture.consistent_with_order", -0.5),
    ):
        both = fuse([_finding(support, strength), edit], policy)
        assert both.risk > fuse([_finding(support, strength), edit], cancelling).risk, support
        assert both.risk == pytest.approx(fuse([edit], policy).risk), support
        voided = next(f for f, _ in both.reasons if f.code == support)
        assert voided.facts["voided_by"] == "pixels.double_jpeg_inconsistency"
        # Alone, it still speaks for the buyer.
        assert fuse([_finding(support, strength)], policy).risk < fuse([], policy).risk


def test_a_platform_can_let_findings_cancel_again(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("voids_support:\n  pixels.recapture: []\n")  # keys merge over the defaults
    verdict = fuse(
        [_finding("reference.same_item_new_photo", -1.5), _finding("pixels.recapture", 2.5)],
        load_policy(path),
    )
    assert verdict.action == "approve"


def test_voids_support_must_list_codes(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("voids_support:\n  pixels.recapture: reference.same_item_new_photo\n")
    with pytest.raises(PolicyError, match="voids_support"):
        load_policy(path)


def test_a_voided_finding_keeps_its_pictures_and_each_finding_says_what_it_added() -> None:
    # A photo of a screen voids the support of a new photo of the product: the reasons list a
    # changed copy of that finding. Its mask and pictures, written per finding as analysed, go
    # with it (they were looked up by equality once, and the copy crashed every report), and
    # each finding says what it added to the risk, which the risk is made of.
    import io
    import math

    import numpy as np
    from PIL import Image

    from refundlens.media import media_from_bytes
    from refundlens.pipeline import Assessment, ImageAssessment
    from refundlens.report import assessment_to_dict
    from refundlens.report.json import load_schema

    policy = load_policy()
    findings = (
        _finding("reference.same_item_new_photo", -1.5),
        _finding("capture.metadata_stripped", 0.3),
        _finding("pixels.recapture", 2.5),
        _finding("consistency.damage_confirmed", -1.0),  # calibrated: its strength is not used
    )
    verdict = fuse(findings, policy)
    encoded = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(encoded, "JPEG")
    media = media_from_bytes(encoded.getvalue(), "claim.jpg")
    image = ImageAssessment(media, findings, verdict)
    report = assessment_to_dict(
        Assessment((image,), ()),
        region_paths={(0, 0): "claim.mask.png"},
        picture_paths={(0, 0): {"aligned_reference": "claim.aligned_reference.png"}},
    )
    listed = {f["code"]: f for f in report["images"][0]["findings"]}
    voided = listed["reference.same_item_new_photo"]
    assert voided["facts"]["voided_by"] == "pixels.recapture"
    assert voided["region"] == "claim.mask.png"
    assert voided["pictures"] == {"aligned_reference": "claim.aligned_reference.png"}
    assert voided["contribution"] == 0.0
    assert listed["pixels.recapture"]["region"] is None
    log_odds = policy.prior_log_odds + sum(f["contribution"] for f in listed.values())
    assert abs(1 / (1 + math.exp(-log_odds)) - verdict.risk) < 1e-3
    confirmed = listed["consistency.damage_confirmed"]
    assert confirmed["contribution"] == round(policy.strength(findings[3]), 4) != -1.0
    import jsonschema

    jsonschema.validate(report, load_schema())
