"""EXIF capture facts read from a decoded header (no pixels needed)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from PIL import ExifTags, Image

__all__ = ["ExifFacts", "parse_exif_datetime", "read_exif", "utc_offset"]

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

    @property
    def present(self) -> bool:
        return any(dataclasses.asdict(self).values())

    def captured_at(self) -> datetime | None:
        """DateTimeOriginal as a datetime, aware when OffsetTimeOriginal is present."""
        return parse_exif_datetime(self.datetime_original, self.offset_time_original)

    def as_dict(self) -> dict[str, str | int | None]:
        return dataclasses.asdict(self)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = str(value).replace("\x00", "").strip()
    return text or None


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
        make=_text(exif.get(ExifTags.Base.Make)),
        model=_text(exif.get(ExifTags.Base.Model)),
        software=_text(exif.get(ExifTags.Base.Software)),
        datetime_original=_text(sub.get(_TAG_DATETIME_ORIGINAL))
        or _text(exif.get(ExifTags.Base.DateTime)),
        offset_time_original=_text(sub.get(_TAG_OFFSET_TIME_ORIGINAL)),
        orientation=int(orientation) if isinstance(orientation, int) else None,
        pixel_x_dimension=_int(sub.get(0xA002)),
        pixel_y_dimension=_int(sub.get(0xA003)),
    )


def _int(value: object) -> int | None:
    return (
        int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
    )
