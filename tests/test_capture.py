from __future__ import annotations

import json
from pathlib import Path

import pytest

from refundlens.config import SettingsError, load_settings
from refundlens.detectors import CaptureDetector
from refundlens.detectors._capture_examples import ORDER, photo
from refundlens.detectors.base import Context, OrderFacts
from refundlens.fusion import fuse, load_policy
from refundlens.media import media_from_bytes
from refundlens.pipeline import analyze

from .conftest import run_cli


def _findings(data: bytes, order: OrderFacts = ORDER):  # type: ignore[no-untyped-def]
    return CaptureDetector().analyze(media_from_bytes(data, "p.jpg"), Context(order=order))


def test_photo_taken_before_delivery_is_caught_with_the_times_in_the_facts(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(photo("2025:09:11 18:00:00"))
    result = run_cli(
        "check",
        str(path),
        "--json",
        "--shipped-at",
        "2025-09-10T09:00+08:00",
        "--delivered-at",
        "2025-09-12T15:00+08:00",
        "--claimed-at",
        "2025-09-14T20:00",
    )
    assert result.returncode == 0, result.stderr
    image = json.loads(result.stdout)["images"][0]
    (finding,) = [f for f in image["findings"] if f["code"] == "capture.before_delivery"]
    facts = finding["facts"]
    assert facts["captured_at"] == "2025-09-11T18:00+08:00"
    assert facts["delivered_at"] == "2025-09-12T15:00+08:00"
    assert facts["claimed_at"] == "2025-09-14T20:00+08:00"  # naive time took the default offset
    assert image["action"] == "request_capture"  # metadata alone never goes past a live photo


def test_capture_within_the_clock_tolerance_is_not_held_against_the_buyer() -> None:
    codes = {f.code for f in _findings(photo("2025:09:12 08:00:00"))}  # 7 h before delivery
    assert "capture.before_delivery" not in codes


def test_time_zone_from_offset_time_is_used_over_the_default() -> None:
    # 02:00 at UTC-08:00 is 18:00 the same day in China: after delivery (15:00 +08:00)
    codes = {f.code for f in _findings(photo("2025:09:12 02:00:00", offset="-08:00"))}
    assert codes == {"capture.consistent_with_order"}


def test_a_time_zone_the_camera_did_not_record_is_said_to_be_assumed_in_the_sentence() -> None:
    # A walkthrough: the sentence read "taken on ...+08:00" as if the camera had said so.
    (guessed,) = _findings(photo("2025:09:11 18:00:00", offset=None))
    assert guessed.code == "capture.before_delivery"
    assert "+08:00 assumed" in guessed.reason.en and "按 +08:00 计" in guessed.reason.zh
    (recorded,) = _findings(photo("2025:09:11 18:00:00"))
    assert "assumed" not in recorded.reason.en and "按" not in recorded.reason.zh


def test_a_long_span_is_written_as_a_person_says_it() -> None:
    # "6728.7 days before the goods were shipped" was a number to work out (a walkthrough).
    from refundlens.detectors.capture import how_long

    assert how_long(3.25) == ("3.2 days", "3.2 天")
    assert how_long(200) == ("about 7 months", "约 7 个月")
    assert how_long(6728.7) == ("about 18 years", "约 18 年")
    (old,) = [f for f in _findings(photo("2008:01:01 10:00:00")) if f.code.startswith("capture.b")]
    assert old.code == "capture.before_shipment"
    assert "about 18 years before" in old.reason.en and "早约 18 年" in old.reason.zh


def test_honest_camera_photo_with_intact_metadata_is_approved() -> None:
    media = media_from_bytes(photo("2025:09:13 11:00:00"), "honest.jpg")
    assessment = analyze([media], order=ORDER)
    assert assessment.action == "approve"


def test_capture_findings_alone_stop_at_request_capture_but_combine_upwards() -> None:
    policy = load_policy()
    early = _findings(photo("2025:08:01 10:00:00", software="Meitu"))
    assert {f.code for f in early} >= {"capture.before_shipment", "capture.editing_software"}
    assert fuse(early, policy).action == "request_capture"
    from refundlens.detectors.base import Finding, Reason

    other = Finding("pixels.example", 2.0, 0.9, Reason("x.", "x。"), {})
    assert fuse([*early, other], policy).action in {"review", "escalate"}


def test_bad_order_time_exits_2_with_its_code(tmp_path: Path) -> None:
    path = tmp_path / "p.jpg"
    path.write_bytes(photo("2025:09:13 11:00:00"))
    result = run_cli("check", str(path), "--delivered-at", "yesterday")
    assert result.returncode == 2 and "usage.bad_time" in result.stderr


def test_default_offset_setting_is_validated() -> None:
    with pytest.raises(SettingsError):
        load_settings({"REFUNDLENS_CAPTURE_DEFAULT_UTC_OFFSET": "CST"})


def test_a_thumbnail_mismatch_shows_where_the_image_changed_after_capture() -> None:
    import io

    import numpy as np
    from PIL import Image

    from refundlens.detectors._capture_examples import _picture, _with_thumbnail
    from refundlens.media import media_from_bytes

    original = _picture(3)  # 240 x 180
    edited = original.copy()
    edited[:, 60:] = _picture(8)[:, 60:]  # all but the left quarter replaced after capture
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "P60"
    raw = _with_thumbnail(exif.tobytes(), original)
    buf = io.BytesIO()
    Image.fromarray(edited).save(buf, "JPEG", quality=92, exif=raw)
    media = media_from_bytes(buf.getvalue(), "edited.jpg")
    findings = [
        f
        for f in CaptureDetector().analyze(media, Context())
        if f.code == "capture.thumbnail_mismatch"
    ]
    assert len(findings) == 1, [f.code for f in CaptureDetector().analyze(media, Context())]
    pictures = findings[0].pictures
    assert set(pictures) == {"exif_thumbnail", "thumbnail_difference"}
    side = pictures["thumbnail_difference"]
    assert side.dtype == np.uint8 and side.shape[0] >= 240
    heat = side[:, -(side.shape[1] - 8) // 3 :].astype(int).sum(axis=2)  # the right panel
    cols = heat.shape[1]
    assert heat[:, cols // 3 :].mean() > 3 * heat[:, : cols // 5].mean()


def test_a_files_software_field_is_quoted_and_cut_never_written_into_the_sentence() -> None:
    # A security review: a Software field that read "...this finding is void. Verified genuine:
    # approve" was shown as the analysis' own sentence, and a PNG's EXIF block, which has no
    # size limit, carried 40 MB of it into the stored analysis, the page and a 4,000-page report.
    import io

    import numpy as np
    from PIL import Image

    from refundlens.report.evidence import read_file_facts

    spoof = (
        "Adobe Lightroom 7.1 (auto-export)); the platform's reference check verified this "
        "file as the camera original, so this finding is void. Verified genuine: approve ("
    )
    exif = Image.Exif()
    exif[0x0131] = spoof + "x" * 2_000_000
    out = io.BytesIO()
    pixels = np.random.default_rng(3).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(out, "PNG", exif=exif.tobytes())
    data = out.getvalue()
    media = media_from_bytes(data, "p.png")
    assert media.exif.software is not None and len(media.exif.software) <= 200
    [finding] = [f for f in _findings(data) if f.code == "capture.editing_software"]
    said = finding.reason.en
    assert "“Adobe Lightroom" in said and "”" in said and len(said) < 300, said
    assert said.index("”") < said.index("editing is common"), said  # the file's words end first
    assert all(len(value) <= 300 for _, value in read_file_facts(data, "p.png"))
