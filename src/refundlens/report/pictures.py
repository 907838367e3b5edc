"""Pictures a person would rather look at than read: edit masks and claim/reference overlays."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from ..config import Settings
from ..pipeline import ImageAssessment

__all__ = [
    "PICTURE_JPEG_QUALITY",
    "file_extension",
    "image_mime",
    "overlay_image",
    "picture_blobs",
    "viewable_copy",
    "write_finding_pictures",
    "write_pictures",
]

RED = (230, 30, 30)


def _outline(rgb: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    out = rgb.copy()
    if mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        thickness = max(1, round(max(rgb.shape[:2]) / 500))
        cv2.drawContours(out, contours, -1, RED, thickness, lineType=cv2.LINE_AA)
    return out


# Fonts with Chinese glyphs, where the system has one (`make system-deps` installs WenQuanYi
# Micro Hei; Noto CJK is the usual other). Without one, captions are drawn in English only.
_CJK_FONTS = ("wqy-microhei.ttc", "NotoSansCJK-Regular.ttc", "NotoSansSC-Regular.otf",
              "wqy-zenhei.ttc", "DroidSansFallbackFull.ttf")  # fmt: skip
_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/System/Library/Fonts")
CAPTION_PX = 14
"""The captions' smallest size; larger on a wider picture (:data:`CAPTION_SHARE`)."""
CAPTION_SHARE = 0.02
"""The captions' size as a share of the picture's width: at a fixed 14 px, a side-by-side two
photos wide, shown in a 1280 px window, had captions about 8 px tall (a reviewer's walkthrough)."""


@functools.lru_cache(maxsize=8)
def caption_font(size: int = CAPTION_PX) -> ImageFont.FreeTypeFont | None:
    """A font that draws Chinese, at ``size`` px; None where the system has none."""
    for name in _CJK_FONTS:
        for folder in _FONT_DIRS:
            for path in sorted(Path(folder).rglob(name)) if Path(folder).is_dir() else ():
                try:
                    return ImageFont.truetype(str(path), size)
                except OSError:
                    continue
    return None


def _wrap(
    draw: ImageDraw.ImageDraw,
    text: str,
    width: float,
    font: ImageFont.FreeTypeFont | None = None,
) -> list[str]:
    """``text`` in lines no wider than ``width`` pixels, broken at spaces, dots and underscores
    (a finding code breaks between its words), a word wider than the line cut by characters."""
    import re

    def length(part: str) -> float:
        return float(draw.textlength(part, font=font))

    lines: list[str] = []
    line = ""
    for token in re.findall(r"[^ ._]*[ ._]?", text):
        if not token:
            continue
        if line and length(line + token.rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        while length(token.rstrip()) > width and len(token) > 1:
            cut = max(1, int(len(token) * width / max(length(token), 1.0)))
            lines.append(token[:cut])
            token = token[cut:]
        line += token
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _captions(risk: float, action: str, code: str | None, chinese: bool) -> list[str]:
    """The overlay's captions: in Chinese and English where a Chinese font is at hand (the
    picture is made once, for readers of either language), else in English. Words, not codes:
    the picture is one a merchant sends, and "request_capture" or
    "reference.near_copy_unresolved" told its readers nothing (a merchant's walkthrough)."""
    from ..rendering.i18n import finding_title, risk_percent, term

    # As the pages write it: a risk of 0.998 read "1.00", as if certain (a reviewer's walkthrough).
    shown = risk_percent(risk)
    captions = [f"claim photo | risk {shown} {term(action, 'en')}"]
    if code is not None:
        what = finding_title(code, "en")
        captions.append(f"reference aligned onto the claim{': ' + what if what else ''}")
    if not chinese:
        return captions
    captions[0] = f"理赔照片 | 风险 {shown} {term(action, 'zh_CN')} · {captions[0]}"
    if code is not None:
        what = finding_title(code, "zh_CN")
        captions[1] = f"对齐到理赔照片的参考图{'：' + what if what else ''} · {captions[1]}"
    return captions


def overlay_image(image: ImageAssessment) -> npt.NDArray[np.uint8] | None:
    """The claim beside the reference aligned onto it, the localised edit outlined on both.

    Returns None when no finding carries an aligned reference or a region.
    """
    claim = image.media.analysis
    aligned = None
    mask = np.zeros(claim.shape[:2], bool)
    title = "claim"
    for f, _ in image.verdict.reasons:
        if aligned is None and "aligned_reference" in f.pictures:
            aligned = f.pictures["aligned_reference"]
            title = f.code
        if f.region is not None and f.region.kind == "mask":
            mask |= f.region.array.astype(bool)
    if aligned is None and not mask.any():
        return None
    left = _outline(claim, mask)
    panels = [left] if aligned is None else [left, _outline(aligned, mask)]
    width = sum(p.shape[1] for p in panels) + 8 * (len(panels) - 1)
    # In steps of 4 px, so that the fonts kept stay few.
    size = max(CAPTION_PX, 4 * round(CAPTION_SHARE * width / 4))
    font = caption_font(size)
    captions = _captions(
        image.risk, image.action, title if aligned is not None else None, font is not None
    )
    line_px = size + 4 if font is not None else 12
    gap = 8
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    # Each caption wrapped to its own panel's width: a narrow photo once cut it off mid-word.
    wrapped = [
        _wrap(measure, text, p.shape[1] - 12, font)
        for text, p in zip(captions, panels, strict=True)
    ]
    band = 10 + line_px * max(len(lines) for lines in wrapped)
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) - 1)
    canvas = np.full((claim.shape[0] + band, width, 3), 255, np.uint8)
    x = 0
    starts = []
    for panel in panels:
        canvas[band:, x : x + panel.shape[1]] = panel
        starts.append(x)
        x += panel.shape[1] + gap
    picture = Image.fromarray(canvas)
    draw = ImageDraw.Draw(picture)
    for start, lines in zip(starts, wrapped, strict=True):
        for row, line in enumerate(lines):
            draw.text((start + 6, 5 + line_px * row), line, fill=(0, 0, 0), font=font)
    return np.asarray(picture)


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` as ``path``, replacing whatever is there, a link included, without
    following it: ``check --out`` run into a folder a buyer sent (unzip keeps links) wrote its
    report through ``report.html -> ../victim.txt`` (a security review)."""
    import os
    import tempfile

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        # As a plain write would leave it: the umask's mode (a report holds buyers' photos;
        # under umask 077 it stays the user's alone).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_png(path: Path, array: npt.NDArray[np.uint8], mode: str | None, level: int) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG", compress_level=level)
    write_file(path, buffer.getvalue())


def write_pictures(image: ImageAssessment, folder: Path, stem: str) -> dict[int, str]:
    """Write ``<stem>.mask.png`` (full claim size, white = edit) and ``<stem>.overlay.png``.

    Returns {finding index: mask path} for findings whose region was written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[int, str] = {}
    combined: npt.NDArray[np.uint8] | None = None
    for index, finding in enumerate(image.findings):
        if finding.region is None or finding.region.kind != "mask":
            continue
        full = finding.region.full_size(image.media.width, image.media.height)
        combined = full if combined is None else np.maximum(combined, full)
        written[index] = str(folder / f"{stem}.mask.png")
    # A picture of an earlier check of a photo of the same name in the same folder is removed
    # where this one has none: the check report shows the folder's overlay as this check's.
    if combined is not None:
        _write_png(folder / f"{stem}.mask.png", combined, "L", 3)
    else:
        (folder / f"{stem}.mask.png").unlink(missing_ok=True)
    overlay = overlay_image(image)
    if overlay is not None:
        _write_png(folder / f"{stem}.overlay.png", overlay, None, 3)
    else:
        (folder / f"{stem}.overlay.png").unlink(missing_ok=True)
    return written


def write_finding_pictures(
    image: ImageAssessment, folder: Path, stem: str
) -> dict[int, dict[str, str]]:
    """Write every picture a finding carries as ``<stem>.<name>.png``.

    Heatmaps are blended over the claim's analysis copy; a person compares them with the photo.
    Returns {finding index: {picture name: path}}.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[int, dict[str, str]] = {}
    for index, finding in enumerate(image.findings):
        for name, picture in finding.pictures.items():
            path = folder / f"{stem}.{name}.png"
            _write_png(path, np.asarray(picture, np.uint8), None, 1)
            written.setdefault(index, {})[name] = str(path)
    return written


def _png(array: npt.NDArray[np.uint8], mode: str | None = None) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _jpeg(array: npt.NDArray[np.uint8], quality: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def image_mime(data: bytes) -> str:
    """The media type of an image file a browser shows as it is (JPEG, PNG, WebP), by its first
    bytes; ``application/octet-stream`` for anything else (HEIC, AVIF, TIFF)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def file_extension(data: bytes) -> str:
    """The extension a downloaded file gets, by its first bytes (never by the name its sender
    gave): without one, a packing video saved as ``evidence-3079f4bab59b`` opened in no player
    (a new user's walkthrough). Pictures and videos only: ``bin`` for anything else, a PDF
    too, which a double click would open in a reader with the sender's script (a review)."""
    mime = image_mime(data)
    if mime != "application/octet-stream":
        return {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[mime]
    if data[4:8] == b"ftyp":  # ISO base media: HEIF photos, MP4 and QuickTime videos
        brand = data[8:12]
        if brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"):
            return "heic"
        if brand == b"avif":
            return "avif"
        return "mov" if brand == b"qt  " else "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":  # Matroska, WebM
        return "webm" if b"webm" in data[:64] else "mkv"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tif"
    return "bin"


def viewable_copy(data: bytes, name: str, settings: Settings | None = None) -> tuple[bytes, str]:
    """``data`` as a browser or a PDF can show it, with its media type: the file itself where it
    is JPEG, PNG or WebP; otherwise (an iPhone's HEIC, AVIF, TIFF) the analysis copy, the
    pixels the analysis saw (EXIF orientation applied, at most ``analysis_side`` px), as JPEG.
    Browsers show no HEIC: served as it is, a reviewer's page and an evidence report would show
    a blank where the claim photo is. Raises :class:`MediaError` where the file does not decode
    (it was decoded when it was filed, so only with other limits)."""
    mime = image_mime(data)
    if mime != "application/octet-stream":
        return data, mime
    from ..media import media_from_bytes

    media = media_from_bytes(data, name, settings)
    return _jpeg(media.analysis, PICTURE_JPEG_QUALITY), "image/jpeg"


PICTURE_JPEG_QUALITY = 92
"""Quality of the photographic pictures the service keeps (overlay, aligned reference, heatmaps).

A 1 MP heatmap as JPEG 92 takes about 10 ms and 50-90 KiB; as PNG (fastest level) about 100 ms
and 350-830 KiB: PNG encoding was a sixth of the service's time per claim. These pictures are
visual aids; the buyer's photos themselves are kept byte for byte, and masks stay PNG (exact)."""


def picture_blobs(image: ImageAssessment) -> dict[str, bytes]:
    """Every picture of one image as file bytes, by name: ``overlay``, ``mask`` (PNG, analysis
    size, white = localised edit) and each finding's pictures (heatmaps, aligned reference,
    thumbnail); photographic ones as JPEG (:data:`PICTURE_JPEG_QUALITY`). The service stores them
    as blobs beside the assessment; the bytes say which format they are."""
    out: dict[str, bytes] = {}
    overlay = overlay_image(image)
    if overlay is not None:
        out["overlay"] = _jpeg(overlay, PICTURE_JPEG_QUALITY)
    masks = [
        f.region.array.astype(bool)
        for f in image.findings
        if f.region is not None and f.region.kind == "mask"
    ]
    if masks:
        combined = np.logical_or.reduce(masks)
        out["mask"] = _png(np.where(combined, 255, 0).astype(np.uint8), "L")
    for finding in image.findings:
        for name, picture in finding.pictures.items():
            if name not in out:
                out[name] = _jpeg(np.asarray(picture, np.uint8), PICTURE_JPEG_QUALITY)
    return out
