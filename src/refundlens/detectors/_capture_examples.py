"""Files with known capture facts, written here; the contract test and the tests use them."""

from __future__ import annotations

import io
import struct
from datetime import datetime, timedelta, timezone

import numpy as np
from PIL import Image

from ..media import Media, media_from_bytes
from .base import Context, Example, OrderFacts

CST = timezone(timedelta(hours=8))
ORDER = OrderFacts(
    shipped_at=datetime(2025, 9, 10, 9, 0, tzinfo=CST),
    delivered_at=datetime(2025, 9, 12, 15, 0, tzinfo=CST),
    claimed_at=datetime(2025, 9, 14, 20, 0, tzinfo=CST),
)


def _picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (9, 12, 3), np.uint8)
    return np.asarray(Image.fromarray(small).resize((320, 240), Image.Resampling.BICUBIC))


def photo(
    taken: str | None = None,
    offset: str | None = "+08:00",
    software: str | None = None,
    thumbnail_of: np.ndarray | None = None,
    seed: int = 1,
    written_size: tuple[int, int] | None = None,
    first_quality: int | None = None,
) -> bytes:
    """A camera-style JPEG: EXIF capture time, optional software and an IFD1 thumbnail.

    ``written_size`` sets EXIF PixelX/YDimension; ``first_quality`` compresses the picture once
    at that quality before the final save at 92 (a recompressed photo).
    """
    image = _picture(seed)
    if first_quality is not None:
        first = io.BytesIO()
        Image.fromarray(image).save(first, "JPEG", quality=first_quality)
        image = np.asarray(Image.open(first).convert("RGB"))
    exif = Image.Exif()
    exif[0x010F] = "HUAWEI"
    exif[0x0110] = "P60"
    if software:
        exif[0x0131] = software
    if taken:
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = taken
        if offset:
            sub[0x9011] = offset
    if written_size:
        sub = exif.get_ifd(0x8769)
        sub[0xA002], sub[0xA003] = written_size
    raw = exif.tobytes()
    if thumbnail_of is not None:
        raw = _with_thumbnail(raw, thumbnail_of)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=92, exif=raw)
    return buf.getvalue()


def _with_thumbnail(raw: bytes, picture: np.ndarray) -> bytes:
    """Append an IFD1 with a JPEG thumbnail to Pillow's EXIF bytes (big- or little-endian TIFF)."""
    thumb = io.BytesIO()
    Image.fromarray(picture).resize((160, 120)).save(thumb, "JPEG", quality=80)
    data = thumb.getvalue()
    head = 6 if raw.startswith(b"Exif\x00\x00") else 0
    tiff = bytearray(raw[head:])
    endian = "<" if tiff[:2] == b"II" else ">"
    ifd0 = struct.unpack(endian + "I", tiff[4:8])[0]
    count = struct.unpack(endian + "H", tiff[ifd0 : ifd0 + 2])[0]
    next_at = ifd0 + 2 + 12 * count
    ifd1 = len(tiff)
    struct.pack_into(endian + "I", tiff, next_at, ifd1)
    thumb_at = ifd1 + 2 + 12 * 2 + 4
    tiff += struct.pack(endian + "H", 2)
    tiff += struct.pack(endian + "HHII", 0x0201, 4, 1, thumb_at)
    tiff += struct.pack(endian + "HHII", 0x0202, 4, 1, len(data))
    tiff += struct.pack(endian + "I", 0)
    tiff += data
    return raw[:head] + bytes(tiff)


def _no_exif() -> bytes:
    """What a chat app or a screenshot leaves: the picture, no EXIF segment at all."""
    buf = io.BytesIO()
    Image.fromarray(_picture(2)).save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _case(data: bytes, order: OrderFacts = ORDER) -> tuple[Media, Context]:
    return media_from_bytes(data, "photo.jpg"), Context(order=order)


def _live_capture(data: bytes, order: OrderFacts | None = None) -> tuple[Media, Context]:
    media = media_from_bytes(data, "live.jpg")
    return media, Context(order=order or OrderFacts(), live_captures=frozenset({media.sha256}))


def capture_examples() -> list[Example]:
    return [
        Example(
            "taken a week before shipment",
            lambda: _case(photo("2025:09:03 10:00:00")),
            frozenset({"capture.before_shipment"}),
        ),
        Example(
            "taken between delivery and claim",
            lambda: _case(photo("2025:09:13 11:00:00")),
            frozenset({"capture.consistent_with_order"}),
        ),
        Example(
            "taken after shipment, a day before delivery",
            lambda: _case(photo("2025:09:11 10:00:00")),
            frozenset({"capture.before_delivery"}),
        ),
        Example(
            "taken a day after the claim was filed",
            lambda: _case(photo("2025:09:15 22:00:00")),
            frozenset({"capture.after_claim"}),
        ),
        Example(
            "a live capture taken a day after the claim: what the claim asked for",
            lambda: _live_capture(photo("2025:09:15 22:00:00"), ORDER),
            frozenset({"capture.consistent_with_order"}),
        ),
        Example(
            "a camera clock never set (it starts at 2000): not a photo from before shipment",
            lambda: _case(photo("2000:01:01 00:03:12")),
            frozenset({"capture.clock_not_set"}),
        ),
        Example(
            "a capture time in the year 1, a day ahead of UTC: read, not an overflow",
            lambda: _case(photo("0001:01:01 00:00:00", offset="+23:59")),
            frozenset({"capture.clock_not_set"}),
        ),
        Example(
            "a capture time in the future",
            lambda: _case(photo("2099:01:01 10:00:00")),
            frozenset({"capture.in_future"}),
        ),
        Example(
            "a JPEG with no EXIF at all",
            lambda: _case(_no_exif(), OrderFacts()),
            frozenset({"capture.metadata_stripped"}),
        ),
        Example(
            "a live capture from the capture page has no EXIF by construction: not stripped",
            lambda: _live_capture(_no_exif()),
            frozenset(),
        ),
        Example(
            "thumbnail of another picture",
            lambda: _case(photo(thumbnail_of=_picture(99)), OrderFacts()),
            frozenset({"capture.thumbnail_mismatch"}),
        ),
        Example(
            "thumbnail of the same picture",
            lambda: _case(photo(thumbnail_of=_picture(1)), OrderFacts()),
            frozenset(),
        ),
        Example(
            "saved by Photoshop",
            lambda: _case(photo(software="Adobe Photoshop 25.0"), OrderFacts()),
            frozenset({"capture.editing_software"}),
        ),
        Example(
            "camera wrote a larger size than the image has",
            lambda: _case(photo(written_size=(4000, 3000)), OrderFacts()),
            frozenset({"capture.resized_after_capture"}),
        ),
        Example(
            "camera wrote the image's own size",
            lambda: _case(photo(written_size=(320, 240)), OrderFacts()),
            frozenset(),
        ),
        Example(
            "compressed at 60 and again at 92",
            lambda: _case(photo(first_quality=60, seed=5), OrderFacts()),
            frozenset({"capture.double_compressed"}),
        ),
    ]
