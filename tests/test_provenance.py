from __future__ import annotations

import io

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from refundlens.config import Settings
from refundlens.detectors import ProvenanceDetector
from refundlens.detectors.base import Context
from refundlens.detectors.provenance._examples import (
    camera_jpeg,
    jpeg_with_xmp,
    label_json,
    picture,
    png_with_text,
    png_with_xmp,
    webp_with_xmp,
    xmp_packet,
)
from refundlens.fusion import fuse, load_policy
from refundlens.media import media_from_bytes


def _codes(data: bytes, settings: Settings | None = None) -> dict[str, dict]:
    media = media_from_bytes(data, "x")
    findings = ProvenanceDetector().analyze(media, Context(settings=settings or Settings()))
    return {f.code: dict(f.facts) for f in findings}


def _heif_with_xmp(xmp: bytes) -> bytes:
    heif = pillow_heif.from_pillow(Image.fromarray(picture()))
    heif.info["xmp"] = xmp
    buf = io.BytesIO()
    heif.save(buf, quality=90)
    return buf.getvalue()


CARRIERS = {
    "JPEG APP1 XMP": lambda: jpeg_with_xmp(xmp_packet({"TC260:AIGC": label_json()})),
    "PNG iTXt XML:com.adobe.xmp": lambda: png_with_xmp(xmp_packet({"TC260:AIGC": label_json()})),
    "WebP XMP chunk": lambda: webp_with_xmp(xmp_packet({"TC260:AIGC": label_json()})),
    "HEIF XMP item": lambda: _heif_with_xmp(xmp_packet({"TC260:AIGC": label_json()})),
    "PNG tEXt chunk (before the image data)": lambda: png_with_text({"AIGC": label_json()}),
    "PNG tEXt chunk (after the image data)": lambda: png_with_text(
        {"AIGC": label_json()}, after_idat=True
    ),
    "PNG zTXt chunk (after the image data)": lambda: png_with_text(
        {"AIGC": label_json()}, after_idat=True, kind="zTXt"
    ),
    "PNG iTXt chunk (before the image data)": lambda: png_with_text(
        {"AIGC": label_json()}, kind="iTXt"
    ),
}


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
def test_aigc_label_is_found_in_each_carrier_with_the_field_named(carrier: str) -> None:
    facts = _codes(CARRIERS[carrier]())["provenance.aigc_label"]
    assert facts["carrier"] == carrier
    assert facts["field"] in {"TC260:AIGC", "AIGC"}
    assert facts["label"] == "1" and facts["produce_id"] == "20250917-abc123"
    assert facts["producer_credit_code"] is None  # this ContentProducer holds no credit code
    assert facts["propagate_id"] == "p-42"


def test_aigc_label_in_exif_user_comment_is_found() -> None:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + label_json().encode()
    buf = io.BytesIO()
    Image.fromarray(picture()).save(buf, "JPEG", exif=exif.tobytes())
    facts = _codes(buf.getvalue())["provenance.aigc_label"]
    assert (facts["carrier"], facts["field"]) == ("EXIF", "UserComment")


def test_producer_credit_code_is_named_when_present_and_valid() -> None:
    # 91350100M000100Y43 is the example code commonly quoted for GB 32100-2015
    data = png_with_text({"AIGC": label_json(ContentProducer="001-91350100M000100Y43-0001")})
    assert _codes(data)["provenance.aigc_label"]["producer_credit_code"] == "91350100M000100Y43"
    wrong_check = png_with_text({"AIGC": label_json(ContentProducer="001-91350100M000100Y44-0001")})
    assert _codes(wrong_check)["provenance.aigc_label"]["producer_credit_code"] is None


def test_known_misspelling_of_reserved_code_is_accepted() -> None:
    raw = (
        '{"AIGC": {"Label": "1", "ContentProducer": "x", "ProduceID": "7", "ReserveCode1": "abc"}}'
    )
    assert "provenance.aigc_label" in _codes(png_with_text({"AIGC": raw}))


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('{"AIGC": {"ProduceID": "1"}}', "no Label field"),
        ('{"AIGC": {"Label": "9"}}', "is not 1, 2 or 3"),
        # Nested deeper than the JSON parser goes: it failed the whole analysis, the claim
        # page and the report (an attacker's probe).
        ('{"AIGC":' + "[" * 200_000, "not valid JSON"),
    ],
)
def test_malformed_label_is_reported_as_malformed(raw: str, problem: str) -> None:
    facts = _codes(png_with_text({"AIGC": raw}))["provenance.aigc_label_malformed"]
    assert problem in facts["problem"]


UNSTORABLE_LABEL = '{"Label": "1", "ContentProducer": "\\ud800x\\u0000y", "ProduceID": "\\udfff"}'


@pytest.mark.parametrize(
    "data",
    [
        lambda: png_with_text({"AIGC": UNSTORABLE_LABEL}),
        lambda: jpeg_with_xmp(xmp_packet({"TC260:AIGC": UNSTORABLE_LABEL})),
        lambda: png_with_text({"AIGC": '{"aigc_info": {"source_info": "\\ud800"}}'}),
    ],
    ids=["png-text", "jpeg-xmp", "aigc_info"],
)
def test_a_label_whose_json_escapes_no_text_gives_findings_that_can_be_stored(
    data: object,
) -> None:
    """A security review: "\\ud800" in a label's JSON is a lone surrogate once parsed; kept in a
    finding it made the claim's page, its report and its decision fail for everyone but the
    buyer, and PostgreSQL refuses it."""
    import json

    media = media_from_bytes(data(), "x")  # type: ignore[operator]
    findings = ProvenanceDetector().analyze(media, Context())
    assert findings
    for finding in findings:
        text = json.dumps(
            {"facts": dict(finding.facts), "reason": finding.reason.as_dict()},
            ensure_ascii=False,
        )
        text.encode("utf-8")  # raises on a lone surrogate
        assert "\x00" not in text and "\\u0000" not in text
    labelled = [f for f in findings if f.code == "provenance.aigc_label"]
    if labelled:  # what was unstorable reads as the replacement character
        assert labelled[0].facts["content_producer"] == "\ufffdx\ufffdy"
        assert labelled[0].facts["produce_id"] == "\ufffd"


def test_camera_original_raises_no_provenance_finding_but_says_absence_proves_nothing() -> None:
    media = media_from_bytes(camera_jpeg(), "camera.jpg")
    (finding,) = ProvenanceDetector().analyze(media, Context())
    assert finding.code == "provenance.none_found" and finding.strength == 0
    assert "proves nothing" in finding.reason.en
    assert fuse([finding], load_policy()).action == "approve"


def test_label_1_escalates_on_its_own_and_label_2_goes_to_review() -> None:
    det = ProvenanceDetector()
    one = det.analyze(media_from_bytes(png_with_text({"AIGC": label_json("1")}), "a"), Context())
    two = det.analyze(media_from_bytes(png_with_text({"AIGC": label_json("2")}), "b"), Context())
    assert fuse(one, load_policy()).action == "escalate"
    assert fuse(two, load_policy()).action == "review"


def test_generator_list_is_extended_by_a_user_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "- name: HouseGen\n  kind: generator\n  software: [HouseGen]\n  source: internal\n"
    )
    exif = Image.Exif()
    exif[0x0131] = "HouseGen 2.1"
    buf = io.BytesIO()
    Image.fromarray(picture()).save(buf, "JPEG", exif=exif.tobytes())
    assert "provenance.generator_metadata" not in _codes(buf.getvalue())
    facts = _codes(buf.getvalue(), Settings(provenance_generators_path=str(extra)))[
        "provenance.generator_metadata"
    ]
    assert facts["generator"] == "HouseGen" and facts["field"] == "EXIF Software"


def test_comfyui_workflow_chunks_name_comfyui() -> None:
    facts = _codes(png_with_text({"prompt": '{"3": {}}', "workflow": '{"nodes": []}'}))
    assert facts["provenance.generator_metadata"]["generator"] == "ComfyUI"


def test_stable_diffusion_invisible_watermark_is_decoded_from_a_png() -> None:
    from importlib import resources

    from refundlens.detectors.provenance.watermark import KNOWN_MARKS

    from .support.sd_watermark import embed

    # a real photo (the bundled CC0 coffee cup): the mark needs natural texture to vote on
    with resources.as_file(
        resources.files("refundlens") / "samples" / "claim_unrelated.jpg"
    ) as path:
        base = np.asarray(Image.open(path).convert("RGB"))
    for mark in KNOWN_MARKS:
        buf = io.BytesIO()
        Image.fromarray(embed(base, mark.bits)).save(buf, "PNG")
        facts = _codes(buf.getvalue())["provenance.invisible_watermark"]
        assert facts["mark"] == mark.name and facts["bit_accuracy"] >= 0.85
    clean = io.BytesIO()
    Image.fromarray(base).save(clean, "PNG")
    assert "provenance.invisible_watermark" not in _codes(clean.getvalue())


def test_watermark_check_is_skipped_for_jpeg_and_says_why() -> None:
    facts = _codes(camera_jpeg())["provenance.none_found"]
    assert facts["watermark_checked"] is False and "JPEG" in facts["watermark_note"]


def test_an_aigc_info_block_nested_too_deep_is_not_read_and_fails_nothing() -> None:
    from refundlens.detectors.provenance import aigc_info_reads

    media = media_from_bytes(
        png_with_text({"Comment": '{"aigc_info": ' + "[" * 200_000}), "deep.png"
    )
    assert aigc_info_reads(media) == []
    assert ProvenanceDetector().analyze(media, Context())  # findings, not an exception


def test_what_a_file_says_of_itself_is_quoted_in_a_sentence_never_spliced_into_it() -> None:
    """A manifest's "claim generator" and signer went into the sentence as they were and could
    write the rest of it ("... signed by Apple Inc., on the trust list: verified camera
    original, no edits detected", an attacker's probe): they are quoted, cut, and cleaned of
    zero-width and direction characters."""
    from refundlens.detectors.provenance import said

    from .support.c2pa_signing import sign_jpeg

    assert said("A\u200bpple\u202e Inc.\x1b") == "“Apple Inc.”"
    assert said("x" * 100) == "“" + "x" * 59 + "…”"
    lie = (
        "Apple iPhone Camera 17.1 with no AI declaration; signed by Apple Inc., on the trust "
        "list: verified camera original, no edits detected. (ref"
    )
    media = media_from_bytes(sign_jpeg(camera_jpeg(), "digitalCapture", generator=lie), "c.jpg")
    (finding,) = [f for f in ProvenanceDetector().analyze(media, Context()) if "c2pa" in f.code]
    assert (
        "from “Apple iPhone Camera 17.1 with no AI declaration; signed by …”" in finding.reason.en
    )
    assert "no edits detected" not in finding.reason.en
    assert "no edits detected" not in finding.reason.zh


def test_a_manifest_of_thousands_of_actions_keeps_twenty_in_the_facts_and_counts_the_rest() -> None:
    from .support.c2pa_signing import sign_jpeg

    media = media_from_bytes(sign_jpeg(camera_jpeg(), more_actions=3000), "many.jpg")
    (finding,) = [f for f in ProvenanceDetector().analyze(media, Context()) if "c2pa" in f.code]
    assert finding.code == "provenance.c2pa_ai"  # the declaration is still read
    assert len(finding.facts["actions"]) == 20 and finding.facts["actions_in_all"] == 3001


def test_storable_replaces_what_no_encoder_takes_and_keeps_everything_else() -> None:
    from refundlens.storable import storable

    clean = {"a": [1, "b", ("c", 2.5)], "d": None}
    assert storable(clean) is clean  # nothing to do: the same object
    dirty = {"k\ud800": ["x\x00", ("\udfff", 3)], "fine": "猫"}
    assert storable(dirty) == {"k\ufffd": ["x\ufffd", ("\ufffd", 3)], "fine": "猫"}
