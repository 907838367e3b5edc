"""The pipeline runs detectors cheapest first and skips pixel forensics where a cheaper finding
already sends the image to escalate; it says which ran and which were skipped, and why."""

from __future__ import annotations

from refundlens.config import Settings
from refundlens.detectors._pixels_examples import camera_photo, encode
from refundlens.detectors.provenance._examples import png_with_text
from refundlens.media import media_from_bytes
from refundlens.pipeline import COST_ORDER, analyze
from refundlens.report.json import assessment_to_dict

SETTINGS = Settings(ocr_enabled=False)


def _labelled_ai_image() -> bytes:
    params = "photo of a cracked vase\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a"
    return png_with_text({"parameters": params})


def test_a_labelled_ai_image_escalates_without_pixel_forensics_and_says_why() -> None:
    media = media_from_bytes(_labelled_ai_image(), "sd.png", SETTINGS)
    image = analyze([media], settings=SETTINGS).images[0]
    assert image.action == "escalate"
    assert "pixels" not in image.ran
    assert ("pixels", "escalate already: it can only raise the risk") in image.skipped
    assert not any(f.code.startswith("pixels.") for f in image.findings)
    assert ("reference", "no references") in image.skipped
    report = assessment_to_dict(analyze([media], settings=SETTINGS))
    assert {"detector": "pixels", "why": "escalate already: it can only raise the risk"} in (
        report["images"][0]["detectors"]["skipped"]
    )


def test_without_early_stop_every_detector_runs_and_the_action_is_the_same() -> None:
    media = media_from_bytes(_labelled_ai_image(), "sd.png", SETTINGS)
    stopped = analyze([media], settings=SETTINGS).images[0]
    full = analyze([media], settings=SETTINGS, early_stop=False).images[0]
    assert "pixels" in full.ran
    assert full.action == stopped.action == "escalate"


def test_an_honest_photo_gets_every_detector_cheapest_first() -> None:
    media = media_from_bytes(encode(camera_photo(3), quality=90), "photo.jpg", SETTINGS)
    image = analyze([media], settings=SETTINGS).images[0]
    assert image.ran[-1] == "pixels"
    assert list(image.ran) == sorted(image.ran, key=COST_ORDER.index)
    assert not any(d == "pixels" for d, _ in image.skipped)
