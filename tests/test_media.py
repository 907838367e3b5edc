from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import Image

from refundlens.config import Settings, SettingsError, load_settings
from refundlens.errors import MediaError
from refundlens.media import hamming, load_media, media_from_bytes

from .conftest import encode


def _png_header_only(width: int, height: int, padding: int = 0) -> bytes:
    """A PNG whose IHDR claims width x height, with a little data and ``padding`` junk bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    pad = chunk(b"teXt", b"pad\x00" + b"x" * padding) if padding else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + pad
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_common_formats_decode_to_rgb_uint8_with_sha256(product: np.ndarray, fmt: str) -> None:
    data = encode(product, fmt, lossless=True) if fmt == "WEBP" else encode(product, fmt)
    media = media_from_bytes(data, f"x.{fmt.lower()}")
    assert media.format == fmt
    assert media.analysis.dtype == np.uint8 and media.analysis.shape == (*product.shape[:2], 3)
    assert (media.width, media.height) == (product.shape[1], product.shape[0])
    assert len(media.sha256) == 64
    if fmt != "JPEG":
        assert np.abs(media.analysis.astype(int) - product).max() <= 2


def test_heic_decodes_through_pillow_heif(product: np.ndarray) -> None:
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(product)).save(buf, quality=90)
    media = media_from_bytes(buf.getvalue(), "x.heic")
    assert media.format == "HEIF"
    assert np.abs(media.analysis.astype(int) - product).mean() < 6


def test_heic_whose_coded_size_lies_far_beyond_its_shown_size_is_refused() -> None:
    """A fuzzing find: the 'ispe' box (coded size) edited to 64 x 4,261,412,799 while the clean
    aperture still shows 64 x 48, so the header check passes and libheif refuses to decode."""
    rgb = (np.random.default_rng(3).random((48, 64, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.fromarray(rgb)).save(buf, quality=50)
    data = bytearray(buf.getvalue())
    at = data.index(b"ispe") + 4 + 4  # box type, then version and flags; width, height follow
    data[at + 4 : at + 8] = (4_261_412_799).to_bytes(4, "big")
    with pytest.raises(MediaError) as info:
        media_from_bytes(bytes(data), "lying.heic")
    assert info.value.code in {"media.decompression_bomb", "media.too_many_pixels"}


def test_an_avif_without_an_image_item_is_refused_not_raised() -> None:
    """A fuzzing find: Pillow's AVIF plugin raises RuntimeError while opening such a file."""

    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", 8 + len(payload)) + kind + payload

    handler = box(b"hdlr", bytes(8) + b"pict" + bytes(13))
    data = box(b"ftyp", b"avif" + bytes(4) + b"avifmif1miaf") + box(b"meta", bytes(4) + handler)
    with pytest.raises(MediaError) as info:
        media_from_bytes(data, "empty.avif")
    assert info.value.code in {"media.corrupt", "media.not_an_image"}


def test_exif_orientation_is_applied_and_capture_facts_are_read(product: np.ndarray) -> None:
    tall = np.ascontiguousarray(product[:, :200])
    exif = Image.Exif()
    exif[0x010F] = "TestMaker"
    exif[0x0110] = "Model 1"
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2025:09:17 12:30:00"
    sub[0x9011] = "+08:00"
    media = media_from_bytes(encode(tall, "JPEG", exif=exif.tobytes()), "x.jpg")
    assert media.analysis.shape[:2] == (200, 320)  # width and height swapped
    assert (media.width, media.height) == (320, 200)
    assert media.exif.make == "TestMaker" and media.exif.model == "Model 1"
    captured = media.exif.captured_at()
    assert captured is not None and captured.utcoffset() is not None
    assert captured.isoformat() == "2025-09-17T12:30:00+08:00"
    assert media.metadata.exif is not None


def test_transparent_png_is_composited_on_white() -> None:
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[10:30, 10:30] = (200, 0, 0, 255)
    media = media_from_bytes(encode(rgba, "PNG"), "x.png")
    assert tuple(media.analysis[0, 0]) == (255, 255, 255)
    assert tuple(media.analysis[20, 20]) == (200, 0, 0)
    half = np.zeros((8, 8, 4), np.uint8)
    half[...] = (10, 200, 30, 128)  # half transparent: blended with the white under it
    expected = np.round((np.array([10, 200, 30]) * 128 + 255 * 127) / 255)
    blended = media_from_bytes(encode(half, "PNG"), "h.png").analysis[4, 4]
    assert np.abs(blended.astype(int) - expected).max() <= 1


def test_large_jpeg_gets_a_reduced_analysis_copy_and_full_pixels_on_demand() -> None:
    big = np.asarray(
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), np.uint8)).resize(
            (3200, 2400)
        )
    )
    media = media_from_bytes(
        encode(big, "JPEG", quality=85), "big.jpg", Settings(analysis_side=800)
    )
    assert max(media.analysis.shape[:2]) == 800
    assert media.analysis_scale == pytest.approx(4.0)
    assert media.pixels.shape == (2400, 3200, 3)


def test_pdq_is_robust_to_recompression_and_distinguishes_other_images(product: np.ndarray) -> None:
    a = media_from_bytes(encode(product, "PNG"), "a.png")
    b = media_from_bytes(encode(product, "JPEG", quality=60), "b.jpg")
    c = media_from_bytes(encode(np.ascontiguousarray(product[::-1, ::-1]), "PNG"), "c.png")
    from refundlens.detectors._examples import _product

    other = media_from_bytes(encode(_product(99), "PNG"), "o.png")
    assert hamming(a.pdq, b.pdq) <= 20
    assert min(hamming(c.pdq, h) for h in a.pdq_dihedral) <= 20
    assert hamming(a.pdq, other.pdq) > 60


def test_a_photo_hashes_its_centre_crops_once_as_the_fingerprint_function_does(
    product: np.ndarray,
) -> None:
    from refundlens.media.fingerprint import pdq_centre_crops

    media = media_from_bytes(encode(product, "JPEG", quality=90), "a.jpg")
    assert media.pdq_centre_crops is media.pdq_centre_crops
    assert dict(media.pdq_centre_crops) == pdq_centre_crops(media.analysis)


BAD_INPUTS = {
    "zero-byte file": (b"", "media.empty"),
    "text named .jpg": (b"this is not an image, just text\n" * 10, "media.not_an_image"),
    "GIF is not supported": (None, "media.unsupported_format"),
    # 2.5 Gpx claimed by a 3 MB file: implausible pixels, not a bomb by its ratio
    "header claiming 50000x50000": (
        _png_header_only(50000, 50000, 3_000_000),
        "media.too_many_pixels",
    ),
    "decompression bomb": (_png_header_only(50000, 50000), "media.decompression_bomb"),
    "header over the area limit": (_png_header_only(9000, 9000, 100_000), "media.too_many_pixels"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gets_a_stable_code_and_one_sentence(case: str, product: np.ndarray) -> None:
    data, code = BAD_INPUTS[case]
    if data is None:
        data = encode(product, "GIF")
    settings = Settings(max_pixels=50_000_000)
    with pytest.raises(MediaError) as info:
        media_from_bytes(data, "bad.jpg", settings)
    assert info.value.code == code
    assert info.value.message.endswith(".") and "\n" not in info.value.message


def _progressive_jpeg_of_empty_scans(side: int, scans: int) -> bytes:
    """A grey progressive JPEG whose AC scans are all one end-of-band run (ITU-T T.81, G.1.2.2):
    a few bytes each, and each a pass over every block for the decoder (a security review's
    file: 1,000 of them at 8000 x 8000 px, 220 KB, decoded for 20 s)."""
    import struct

    def segment(marker: int, payload: bytes) -> bytes:
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload

    def packed(bits: str) -> bytes:
        bits += "1" * (-len(bits) % 8)
        out = bytearray()
        for i in range(0, len(bits), 8):
            out.append(int(bits[i : i + 8], 2))
            if out[-1] == 0xFF:
                out.append(0)
        return bytes(out)

    blocks = (side // 8) ** 2
    assert blocks % 16384 == 0  # whole EOB14 runs (16384 blocks each)
    out = b"\xff\xd8" + segment(0xDB, b"\x00" + bytes([1] * 64))
    out += segment(0xC2, struct.pack(">BHHB", 8, side, side, 1) + bytes([1, 0x11, 0]))
    out += segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # DC: one code, 0
    out += segment(0xDA, bytes([1, 1, 0x00, 0, 0, 0x00])) + packed("0" * blocks)
    out += segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\xe0")  # AC: one code, EOB14
    run = "0" + format(16384 - 16384, "014b")
    empty_scan = segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0x00])) + packed(run * (blocks // 16384))
    return out + empty_scan * scans + b"\xff\xd9"


def test_a_jpeg_of_a_thousand_empty_scans_is_refused_before_it_is_decoded() -> None:
    from refundlens.media.decode import jpeg_scans

    settings = Settings()
    bomb = _progressive_jpeg_of_empty_scans(1024, 1000)
    assert len(bomb) < 20_000
    assert jpeg_scans(bomb, 10_000) == 1001
    with pytest.raises(MediaError) as info:
        media_from_bytes(bomb, "scans.jpg", settings)
    assert info.value.code == "media.decompression_bomb"
    assert "max_jpeg_scans" in info.value.message
    # Hidden behind "FF 00" segments, which libjpeg skips as stray bytes and a first version of
    # the count skipped by their "length" (a review: 5,000 scans accepted, 19 s to decode).
    head, scans = bomb[: bomb.index(b"\xff\xda")], bomb[bomb.index(b"\xff\xda") : -2]
    wrapped = head
    while scans:
        cut = len(scans)
        while cut > 60_000:
            cut = scans.rindex(b"\xff\xda", 0, cut)
        wrapped += b"\xff\x00" + (cut + 2).to_bytes(2, "big") + scans[:cut]
        scans = scans[cut:]
    wrapped += b"\xff\xd9"
    assert jpeg_scans(wrapped, 10_000) == 1001
    with pytest.raises(MediaError) as info:
        media_from_bytes(wrapped, "wrapped.jpg", settings)
    assert info.value.code == "media.decompression_bomb"
    # The same picture in a few scans decodes as any other.
    few = media_from_bytes(_progressive_jpeg_of_empty_scans(1024, 5), "few.jpg", settings)
    assert (few.width, few.height) == (1024, 1024)


def test_scans_are_counted_in_the_jpegs_own_stream_not_in_its_exif_thumbnail(
    product: np.ndarray,
) -> None:
    import io

    from PIL import Image

    from refundlens.media.decode import jpeg_scans

    image = Image.fromarray(product)
    plain, progressive = io.BytesIO(), io.BytesIO()
    image.save(plain, "JPEG", quality=90)
    image.save(progressive, "JPEG", quality=90, progressive=True)
    assert jpeg_scans(plain.getvalue(), 100) == 1
    assert 1 < jpeg_scans(progressive.getvalue(), 100) <= 12
    # A thumbnail in APP1 is a whole JPEG with its own scan: skipped with its segment.
    thumb = io.BytesIO()
    image.resize((32, 32)).save(thumb, "JPEG")
    app1 = b"Exif\x00\x00" + thumb.getvalue()
    data = plain.getvalue()
    with_thumb = data[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + data[2:]
    assert jpeg_scans(with_thumb, 100) == 1


def test_truncated_jpeg_is_refused_as_truncated(product: np.ndarray) -> None:
    data = encode(product, "JPEG", quality=90)
    with pytest.raises(MediaError) as info:
        media_from_bytes(data[: len(data) // 2], "cut.jpg")
    assert info.value.code in {"media.truncated", "media.corrupt"}


def test_corrupt_jpeg_data_is_refused(product: np.ndarray) -> None:
    data = bytearray(encode(product, "JPEG", quality=90))
    data[200:] = bytes(len(data) - 200)
    with pytest.raises(MediaError) as info:
        media_from_bytes(bytes(data), "zeros.jpg")
    assert info.value.code in {"media.truncated", "media.corrupt"}


def test_jpeg_data_overwritten_mid_file_is_refused_though_it_decodes(product: np.ndarray) -> None:
    """A walkthrough: 3,000 bytes in the middle of a phone photo overwritten decoded through
    Pillow without a word, half the picture shifted, and the claim was approved."""
    from PIL import Image

    big = np.asarray(Image.fromarray(product).resize((640, 480)))
    data = bytearray(encode(big, "JPEG", quality=92))
    assert media_from_bytes(bytes(data), "whole.jpg").width == 640
    middle = len(data) // 2
    data[middle : middle + 600] = b"A" * 600
    Image.open(io.BytesIO(bytes(data))).load()  # Pillow reads it as a picture
    with pytest.raises(MediaError) as info:
        media_from_bytes(bytes(data), "garbled.jpg")
    assert info.value.code == "media.corrupt"
    assert "Corrupt JPEG data" in info.value.message and "again" in info.value.message


def test_stray_bytes_between_header_segments_are_no_damage(product: np.ndarray) -> None:
    # A review: two stray bytes before the quantization table gave the same pixels in Pillow,
    # and the file was refused as damaged.
    data = encode(product, "JPEG", quality=90)
    at = data.index(b"\xff\xdb")
    strayed = data[:at] + b"\x00\x00" + data[at:]
    from refundlens.media.decode import jpeg_damage

    assert jpeg_damage(strayed) is None
    same = media_from_bytes(strayed, "strayed.jpg").analysis
    assert np.array_equal(same, media_from_bytes(data, "whole.jpg").analysis)


@pytest.mark.parametrize("kind", ["progressive", "cmyk", "grey", "optimized"])
def test_jpegs_of_every_kind_that_decode_right_are_not_called_damaged(
    product: np.ndarray, kind: str
) -> None:
    from PIL import Image

    from refundlens.media.decode import jpeg_damage

    image = Image.fromarray(product)
    out = io.BytesIO()
    if kind == "cmyk":
        image.convert("CMYK").save(out, "JPEG", quality=90)
    elif kind == "grey":
        image.convert("L").save(out, "JPEG", quality=90)
    else:
        image.save(out, "JPEG", quality=90, **{kind: True})
    assert jpeg_damage(out.getvalue()) is None
    media_from_bytes(out.getvalue(), f"{kind}.jpg")


def _png_with_one_broken_byte() -> bytes:
    """A noise PNG with the first byte of its compressed data whose change Pillow cannot decode
    (a fuzzing find: one changed byte, and the upload was accepted)."""
    rgb = (np.random.default_rng(7).random((48, 64, 3)) * 255).astype(np.uint8)
    data = encode(rgb, "PNG")
    start = data.index(b"IDAT") + 4 + 40
    for offset in range(start, start + 400):
        broken = bytearray(data)
        broken[offset] ^= 0xFF
        try:
            with Image.open(io.BytesIO(bytes(broken))) as image:
                image.load()
        except (OSError, SyntaxError, ValueError):
            return bytes(broken)
    raise AssertionError("no single byte broke the PNG")


def test_png_with_broken_image_data_is_refused_even_though_its_metadata_reads() -> None:
    data = _png_with_one_broken_byte()
    with pytest.raises(MediaError) as info:
        media_from_bytes(data, "broken.png")
    assert info.value.code in {"media.truncated", "media.corrupt"}


def test_an_accepted_image_decodes_again_at_full_resolution(product: np.ndarray) -> None:
    """What the upload accepts, the detectors can open: full pixels never raise later."""
    for fmt in ("PNG", "WEBP", "JPEG"):
        media = media_from_bytes(encode(product, fmt), f"p.{fmt.lower()}")
        assert media.pixels.shape == (media.height, media.width, 3)


def _exif_with_a_mistyped_entry(orientation: int) -> bytes:
    """Raw EXIF (big-endian TIFF): Orientation, and the text 'Apple' stored under tag 0x0118,
    which the standard types as SHORT (the fuzzer's change: Make's tag number altered)."""
    text = b"Apple\x00"
    entries = [
        struct.pack(">HHII", 0x0112, 3, 1, orientation << 16),
        struct.pack(">HHII", 0x0118, 2, len(text), 8 + 2 + 2 * 12 + 4),
    ]
    ifd = struct.pack(">H", len(entries)) + b"".join(entries) + struct.pack(">I", 0)
    return b"Exif\x00\x00" + b"MM\x00*" + struct.pack(">I", 8) + ifd + text


def test_a_mistyped_exif_entry_does_not_stop_the_photo_being_turned_upright(
    product: np.ndarray,
) -> None:
    buf = io.BytesIO()
    Image.fromarray(product[:40, :60]).save(
        buf, "JPEG", quality=95, exif=_exif_with_a_mistyped_entry(6)
    )
    media = media_from_bytes(buf.getvalue(), "mistyped.jpg")
    assert media.exif.orientation == 6
    assert (media.width, media.height) == (40, 60)  # turned: 60x40 stored, 40x60 shown
    assert media.analysis.shape[:2] == (60, 40)
    assert media.pixels.shape[:2] == (60, 40)


def _dated_jpeg(product: np.ndarray, xmp_time: str | None) -> bytes:
    """A JPEG with EXIF DateTimeOriginal 2024:09:21 16:00:56 and no OffsetTimeOriginal, and an
    XMP packet giving exif:DateTimeOriginal as ``xmp_time``."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2024:09:21 16:00:56"
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        f'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:DateTimeOriginal="{xmp_time}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    options = {"xmp": packet.encode()} if xmp_time else {}
    Image.fromarray(product).save(buf, "JPEG", quality=92, exif=exif, **options)
    return buf.getvalue()


def test_a_capture_time_without_an_exif_zone_takes_the_zone_of_the_same_time_in_xmp(
    product: np.ndarray,
) -> None:
    # A Jolla photo's EXIF has no OffsetTimeOriginal and its XMP says +02:00; read at the assumed
    # +08:00, "taken" was six hours off (a merchant's walkthrough).
    import datetime as dt

    from refundlens.detectors.base import Context, OrderFacts
    from refundlens.detectors.capture import CaptureDetector

    media = media_from_bytes(_dated_jpeg(product, "2024-09-21T16:00:56.000000+02:00"), "j.jpg")
    assert media.exif.offset_time_original == "+02:00"
    assert media.exif.offset_source == "XMP exif:DateTimeOriginal"
    assert media.exif.captured_at() == dt.datetime(2024, 9, 21, 14, 0, 56, tzinfo=dt.UTC)
    shipped = OrderFacts(shipped_at=dt.datetime(2024, 9, 30, tzinfo=dt.UTC))
    (finding,) = [
        f
        for f in CaptureDetector().analyze(media, Context(order=shipped))
        if f.code == "capture.before_shipment"
    ]
    assert finding.facts["time_zone"] == "from XMP exif:DateTimeOriginal"
    # Another time in XMP says nothing of this one; none, or no zone, leaves it unknown.
    for other in ("2024-09-21T17:00:56+02:00", "2024-09-21T16:00:56", None):
        media = media_from_bytes(_dated_jpeg(product, other), "j.jpg")
        assert media.exif.offset_time_original is None and media.exif.offset_source is None


def test_animated_webp_is_refused(product: np.ndarray) -> None:
    frames = [Image.fromarray(product), Image.fromarray(255 - product)]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(MediaError) as info:
        media_from_bytes(buf.getvalue(), "anim.webp")
    assert info.value.code == "media.animated"


def test_file_over_the_byte_limit_is_refused_before_decoding(
    tmp_path: Path, product: np.ndarray
) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(encode(product))
    with pytest.raises(MediaError) as info:
        load_media(path, Settings(max_file_bytes=100))
    assert info.value.code == "media.too_large"


def test_missing_file_is_reported_not_raised_as_oserror(tmp_path: Path) -> None:
    with pytest.raises(MediaError) as info:
        load_media(tmp_path / "nope.jpg")
    assert info.value.code == "media.not_found"


def test_settings_come_from_environment_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_side: 4000\nanalysis_side: 512\n")
    s = load_settings({"REFUNDLENS_CONFIG": str(cfg), "REFUNDLENS_MAX_PIXELS": "1234567"})
    assert (s.max_side, s.analysis_side, s.max_pixels) == (4000, 512, 1234567)
    with pytest.raises(SettingsError):
        load_settings({"REFUNDLENS_MAX_PIXELS": "lots"})
    cfg.write_text("no_such_setting: 1\n")
    with pytest.raises(SettingsError):
        load_settings({"REFUNDLENS_CONFIG": str(cfg)})
    # Zero would give up on every webhook post while its thread still delivers it.
    with pytest.raises(SettingsError, match="webhook_timeout_seconds"):
        load_settings({"REFUNDLENS_WEBHOOK_TIMEOUT_SECONDS": "0"})
    # A mistyped variable is refused as a mistyped key in the file is, with the likely name.
    with pytest.raises(SettingsError, match="did you mean REFUNDLENS_MAX_PIXELS"):
        load_settings({"REFUNDLENS_MAX_PIXLES": "5"})
    with pytest.raises(SettingsError, match="REFUNDLENS_BROKER_ULR"):
        load_settings({"REFUNDLENS_BROKER_ULR": "redis://x"})
    with pytest.raises(SettingsError, match="did you mean REFUNDLENS_OCR_ENABLED"):
        load_settings({"REFUNDLENS_OCR_ENABLE": "0"})
    # A switch is on or off in so many words: "maybe" read as off without a word, and "ture"
    # would have turned a safety rule off (a new user's walkthrough).
    for typo in ("ture", "maybe", "2", ""):
        with pytest.raises(SettingsError, match=r"claims_within_order_amount.*true or false"):
            load_settings({"REFUNDLENS_CLAIMS_WITHIN_ORDER_AMOUNT": typo})
    cfg.write_text("ocr_enabled: maybe\n")
    with pytest.raises(SettingsError, match="ocr_enabled"):
        load_settings({"REFUNDLENS_CONFIG": str(cfg)})
    for word, value in (("Off", False), ("no", False), ("1", True), ("yes", True)):
        assert load_settings({"REFUNDLENS_OCR_ENABLED": word}).ocr_enabled is value
    cfg.write_text("ocr_enabled: no\nclaims_within_order_amount: true\n")  # YAML's own
    read = load_settings({"REFUNDLENS_CONFIG": str(cfg)})
    assert (read.ocr_enabled, read.claims_within_order_amount) == (False, True)
    # Variables of other programs, the project's own that name no setting, and what a
    # container platform sets beside a service named refundlens pass (refusing those would
    # stop every pod: a review); another unknown name is logged, not refused (a setting a
    # later release retired must not stop an upgrade).
    settings = load_settings(
        {
            "HOME": "/root",
            "REFUNDLENS_SKIP_SYSTEM_DEPS": "1",
            "REFUNDLENS_TEST_PG": "x",
            "REFUNDLENS_PORT": "tcp://10.0.0.7:8000",
            "REFUNDLENS_PORT_8000_TCP_ADDR": "10.0.0.7",
            "REFUNDLENS_SERVICE_HOST": "10.0.0.7",
            "REFUNDLENS_WORKER_SERVICE_PORT": "8000",
            "REFUNDLENS_SOMETHING_RETIRED": "1",
        }
    )
    assert settings == Settings()


def test_decoded_references_are_kept_by_hash_and_name_and_the_oldest_leaves_first() -> None:
    from refundlens.media.cache import DecodedCache

    images = [encode(np.full((64, 64, 3), value, np.uint8), quality=90) for value in (10, 90, 200)]
    reads: list[int] = []

    def loader(i: int) -> Callable[[], bytes]:
        return lambda: reads.append(i) or images[i]

    cache = DecodedCache(2)
    first = cache.get("h0", "a.jpg", loader(0))
    assert cache.get("h0", "a.jpg", loader(0)) is first
    assert cache.get("h0", "b.jpg", loader(0)).name == "b.jpg"  # findings name the reference
    cache.get("h1", "c.jpg", loader(1))
    assert cache.get("h0", "a.jpg", loader(0)) is not first  # pushed out by the two after it
    assert reads == [0, 0, 1, 0]
    keep_none = DecodedCache(0)
    keep_none.get("h2", "d.jpg", loader(2))
    keep_none.get("h2", "d.jpg", loader(2))
    assert reads[-2:] == [2, 2]


def test_quantization_scale_follows_libjpeg_quality_scaling() -> None:
    from refundlens.media.jpeg import quantization_scale

    assert quantization_scale(90) == 1.0
    assert quantization_scale(75) == pytest.approx(2.5)
    assert quantization_scale(50) == pytest.approx(5.0)
    assert quantization_scale(25) == pytest.approx(10.0)
    assert quantization_scale(None) == 1.0


def test_adobe_preset_names_photoshop_tables_and_nothing_else() -> None:
    from refundlens.media.jpeg import adobe_preset
    from refundlens.report.explain import explain_facts

    pixels = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)

    def saved(**options: object) -> bytes:
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", **options)
        return out.getvalue()

    photoshop = media_from_bytes(saved(quality="web_maximum"), "ps.jpg")
    libjpeg = media_from_bytes(saved(quality=90), "lj.jpg")
    assert adobe_preset(photoshop.metadata.jpeg_qtables) == "web_maximum"
    assert adobe_preset(libjpeg.metadata.jpeg_qtables) is None
    assert adobe_preset({}) is None
    facts = explain_facts(photoshop)
    assert facts["jpeg"]["adobe_preset"] == "web_maximum"


def test_png_text_chunks_that_inflate_past_the_total_budget_stop_the_reader() -> None:
    # Each zTXt of about 1 KB inflates to 1 MiB; 4093 of them after IEND took a 4 MB upload to
    # 4 GiB of memory (Pillow never reads past IEND, the metadata reader did).
    from refundlens.media.metadata import MAX_TOTAL_TEXT_BYTES, png_text_chunks

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(out, "PNG")
    bomb = chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * (1 << 20), 9))
    data = out.getvalue() + bomb * 64
    chunks = png_text_chunks(data)
    assert sum(len(c.text) for c in chunks) <= MAX_TOTAL_TEXT_BYTES
    assert 0 < len(chunks) <= MAX_TOTAL_TEXT_BYTES >> 20
    media = media_from_bytes(data, "bomb.png")  # still a photo, its metadata read within bounds
    assert media.pixels.shape == (8, 8, 3)
    # A chunk over its own 1 MiB cap is refused, but inflating it up to the cap was work: it
    # counts, so after a few such chunks the reader stops before reading on.
    over = chunk(b"zTXt", b"k\x00\x00" + zlib.compress(b"a" * ((1 << 20) + 1), 9))
    label = chunk(b"tEXt", b"AIGC\x00{}")
    assert [c.key for c in png_text_chunks(out.getvalue() + label)] == ["AIGC"]
    assert png_text_chunks(out.getvalue() + over * 8 + label) == ()


def test_a_16_bit_grey_png_reads_as_8_bit_grey_without_a_float_copy_of_the_picture() -> None:
    # A 16-bit PNG of plain stripes is a few hundred KB however many pixels it holds: converting
    # it through a float64 copy of the whole picture let a capture link's anonymous upload make
    # the API take 1.6 GB a photo. It is converted a strip of rows at a time.
    import tracemalloc

    from refundlens.media import media_from_bytes

    side = 3000
    row = (np.arange(side, dtype=np.uint32) * 65535 // (side - 1)).astype(np.uint16)
    grey = Image.frombytes("I;16", (side, side), np.tile(row, (side, 1)).tobytes())
    out = io.BytesIO()
    grey.save(out, "PNG")
    tracemalloc.start()
    try:
        media = media_from_bytes(out.getvalue(), "wide16.png", Settings(analysis_side=512))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The decoded 16-bit picture, its 8-bit grey and RGB copies: 6 bytes a pixel, not 8 more.
    assert peak < 7.5 * side * side, peak
    analysis = media.analysis
    assert analysis[0, 0].tolist() == [0, 0, 0] and analysis[0, -1].tolist() == [255, 255, 255]
    assert abs(int(analysis[0, analysis.shape[1] // 2, 0]) - 128) <= 2
