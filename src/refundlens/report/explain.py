"""``refundlens explain``: every fact read from one file, for a reviewer to check by hand."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..detectors.provenance import (
    aigc_labels,
    generator_traces,
    iptc_source_types,
    load_generators,
    xmp_properties,
)
from ..media import Media, estimate_jpeg_quality
from ..media.c2pa_reader import read_c2pa
from ..media.jpeg import adobe_preset

__all__ = ["explain_facts"]

_PREFIXES = {
    "http://www.tc260.org.cn/ns/AIGC/1.0/": "TC260:",
    "http://iptc.org/std/Iptc4xmpExt/2008-02-29/": "Iptc4xmpExt:",
    "http://ns.adobe.com/xap/1.0/": "xmp:",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM:",
    "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#": "stEvt:",
    "http://purl.org/dc/elements/1.1/": "dc:",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop:",
    "http://ns.adobe.com/exif/1.0/": "exif:",
    "http://ns.adobe.com/tiff/1.0/": "tiff:",
}


def _short(name: str) -> str:
    if name.startswith("{"):
        uri, _, local = name[1:].partition("}")
        return _PREFIXES.get(uri, "{" + uri + "}") + local
    return name


def explain_facts(media: Media, settings: Settings | None = None) -> dict[str, Any]:
    """A JSON-safe mapping of everything refundlens reads from ``media``'s file."""
    settings = settings or Settings()
    xmp = xmp_properties(media)
    qtables = media.metadata.jpeg_qtables
    c2pa = read_c2pa(media.data, media.format, settings.c2pa_trust_anchors_path)
    return {
        "file": {
            "path": media.name,
            "sha256": media.sha256,
            "format": media.format,
            "bytes": media.byte_size,
            "width": media.width,
            "height": media.height,
            "notes": list(media.notes),
        },
        "exif": {**media.exif.as_dict(), "user_comment": media.metadata.user_comment},
        # every EXIF text as written: a generator's "workflow:{...}" in Make is shown here and
        # under generator_traces, never as the camera's make above
        "exif_strings": {k: v[:200] for k, v in media.metadata.exif_strings.items()},
        "jpeg": {
            "quantization_tables": {str(k): list(v) for k, v in sorted(qtables.items())},
            "estimated_quality": estimate_jpeg_quality(qtables),
            "adobe_preset": adobe_preset(qtables),
        }
        if media.format == "JPEG"
        else None,
        "icc_profile_bytes": len(media.metadata.icc_profile or b""),
        "pdq": {"hash": media.pdq.hex, "quality": media.pdq.quality},
        "xmp": {_short(k): v for k, v in sorted(xmp.items())},
        "png_text_chunks": [
            {
                "kind": c.kind,
                "key": c.key,
                "after_image_data": c.after_image_data,
                "text": c.text[:200],
            }
            for c in media.metadata.png_chunks
        ],
        "aigc_labels": [read.facts() for read in aigc_labels(media, xmp)],
        "c2pa": c2pa.as_dict() if c2pa is not None else None,
        "iptc_digital_source_type": iptc_source_types(xmp),
        "generator_traces": [
            {"name": e.name, "kind": e.kind, "field": field, "excerpt": excerpt}
            for e, field, excerpt in generator_traces(
                media, load_generators(settings.provenance_generators_path or None), xmp
            )
        ],
    }
