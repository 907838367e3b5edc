"""Safe decoding: the only code in refundlens that opens image files.

Every file becomes a :class:`Media` (RGB uint8, EXIF orientation applied, colours in sRGB) or a
:class:`~refundlens.errors.MediaError` with a stable code. Sizes are checked from the header before
any pixel is decoded, so a hostile file cannot make us allocate without bound.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import warnings
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pillow_heif
from PIL import ExifTags, Image, ImageCms, UnidentifiedImageError

from ..config import Settings
from ..errors import MediaError
from .exif import ExifFacts, read_exif, read_exif_strings, with_xmp_offset
from .fingerprint import PdqHash, pdq, pdq_centre_crops, pdq_dihedral
from .metadata import TextChunk, decode_user_comment, png_text_chunks

__all__ = [
    "SUPPORTED_FORMATS",
    "AnimatedMediaError",
    "Media",
    "MetadataBlocks",
    "load_media",
    "media_from_bytes",
    "metadata_facts",
]

pillow_heif.register_heif_opener()

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})
_SRGB = ImageCms.createProfile("sRGB")

RGBArray = npt.NDArray[np.uint8]


@dataclasses.dataclass(frozen=True, slots=True)
class MetadataBlocks:
    """Raw metadata as the file carries it, for detectors that read more than EXIF facts."""

    exif: bytes | None = None
    xmp: bytes | None = None
    icc_profile: bytes | None = None
    text_chunks: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """PNG text by key (first chunk of each key), from anywhere in the file."""
    png_chunks: tuple[TextChunk, ...] = ()
    """Every PNG text chunk with its type and position (before/after the image data)."""
    user_comment: str | None = None
    """EXIF UserComment, decoded from its character-code prefix."""
    exif_strings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Every other text value of EXIF IFD0 and the Exif IFD by tag name (``read_exif_strings``)."""
    jpeg_app_segments: tuple[tuple[str, bytes], ...] = ()
    jpeg_qtables: Mapping[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class Media:
    """One decoded image and what its file says about itself.

    ``analysis`` is the reduced copy (longest side at most ``Settings.analysis_side``) that
    matching and residuals use; ``pixels`` decodes the full resolution on first use only.
    Coordinates are (row, col); ``width``/``height`` are the oriented full-resolution size.
    """

    name: str
    data: bytes = dataclasses.field(repr=False)
    sha256: str
    format: str
    width: int
    height: int
    exif: ExifFacts
    metadata: MetadataBlocks
    analysis: RGBArray = dataclasses.field(repr=False)
    notes: tuple[str, ...] = ()

    @property
    def byte_size(self) -> int:
        return len(self.data)

    @property
    def analysis_scale(self) -> float:
        """Full-resolution pixels per analysis pixel (>= 1)."""
        return float(max(self.width, self.height) / max(self.analysis.shape[:2]))

    @cached_property
    def pixels(self) -> RGBArray:
        """The full-resolution RGB image (decoded now, once)."""
        with _open(self.data) as image:
            return _normalize(image, None)

    @cached_property
    def jpeg_chroma_subsampling(self) -> tuple[int, int] | None:
        """JPEG only: how many pixels (across, down) share one sample of colour, from the
        frame header: (2, 2) for 4:2:0, (2, 1) for 4:2:2, (1, 1) for full colour; None for
        another format or a layout this does not read (CMYK, a single channel)."""
        if self.format != "JPEG":
            return None
        with _open(self.data) as image:
            layers = getattr(image, "layer", None)
        if not layers or len(layers) != 3:
            return None
        (_, h0, v0, _), *chroma = layers
        if any((h, v) != (chroma[0][1], chroma[0][2]) for _, h, v, _ in chroma) or not (
            chroma[0][1] and chroma[0][2]
        ):
            return None
        h, v = h0 // chroma[0][1], v0 // chroma[0][2]
        return (h, v) if h >= 1 and v >= 1 else None

    @cached_property
    def jpeg_luma(self) -> npt.NDArray[np.float32] | None:
        """JPEG only: the decoded luma plane (Y, 0-255) as stored, before colour conversion.

        Stored orientation, not EXIF-oriented, because the 8x8 block grid lives there; use
        :meth:`orient` to turn maps computed on it into image coordinates. Forensics reads the
        DCT coefficients back from this plane: a decoded block re-transformed and divided by its
        quantization table lands within a few hundredths of the stored integers.
        """
        if self.format != "JPEG":
            return None
        with _open(self.data) as image:
            image.draft("YCbCr", image.size)
            try:
                image.load()
            except (OSError, SyntaxError, EOFError, ValueError) as exc:
                raise MediaError(
                    "media.corrupt", f"The image data cannot be decoded: {exc}."
                ) from exc
            if image.mode == "YCbCr":
                return np.asarray(image.getchannel(0), dtype=np.float32)
            if image.mode == "L":
                return np.asarray(image, dtype=np.float32)
            return None  # CMYK/YCCK JPEGs: no single luma plane to read

    def orient(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Apply the file's EXIF orientation to ``array`` (rows, cols, ...) in stored orientation."""
        return turned(array, self.exif.orientation or 1)

    def unorient(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """``array`` (rows, cols, ...) upright, as the file stores it: :meth:`orient` undone."""
        orientation = self.exif.orientation or 1
        return turned(array, {6: 8, 8: 6}.get(orientation, orientation))

    @cached_property
    def _pdq_source(self) -> RGBArray:
        # PDQ reduces to 64x64 itself; a 512-px copy hashes the same and costs a quarter.
        rows, cols = self.analysis.shape[:2]
        factor = 512 / max(rows, cols)
        if factor >= 1:
            return self.analysis
        size = (max(1, round(cols * factor)), max(1, round(rows * factor)))
        return np.asarray(Image.fromarray(self.analysis).resize(size, Image.Resampling.BOX))

    @cached_property
    def pdq(self) -> PdqHash:
        return pdq(self._pdq_source)

    @cached_property
    def pdq_dihedral(self) -> tuple[PdqHash, ...]:
        return pdq_dihedral(self._pdq_source)

    @cached_property
    def pdq_centre_crops(self) -> Mapping[str, PdqHash]:
        """PDQ of the analysis copy's centre crops (``fingerprint.pdq_centre_crops``): the
        intake, the reuse check and the history read them for one photo; hashed once."""
        return pdq_centre_crops(self.analysis)


def _pixel_limit_error(pixels: int, size: str, data_len: int, settings: Settings) -> MediaError:
    if pixels / max(1, data_len) > settings.bomb_pixels_per_byte:
        return MediaError(
            "media.decompression_bomb",
            f"The header claims {size} pixels from only {data_len} bytes: a decompression bomb.",
        )
    return MediaError(
        "media.too_many_pixels",
        f"The header claims {size} pixels; the limits are max_pixels={settings.max_pixels} and "
        f"max_side={settings.max_side}.",
    )


def _open(data: bytes, settings: Settings | None = None) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise MediaError("media.not_an_image", "The file is not an image we can read.") from exc
    except Image.DecompressionBombError as exc:
        # Pillow's own guard fired in open() (over ~179 Mpx), before our header check could.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else 1 << 40
        raise _pixel_limit_error(pixels, str(pixels), len(data), settings or Settings()) from exc
    except ValueError as exc:  # Pillow's text-chunk limits ("Decompressed data too large")
        raise MediaError(
            "media.decompression_bomb", f"The file's metadata expands too far: {exc}."
        ) from exc
    except (OSError, SyntaxError, EOFError) as exc:
        raise MediaError("media.corrupt", f"The image data is corrupt: {exc}.") from exc
    except Exception as exc:  # a plugin's parser on hostile bytes (a fuzzed AVIF: RuntimeError)
        raise MediaError(
            "media.corrupt", f"The image data is corrupt: {exc or type(exc).__name__}."
        ) from exc


HIGH_BIT_STRIP_ROWS = 256
"""Rows scaled at a time from 16- or 32-bit grey to 8 bits: a float copy of a whole 64 MP
picture would take 512 MB (a 140 KB PNG can hold one)."""


def _high_bits_to_8(image: Image.Image) -> npt.NDArray[np.uint8]:
    """A 16-bit, 32-bit integer or float grey picture as 8-bit grey, a strip of rows at a time:
    16-bit scales 0-65535 to 0-255; the others scale 0-65535 where they exceed 255, else keep
    0-255 (values outside clipped)."""
    arr = np.asarray(image)
    top = 65535.0 if image.mode.startswith("I;16") or float(arr.max(initial=0)) > 255 else 255.0
    out = np.empty(arr.shape, np.uint8)
    for start in range(0, arr.shape[0], HIGH_BIT_STRIP_ROWS):
        strip = np.nan_to_num(arr[start : start + HIGH_BIT_STRIP_ROWS].astype(np.float32))
        out[start : start + HIGH_BIT_STRIP_ROWS] = np.clip(strip * (255.0 / top) + 0.5, 0, 255)
    return out


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to RGB; transparency is composited on white, as shops display it."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_high_bits_to_8(image), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Pasted onto white through its own alpha: one RGB copy beside the decoded picture.
        # (A white RGBA layer, alpha_composite and a conversion held four full copies: a 265 KB
        # PNG of 64 MP in one colour took 1.3 GB.)
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, (0, 0), rgba)
        return out
    return image.convert("RGB") if image.mode != "RGB" else image


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if not icc:
        return _to_rgb(image)
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile) or ""
        if "srgb" in description.lower() and image.mode == "RGB":
            return image
        if image.mode not in ("RGB", "CMYK", "L"):
            image = _to_rgb(image)
        converted = ImageCms.profileToProfile(image, profile, _SRGB, outputMode="RGB")
        return converted if converted is not None else _to_rgb(image)
    except (ImageCms.PyCMSError, OSError, ValueError):
        # An unusable profile leaves the pixels as stored; the note says so.
        return _to_rgb(image)


_TURNS: dict[int, Any] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}


def turned(array: npt.NDArray[Any], orientation: int) -> npt.NDArray[Any]:
    """``array`` (rows, cols, ...) turned as EXIF ``orientation`` says (1: as it is). The
    turns of 2, 3, 4, 5 and 7 undo themselves; 6 and 8 undo each other."""
    turn = _TURNS.get(orientation)
    return np.ascontiguousarray(turn(array)) if turn else array


DRAFT_SLACK = 0.95

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF Orientation says (``ExifFacts.orientation``, ``Media.orient``).

    Not ``ImageOps.exif_transpose``: it also rewrites the EXIF block, and raises on an entry whose
    type does not fit its tag (a fuzzing find: Make stored under a SHORT tag's number), which a
    photo's orientation does not depend on.
    """
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # a malformed EXIF block: the pixels as stored
        return image
    method = _TRANSPOSE.get(orientation) if isinstance(orientation, int) else None
    return image.transpose(method) if method is not None else image


def _normalize(image: Image.Image, max_side: int | None) -> RGBArray:
    icc = image.info.get("icc_profile")
    try:
        if max_side is not None and image.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: most of the cost of a 12 MP file.
            # A scale that lands up to 5% under the analysis side is taken as it is (a 4000-px
            # photo decodes at 1/4 to 1000 px instead of at 1/2 to 2000 px, then resampled).
            w, h = image.size
            factor = DRAFT_SLACK * max_side / max(w, h)
            if factor < 1:
                image.draft("RGB", (max(1, int(w * factor)), max(1, int(h * factor))))
        image.load()
        image = _upright(image)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("media.decompression_bomb", "The image expands too far.") from exc
    except Exception as exc:
        # Only the decoders run in this block, and on hostile bytes they raise whatever their
        # parsers hit (OSError, struct.error, libheif's RuntimeError...): all of it means that
        # the data cannot be decoded, never a traceback.
        text = str(exc)
        if "security limit" in text.lower():  # libheif: the decoded size differs from the header's
            raise MediaError(
                "media.decompression_bomb",
                f"The image would decode far larger than its header says: {text}.",
            ) from exc
        raise MediaError(
            "media.truncated" if "truncated" in text else "media.corrupt",
            f"The image data cannot be decoded: {text or type(exc).__name__}.",
        ) from exc
    image = _to_srgb(image, icc if isinstance(icc, bytes) else None)
    if max_side is not None and max(image.size) > max_side:
        factor = max_side / max(image.size)
        size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
        image = image.resize(
            size,
            Image.Resampling.BOX if factor < 0.5 else Image.Resampling.BILINEAR,
            reducing_gap=2.0,
        )
    arr = np.asarray(image, dtype=np.uint8)
    return np.ascontiguousarray(arr)


def _metadata(image: Image.Image, data: bytes) -> MetadataBlocks:
    info: Mapping[Any, Any] = image.info
    chunks = png_text_chunks(data) if image.format == "PNG" else ()
    text: dict[str, str] = {}
    for chunk in chunks:
        text.setdefault(chunk.key, chunk.text)
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp") or text.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    try:
        comment = decode_user_comment(image.getexif().get_ifd(ExifTags.IFD.Exif).get(0x9286))
    except Exception:  # a malformed EXIF block is reported by its absence, never a crash
        comment = None
    app = tuple((str(marker), bytes(payload)) for marker, payload in getattr(image, "applist", []))
    qtables = getattr(image, "quantization", None) or {}
    exif = info.get("exif")
    icc = info.get("icc_profile")
    return MetadataBlocks(
        exif=exif if isinstance(exif, bytes) else None,
        xmp=xmp if isinstance(xmp, bytes) else None,
        icc_profile=icc if isinstance(icc, bytes) else None,
        text_chunks=text,
        png_chunks=chunks,
        user_comment=comment,
        exif_strings=read_exif_strings(image),
        jpeg_app_segments=app,
        jpeg_qtables={int(k): tuple(int(x) for x in v) for k, v in qtables.items()},
    )


def metadata_facts(exif: ExifFacts, metadata: MetadataBlocks) -> dict[str, Any]:
    """A JSON-safe summary of what a file's metadata says (values cut to 300 characters)."""

    def cut(text: str) -> str:
        return text if len(text) <= 300 else text[:300] + "…"

    return {
        "exif": {k: v for k, v in exif.as_dict().items() if v is not None},
        "exif_strings": {k: cut(v) for k, v in metadata.exif_strings.items()},
        "user_comment": cut(metadata.user_comment) if metadata.user_comment else None,
        "png_text": {c.key: cut(c.text) for c in metadata.png_chunks},
        "xmp": cut(metadata.xmp.decode("utf-8", "replace")) if metadata.xmp else None,
    }


class AnimatedMediaError(MediaError):
    """``media.animated``: refused (send a still photo), yet its metadata was read.

    ``facts`` says what the metadata says (:func:`metadata_facts`); ``still`` is the first frame
    with the file's metadata, so that the provenance detector can say what made the file (an
    animated ComfyUI or video-model output). It is never analysed as a claim photo.
    """

    def __init__(self, message: str, facts: dict[str, object], still: Media | None) -> None:
        super().__init__("media.animated", message, facts)
        self.still = still


def _animated(
    image: Image.Image, data: bytes, name: str, fmt: str, frames: int, settings: Settings
) -> AnimatedMediaError:
    """The refusal of an animated file, with its metadata read (sizes were checked already)."""
    message = f"The file is animated ({frames} frames); send a still photo."
    try:
        metadata = _metadata(image, data)
        exif = with_xmp_offset(read_exif(image), metadata.xmp)
    except Exception:  # hostile metadata: the refusal stands without it
        return AnimatedMediaError(message, {"frames": frames, "format": fmt}, None)
    facts: dict[str, object] = {"frames": frames, "format": fmt, **metadata_facts(exif, metadata)}
    try:
        image.seek(0)
        analysis = _normalize(image, settings.analysis_side)
    except Exception:  # the first frame does not decode: the metadata is still reported
        return AnimatedMediaError(message, facts, None)
    still = Media(
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=image.size[1] if exif.orientation in (5, 6, 7, 8) else image.size[0],
        height=image.size[0] if exif.orientation in (5, 6, 7, 8) else image.size[1],
        exif=exif,
        metadata=metadata,
        analysis=analysis,
        notes=(f"first of {frames} frames of an animated file, read for its metadata only",),
    )
    return AnimatedMediaError(message, facts, still)


_JPEG_DAMAGE = re.compile(
    r"Corrupt JPEG data: (premature end of data segment|bad Huffman code|bad arithmetic code"
    r"|found marker 0x[0-9a-f]{2} instead of RST\d|\d+ extraneous bytes before marker "
    r"0x(d[0-79]))|Premature end of JPEG file"
)
"""libjpeg's warnings that say the entropy-coded data is damaged (jerror.h: JWRN_HIT_MARKER,
JWRN_HUFF_BAD_CODE, JWRN_ARITH_BAD_CODE, JWRN_MUST_RESYNC, JWRN_JPEG_EOF, and
JWRN_EXTRANEOUS_DATA where the stray bytes come before a restart marker or the end of the image:
the data the decoder did not use). Stray bytes before a header marker (a table, a scan's start)
leave the picture whole: a review found two of them refusing a file Pillow decodes exactly.
Its other warnings (an unknown JFIF revision, an odd progression) describe files that decode
right."""


def jpeg_damage(data: bytes) -> str | None:
    """libjpeg-turbo's words where a JPEG's image data is damaged, else None.

    Pillow and OpenCV decode damaged data without a word: the decoder loses its place in the
    Huffman stream and fills the rest of the picture with shifted blocks, or grey. Here the data
    is decoded once more in libjpeg-turbo's strict mode at 1/8 scale (the entropy decoding is
    all of the work: about 2 ms for 1 MP, 25 ms for 12 MP on one core), and its warnings of
    damage are read. On the 1,144 JPEGs in ../shared/data (camera originals of many makes,
    shop photos, generators' outputs) only the one named ``corrupted.jpg`` warned."""
    import simplejpeg

    try:
        simplejpeg.decode_jpeg(data, colorspace="GRAY", min_height=1, min_width=1, strict=True)
    except ValueError as exc:
        text = str(exc)
        return text if _JPEG_DAMAGE.match(text) else None
    except Exception:  # what the strict decoder cannot read or convert, Pillow read: no verdict
        return None
    return None


# A marker as libjpeg finds one between segments (jdmarker.c, next_marker): a 0xFF followed by
# anything but a stuffed zero or another 0xFF (a fill byte); every other byte there is skipped.
_MARKER = re.compile(rb"\xff(?![\x00\xff])")
# The end of a scan's entropy-coded data: a 0xFF that is not a stuffed zero, a restart marker or
# a fill byte (ITU-T T.81, B.1.1.5 and F.1.2.3).
_SCAN_END = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")


def jpeg_scans(data: bytes, stop_after: int) -> int:
    """The start-of-scan markers of a JPEG's own stream (ITU-T T.81, B.2), counted without
    decoding, as libjpeg reads the stream; the count stops once past ``stop_after``. Segments
    are skipped by their length, so a thumbnail inside the EXIF block is not counted; a scan's
    data is skipped to its end; bytes that are no marker are skipped as libjpeg skips them (a
    review hid 5,000 scans from a first version behind ``FF 00`` "segments" the decoder
    ignores)."""
    if not data.startswith(b"\xff\xd8"):
        return 0
    pos, scans, size = 2, 0, len(data)
    while True:
        found = _MARKER.search(data, pos)
        if found is None or found.start() + 2 > size:
            break
        pos = found.start()
        marker = data[pos + 1]
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker == 0xD9 or pos + 4 > size:  # the end of the image
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2:
            break
        pos += 2 + length
        if marker == 0xDA:
            scans += 1
            if scans > stop_after:
                break
            end = _SCAN_END.search(data, pos)
            if end is None:
                break
            pos = end.start()
    return scans


def media_from_bytes(data: bytes, name: str, settings: Settings | None = None) -> Media:
    """Decode ``data`` into a :class:`Media`, or raise :class:`MediaError`.

    Order matters for safety: byte size, then the header's pixel size, then decoding.
    """
    settings = settings or Settings()
    if not data:
        raise MediaError("media.empty", "The file is empty (0 bytes).")
    if len(data) > settings.max_file_bytes:
        raise MediaError(
            "media.too_large",
            f"The file is {len(data)} bytes; the limit (max_file_bytes) is {settings.max_file_bytes}.",
        )
    with _open(data, settings) as image:
        fmt = (image.format or "").upper()
        if fmt not in SUPPORTED_FORMATS:
            raise MediaError(
                "media.unsupported_format",
                f"{fmt or 'This'} images are not supported; send JPEG, PNG, WebP or HEIC/HEIF.",
            )
        width, height = image.size
        if max(width, height) > settings.max_side or width * height > settings.max_pixels:
            raise _pixel_limit_error(width * height, f"{width}x{height}", len(data), settings)
        if fmt == "JPEG" and jpeg_scans(data, settings.max_jpeg_scans) > settings.max_jpeg_scans:
            # Each scan is a pass over every block: a small file of empty scans decodes for
            # tens of seconds (a security review), and is decoded more than once here.
            raise MediaError(
                "media.decompression_bomb",
                f"The JPEG holds more than {settings.max_jpeg_scans} scans (max_jpeg_scans; "
                f"cameras write 1, progressive encoders about 10): it would take far longer "
                f"to decode than its size says. Save it again as a plain JPEG.",
            )
        if width < 1 or height < 1:
            raise MediaError("media.corrupt", "The header claims an empty image.")
        notes: list[str] = []
        frames = int(getattr(image, "n_frames", 1) or 1)
        if frames > 1:
            if fmt != "HEIF":
                raise _animated(image, data, name, fmt, frames, settings)
            notes.append(f"HEIF container holds {frames} images; the primary one was analysed")
        # Pixels first: reading a PNG's EXIF loads the image and swallows a decoding error,
        # which then surfaced only later, in a detector asking for the full resolution.
        analysis = _normalize(image, settings.analysis_side)
        if fmt == "JPEG":
            damage = jpeg_damage(data)
            if damage is not None:
                raise MediaError(
                    "media.truncated" if damage.startswith("Premature end") else "media.corrupt",
                    f"The JPEG's image data is damaged ({damage}): part of the picture would "
                    "be wrong. Send the file again as the camera or the shop first saved it (a "
                    "copy cut short or overwritten on the way cannot be judged).",
                )
        metadata = _metadata(image, data)
        exif = with_xmp_offset(read_exif(image), metadata.xmp)
    oriented = (height, width) if exif.orientation in (5, 6, 7, 8) else (width, height)
    return Media(
        name=name,
        data=data,
        sha256=hashlib.sha256(data).hexdigest(),
        format=fmt,
        width=oriented[0],
        height=oriented[1],
        exif=exif,
        metadata=metadata,
        analysis=analysis,
        notes=tuple(notes),
    )


def load_media(path: str | os.PathLike[str], settings: Settings | None = None) -> Media:
    """Read and decode one file; never reads more than ``max_file_bytes`` + 1 bytes."""
    settings = settings or Settings()
    p = Path(path)
    try:
        with p.open("rb") as handle:
            data = handle.read(settings.max_file_bytes + 1)
    except FileNotFoundError as exc:
        raise MediaError("media.not_found", f"No such file: {p}.") from exc
    except IsADirectoryError as exc:
        raise MediaError("media.not_found", f"{p} is a folder, not a file.") from exc
    except OSError as exc:
        raise MediaError("media.unreadable", f"Cannot read {p}: {exc.strerror or exc}.") from exc
    return media_from_bytes(data, str(p), settings)
