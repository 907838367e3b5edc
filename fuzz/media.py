"""Coverage-guided fuzzing of what reads a claim photo's bytes: decoding, metadata, the AIGC
label, C2PA, capture facts and pixel forensics (``make fuzz``; atheris, libFuzzer for Python).

The contract under test (docs/errors.md): any bytes give a :class:`~refundlens.errors.MediaError`
or an assessment, never another exception. Seeds are small files in every format and carrier
the product reads, generated here (no binary files in the repository). A failing input is
written to ``fuzz/crashes/``; turn it into a test in tests/test_media.py before fixing it.

Usage: ``python -m fuzz.media --seconds 300 [--with-reference]`` (needs ``pip install atheris``).
"""

from __future__ import annotations

import argparse
import datetime
import io
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

HERE = Path(__file__).resolve().parent

_XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" '
    'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
    'TC260:AIGC=\'{"AIGC":{"Label":"1","ContentProducer":"001191110108MA01KP2T5U00000",'
    '"ProduceID":"x","ReservedCode1":"","ContentPropagator":"","PropagateID":"",'
    '"ReservedCode2":""}}\' Iptc4xmpExt:DigitalSourceType='
    '"http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>'
    "</rdf:RDF></x:xmpmeta>"
)


def seeds() -> dict[str, bytes]:
    """Small files in every format and metadata carrier refundlens reads."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    rgb = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131], exif[0x0112] = "Apple", "iPhone 13", "Meitu", 6
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x9011] = "2025:09:10 10:00:00", "+08:00"
    sub[0x9286] = b"ASCII\0\0\0" + b'{"AIGC":{"Label":"2"}}'
    sub[0xA002], sub[0xA003] = 64, 48
    raw_exif = exif.tobytes()

    def save(fmt: str, **options: object) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **options)
        return out.getvalue()

    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", _XMP)
    text.add_text("parameters", "a cup, Steps: 20, Sampler: Euler a, Seed: 1, Model: sd")
    text.add_text("prompt", '{"3": {"class_type": "KSampler"}}')
    plain_png = save("PNG")
    # a tEXt label after the image data, where only a whole-file scan finds it
    chunk = b'AIGC\x00{"AIGC":{"Label":"3"}}'
    end = plain_png.rfind(b"IEND") - 4
    late = (
        struct.pack(">I", len(chunk))
        + b"tEXt"
        + chunk
        + struct.pack(">I", zlib.crc32(b"tEXt" + chunk))
    )
    return {
        "exif_xmp.jpg": save("JPEG", quality=90, exif=raw_exif, xmp=_XMP.encode()),
        "progressive.jpg": save("JPEG", quality=60, progressive=True),
        "labels.png": save("PNG", pnginfo=text),
        "late_label.png": plain_png[:end] + late + plain_png[end:],
        "exif_xmp.webp": save("WEBP", quality=80, exif=raw_exif, xmp=_XMP.encode()),
        "exif_xmp.heic": save("HEIF", quality=50, exif=raw_exif, xmp=_XMP.encode()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument(
        "--with-reference",
        action="store_true",
        help="also compare each input with the bundled listing photo (the reference check)",
    )
    args, rest = parser.parse_known_args()
    import atheris

    corpus, crashes = HERE / "corpus", HERE / "crashes"
    corpus.mkdir(exist_ok=True)
    crashes.mkdir(exist_ok=True)
    for name, data in seeds().items():
        (corpus / name).write_bytes(data)

    with atheris.instrument_imports():
        import refundlens.detectors.capture
        import refundlens.detectors.provenance
        import refundlens.media
        import refundlens.report.explain  # noqa: F401
    from refundlens.config import Settings
    from refundlens.detectors.base import OrderFacts
    from refundlens.detectors.capture import CaptureDetector
    from refundlens.detectors.pixels import PixelsDetector
    from refundlens.detectors.provenance import ProvenanceDetector
    from refundlens.errors import MediaError
    from refundlens.media import media_from_bytes
    from refundlens.pipeline import analyze
    from refundlens.report.evidence import file_facts
    from refundlens.report.explain import explain_facts
    from refundlens.threads import one_thread_per_process

    one_thread_per_process()
    # Small images keep each run fast; OCR is an optional extra with its own fuzzing upstream.
    settings = Settings(ocr_enabled=False, max_pixels=2_000_000)
    detectors = [ProvenanceDetector(), CaptureDetector(), PixelsDetector()]
    references = ()
    if args.with_reference:
        from importlib import resources

        from refundlens.detectors import ReferenceDetector

        listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
        references = (media_from_bytes(listing, "listing.jpg", settings),)
        detectors.append(ReferenceDetector())
    utc = datetime.UTC
    order = OrderFacts(
        shipped_at=datetime.datetime(2025, 9, 10, tzinfo=utc),
        delivered_at=datetime.datetime(2025, 9, 12, tzinfo=utc),
        claimed_at=datetime.datetime(2025, 9, 14, tzinfo=utc),
    )

    def one_input(data: bytes) -> None:
        try:
            media = media_from_bytes(data, "claim.jpg", settings)
        except MediaError:
            return
        explain_facts(media, settings)
        file_facts(data, "claim.jpg")
        analyze([media], references, settings=settings, detectors=detectors, order=order)

    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={args.seconds}",
        "-max_len=200000",
        # The instrumented process grows by about 50 KB per input (atheris's coverage maps: the
        # same inputs run 1,500 times without atheris left the RSS within 8 MB), so the limit
        # is there for a single input that explodes, not for the slope.
        "-rss_limit_mb=12288",
        f"-artifact_prefix={crashes}/",
        *rest,
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
