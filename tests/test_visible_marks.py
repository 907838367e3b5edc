"""OCR of visible AI marks, on a real photo with text drawn in a CJK font (fonts-wqy-microhei,
installed by `make system-deps`)."""

from __future__ import annotations

import io
import os
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from refundlens.config import Settings
from refundlens.detectors import ProvenanceDetector
from refundlens.detectors.base import Context
from refundlens.fusion import fuse, load_policy
from refundlens.media import media_from_bytes

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


@pytest.fixture(scope="module")
def font() -> ImageFont.FreeTypeFont:
    if not FONT.exists():
        message = f"CJK font {FONT} missing: run `make system-deps`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return ImageFont.truetype(str(FONT), 24)


def _photo_with(
    text: str | None, font: ImageFont.FreeTypeFont | None, corner: str = "bottom-right"
) -> bytes:
    with resources.as_file(
        resources.files("refundlens") / "samples" / "claim_unrelated.jpg"
    ) as path:
        image = Image.open(path).convert("RGB")
    if text and font:
        draw = ImageDraw.Draw(image)
        x = image.width - 150 if "right" in corner else 12
        y = image.height - 44 if "bottom" in corner else 10
        draw.text(
            (x, y), text, font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0)
        )
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _findings(data: bytes):  # type: ignore[no-untyped-def]
    return ProvenanceDetector().analyze(media_from_bytes(data, "x.jpg"), Context())


def test_ocr_finds_ai_label_rendered_with_a_cjk_font_in_a_corner(
    font: ImageFont.FreeTypeFont,
) -> None:
    findings = _findings(_photo_with("AI生成", font))
    (finding,) = [f for f in findings if f.code == "provenance.visible_ai_mark"]
    assert finding.facts["matched"] == "AI生成" and finding.facts["corner"] == "bottom-right"
    assert finding.region is not None and finding.region.array[-30:, -100:].any()
    assert fuse(findings, load_policy()).action == "escalate"


@pytest.mark.parametrize("weights", ["float", "int8"])
def test_either_text_detector_reads_the_label_and_the_finding_says_which(
    font: ImageFont.FreeTypeFont, weights: str
) -> None:
    media = media_from_bytes(_photo_with("AI生成", font), "x.jpg")
    context = Context(settings=Settings(ocr_text_detector=weights))
    (finding,) = [
        f
        for f in ProvenanceDetector().analyze(media, context)
        if f.code == "provenance.visible_ai_mark"
    ]
    assert finding.facts["ocr_text_detector"] == weights


def test_generator_name_in_a_corner_goes_to_a_person(font: ImageFont.FreeTypeFont) -> None:
    findings = _findings(_photo_with("即梦", font, corner="top-left"))
    (finding,) = [f for f in findings if f.code == "provenance.visible_generator_name"]
    assert finding.facts["corner"] == "top-left"
    assert fuse(findings, load_policy()).action == "review"


def test_photo_without_marks_raises_no_visible_mark_finding() -> None:
    codes = {f.code for f in _findings(_photo_with(None, None))}
    assert not codes & {"provenance.visible_ai_mark", "provenance.visible_generator_name"}


def test_ocr_can_be_turned_off_by_setting() -> None:
    media = media_from_bytes(_photo_with(None, None), "x.jpg")
    findings = ProvenanceDetector().analyze(media, Context(settings=Settings(ocr_enabled=False)))
    assert all(not f.code.startswith("provenance.visible") for f in findings)
    assert np.isfinite(sum(f.strength for f in findings))


def test_small_semi_transparent_label_is_read(font: ImageFont.FreeTypeFont) -> None:
    """An 18 px "AI生成" at 60% opacity (bench/visible_marks.py draws it as services do)."""
    from refundlens.detectors.provenance._examples import draw_mark

    with resources.as_file(
        resources.files("refundlens") / "samples" / "claim_unrelated.jpg"
    ) as path:
        base = Image.open(path).convert("RGB")
    for corner in ("top-left", "bottom-right"):
        findings = _findings(draw_mark(base, 18, corner, 0.6, FONT))
        (finding,) = [f for f in findings if f.code == "provenance.visible_ai_mark"]
        assert finding.facts["corner"] == corner


def test_the_ocr_models_are_the_ones_the_benchmarks_measured() -> None:
    """rapidocr 3.9 replaced the detection model its wheel ships (PP-OCRv4 mobile with
    PP-OCRv6 small): three times the time per photo and a third fewer missed labels
    (bench/results/visible_marks_passes.md). A version that ships other models again must be
    measured before it is allowed (pyproject.toml bounds the range)."""
    import yaml

    from refundlens.detectors.provenance.visible import ocr_available

    if not ocr_available():
        pytest.skip("the OCR extra (refundlens[ocr]) is not installed")
    config = yaml.safe_load((resources.files("rapidocr") / "config.yaml").read_text())
    for step in ("Det", "Rec"):
        assert (config[step]["ocr_version"], config[step]["model_type"]) == ("PP-OCRv6", "small")
    shipped = {p.name for p in (resources.files("rapidocr") / "models").iterdir()}
    assert {"PP-OCRv6_det_small.onnx", "PP-OCRv6_rec_small.onnx"} <= shipped


def test_the_text_detector_is_the_wheels_net_with_8_bit_weights_and_reads_as_it_does() -> None:
    """The engine detects text with models/ocr_det_int8.onnx, made from the installed wheel's
    detection net (training/ocr_det_int8.py): a wheel that ships another net fails here until
    the 8-bit one is made again and measured again."""
    import hashlib
    import json

    from refundlens.detectors.provenance import visible

    if not visible.ocr_available():
        pytest.skip("the OCR extra (refundlens[ocr]) is not installed")
    here = resources.files("refundlens.detectors.provenance")
    record = json.loads(here.joinpath("models/ocr_det_int8.json").read_text())
    int8 = here.joinpath(visible.DET_INT8).read_bytes()
    assert hashlib.sha256(int8).hexdigest() == record["sha256"]
    source = (resources.files("rapidocr") / "models" / record["source"]).read_bytes()
    assert hashlib.sha256(source).hexdigest() == record["source_sha256"]
    assert record["ir_version"] <= 10  # what onnxruntime 1.22 reads (pyproject's lower bound)
    assert str(visible._engine("int8").cfg.Det.model_path).endswith("models/ocr_det_int8.onnx")
    assert visible._engine("float").cfg.Det.model_path is None  # rapidocr's own: the wheel's net


def test_the_8_bit_text_detector_runs_only_where_the_cpu_multiplies_8_bit_numbers_fast() -> None:
    """``auto`` picks the 8-bit net on x86-64 with VNNI or AMX only: without them ONNX Runtime's
    8-bit net took 1.43 times the float net's time (bench/results/ocr_det_int8.md)."""
    from refundlens.config import SettingsError, load_settings
    from refundlens.detectors.provenance import visible

    avx2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
    assert visible.text_detector("auto", avx2) == "float"
    assert visible.text_detector("auto", avx2 | {"avx512f", "avx512_vnni"}) == "int8"
    assert visible.text_detector("auto", avx2 | {"avx_vnni"}) == "int8"
    assert visible.text_detector("auto", frozenset()) == "float"  # not Linux, or not x86
    assert visible.text_detector("int8", avx2) == "int8"  # chosen, not guessed
    assert visible.text_detector("float", avx2 | {"avx512_vnni"}) == "float"
    with pytest.raises(ValueError, match="ocr_text_detector"):
        visible.text_detector("fp16")
    assert load_settings({"REFUNDLENS_OCR_TEXT_DETECTOR": "int8"}).ocr_text_detector == "int8"
    with pytest.raises(SettingsError, match="auto, float, int8"):
        load_settings({"REFUNDLENS_OCR_TEXT_DETECTOR": "fp16"})
