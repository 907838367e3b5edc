"""EXIF capture facts read from a decoded header (no pixels needed)."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

from PIL import ExifTags, Image

__all__ = [
    "ExifFacts",
    "is_generator_payload",
    "parse_exif_datetime",
    "read_exif",
    "read_exif_strings",
    "utc_offset",
    "with_xmp_offset",
]

_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_OFFSET_TIME_ORIGINAL = 0x9011
_TAG_SUBSEC_ORIGINAL = 0x9291


@dataclasses.dataclass(frozen=True, slots=True)
class ExifFacts:
    """The capture facts later detectors reason about; ``None`` where the file does not say."""

    make: str | None = None
    model: str | None = None
    software: str | None = None
    datetime_original: str | None = None
    offset_time_original: str | None = None
    orientation: int | None = None
    pixel_x_dimension: int | None = None
    """EXIF PixelXDimension: the width the camera wrote for the image it saved."""
    pixel_y_dimension: int | None = None
    offset_source: str | None = None
    """Where ``offset_time_original`` came from: ``OffsetTimeOriginal`` (EXIF), or an XMP time
    of the same moment that states its zone (:func:`with_xmp_offset`); None without one."""

    @property
    def present(self) -> bool:
        return any(dataclasses.asdict(self).values())

    def captured_at(self) -> datetime | None:
        """DateTimeOriginal as a datetime, aware when OffsetTimeOriginal is present."""
        return parse_exif_datetime(self.datetime_original, self.offset_time_original)

    def as_dict(self) -> dict[str, str | int | None]:
        return dataclasses.asdict(self)


TEXT_LIMIT = 200
"""Characters of an EXIF text field kept (Make, Model, Software, times). A camera writes a few
dozen; a PNG's or WebP's EXIF block has no size limit, and a 40 MB Software field went into the
stored analysis, the claim page and a 4,000-page report (a security review)."""


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value[: TEXT_LIMIT * 4].decode("utf-8", "replace")
    text = str(value)[: TEXT_LIMIT * 4].replace("\x00", "").strip()
    if len(text) > TEXT_LIMIT:
        text = text[: TEXT_LIMIT - 1] + "…"
    return text or None


_PAYLOAD = re.compile(r"^\s*(?:[A-Za-z_][\w-]{0,40}\s*:\s*)?[{\[]")


def is_generator_payload(text: str | None) -> bool:
    """True for a JSON payload (``workflow:{...}``, ``prompt:{...}``, ``{"aigc_info": ...}``) in a
    field meant for a name: ComfyUI's WebP saver writes its workflow into EXIF Make and its prompt
    into Model. Such a value names no camera."""
    return bool(text) and _PAYLOAD.match(text or "") is not None and len(text or "") > 2


def _camera_text(value: object) -> str | None:
    text = _text(value)
    return None if is_generator_payload(text) else text


def utc_offset(text: str) -> timezone | None:
    """A ``+HH:MM`` / ``-HH:MM`` UTC offset as a timezone; None when malformed."""
    try:
        sign = -1 if text.strip().startswith("-") else 1
        hours, _, minutes = text.strip().lstrip("+-").partition(":")
        return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes or 0)))
    except ValueError:
        return None


def parse_exif_datetime(value: str | None, offset: str | None = None) -> datetime | None:
    """Parse EXIF ``YYYY:MM:DD HH:MM:SS`` with an optional ``+HH:MM`` offset; None when malformed."""
    if not value:
        return None
    try:
        moment = datetime.strptime(value.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    zone = utc_offset(offset) if offset else None
    return moment.replace(tzinfo=zone) if zone else moment


_XMP_TIMES = (
    ("{http://ns.adobe.com/exif/1.0/}DateTimeOriginal", "XMP exif:DateTimeOriginal"),
    ("{http://ns.adobe.com/photoshop/1.0/}DateCreated", "XMP photoshop:DateCreated"),
    ("{http://ns.adobe.com/xap/1.0/}CreateDate", "XMP xmp:CreateDate"),
)


def with_xmp_offset(exif: ExifFacts, xmp: bytes | None) -> ExifFacts:
    """``exif`` with the UTC offset of an XMP capture time where EXIF names none: phones and
    editors write the capture time again in XMP, with its zone, where they leave out EXIF's
    OffsetTimeOriginal (a Jolla photo says +02:00 there; read at the assumed +08:00, its time was
    six hours off: a merchant's walkthrough). Only an XMP time that is the same wall-clock time
    as DateTimeOriginal (to the second) lends its offset: another time says nothing of this one."""
    if exif.offset_time_original is not None:
        return dataclasses.replace(exif, offset_source="OffsetTimeOriginal")
    local = parse_exif_datetime(exif.datetime_original)
    if local is None or not xmp:
        return exif
    from .metadata import parse_xmp

    found = parse_xmp(xmp)
    for key, source in _XMP_TIMES:
        for value in found.get(key, ())[:4]:
            try:
                moment = datetime.fromisoformat(value.strip()[:40])
            except ValueError:
                continue
            offset = moment.utcoffset()
            if offset is None or abs(offset) > timedelta(hours=14):
                continue
            if moment.replace(tzinfo=None, microsecond=0) == local.replace(microsecond=0):
                minutes = int(offset.total_seconds() / 60)  # toward zero: -05:30:30 is -05:30
                sign = "-" if minutes < 0 else "+"
                text = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
                return dataclasses.replace(exif, offset_time_original=text, offset_source=source)
    return exif


def read_exif(image: Image.Image) -> ExifFacts:
    """Read the capture facts from an opened (not necessarily loaded) Pillow image."""
    try:
        exif = image.getexif()
    except Exception:  # a malformed EXIF block is a fact for later detectors, never a crash
        return ExifFacts()
    if not exif:
        return ExifFacts()
    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        sub = {}
    orientation = exif.get(ExifTags.Base.Orientation)
    return ExifFacts(
        make=_camera_text(exif.get(ExifTags.Base.Make)),
        model=_camera_text(exif.get(ExifTags.Base.Model)),
        software=_text(exif.get(ExifTags.Base.Software)),
        datetime_original=_text(sub.get(_TAG_DATETIME_ORIGINAL))
        or _text(exif.get(ExifTags.Base.DateTime)),
        offset_time_original=_text(sub.get(_TAG_OFFSET_TIME_ORIGINAL)),
        orientation=int(orientation) if isinstance(orientation, int) else None,
        pixel_x_dimension=_int(sub.get(0xA002)),
        pixel_y_dimension=_int(sub.get(0xA003)),
    )


MAX_EXIF_STRINGS = 64
MAX_EXIF_STRING_CHARS = 1 << 16


def read_exif_strings(image: Image.Image) -> dict[str, str]:
    """Every text value of IFD0 and the Exif IFD, keyed by tag name (``0xNNNN`` when unnamed):
    where generators leave traces that are not camera facts (ComfyUI's ``workflow:{...}`` in Make,
    a GB 45438 label in ImageDescription, Jimeng's ``aigc_info`` in a field of its own).
    Bounded: at most 64 values of at most 64 KiB each; UserComment is decoded elsewhere."""
    try:
        exif = image.getexif()
    except Exception:  # a malformed EXIF block: nothing to read, never a crash
        return {}
    if not exif:
        return {}
    try:
        sub = dict(exif.get_ifd(ExifTags.IFD.Exif))
    except Exception:
        sub = {}
    out: dict[str, str] = {}
    for tag, value in [*exif.items(), *sub.items()]:
        if len(out) >= MAX_EXIF_STRINGS or tag == 0x9286:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if not isinstance(value, str):
            continue
        text = value.replace("\x00", "").strip()[:MAX_EXIF_STRING_CHARS]
        if text:
            out[ExifTags.TAGS.get(tag, f"0x{tag:04x}")] = text
    return out


def _int(value: object) -> int | None:
    return (
        int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    )
