"""Visible AI marks ("AI生成", a generator's name) found by OCR in the corners of an image.

OCR uses rapidocr, whose wheel carries its ONNX models (nothing is downloaded), on onnxruntime;
both are the optional extra ``refundlens[ocr]``. Text is detected with the wheel's detection net,
or where the CPU runs 8-bit arithmetic fast, with the same net's weights quantized to 8 bits
(``models/ocr_det_int8.onnx``, ``training/ocr_det_int8.py``; setting ``ocr_text_detector``): the
two read the same labels within one, with no false label (bench/results/ocr_det_int8.md). Only
the four corners are read, where services put their explicit labels, as one small mosaic in one
OCR call: a bounded budget per image. Without the extra, the detector says so in an
informational finding instead of staying silent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import yaml

__all__ = [
    "DET_INT8",
    "OcrHit",
    "VisibleMark",
    "find_visible_marks",
    "ocr_available",
    "text_detector",
]

DET_INT8 = "models/ocr_det_int8.onnx"
"""The text detector used (package-relative): the wheel's PP-OCRv6 small detection net with its
weights quantized to 8 bits; its ``.json`` names the wheel's file it was made from."""

_LOCK = threading.Lock()


@dataclasses.dataclass(frozen=True, slots=True)
class VisibleMark:
    text: str
    kind: str
    source: str


@dataclasses.dataclass(frozen=True, slots=True)
class OcrHit:
    mark: VisibleMark
    read: str
    score: float
    corner: str
    box: tuple[int, int, int, int]
    """(row, col, height, width) of the text in the analysis image."""


@lru_cache(maxsize=1)
def marks() -> tuple[VisibleMark, ...]:
    text = resources.files(__package__).joinpath("visible_marks.yaml").read_text(encoding="utf-8")
    return tuple(
        VisibleMark(str(r["text"]), str(r["kind"]), str(r["source"])) for r in yaml.safe_load(text)
    )


# x86-64 instructions that multiply-add 8-bit numbers, which ONNX Runtime's integer kernels use.
# Without them the 8-bit convolutions, and quantizing every activation on the fly, cost more than
# they save: on an AMD EPYC with AVX2 alone the 8-bit net took 1.6 times the float net's time on
# a 736 px mosaic (bench/results/visible_marks_passes.md), 1.43 times over the whole OCR.
_INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def text_detector(choice: str = "auto", flags: frozenset[str] | None = None) -> str:
    """``float`` or ``int8``: the text detector ``choice`` (setting ``ocr_text_detector``) runs
    on this machine; ``auto`` is int8 only where the CPU has an 8-bit dot-product instruction
    (``flags``: this machine's, from /proc/cpuinfo; elsewhere none are known and float runs)."""
    if choice in ("float", "int8"):
        return choice
    if choice != "auto":
        raise ValueError(f"ocr_text_detector: expected auto, float or int8, got {choice!r}")
    flags = _cpu_flags() if flags is None else flags
    return "int8" if flags & _INT8_DOT_FLAGS else "float"


@lru_cache(maxsize=4)
def _engine(detector: str = "float", det_side: int = 736) -> Any:
    from rapidocr import RapidOCR

    # An empty corner is the usual case, not worth a log line (rapidocr sets its logger's level
    # from this parameter). One ONNX thread: batch and workers already run a process per core.
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    params = dict(_ENGINE_PARAMS)
    params["Det.limit_side_len"] = det_side
    if detector == "int8":
        params["Det.model_path"] = str(resources.files(__package__).joinpath(DET_INT8))
    return RapidOCR(params=params)


_ENGINE_PARAMS: dict[str, Any] = {
    "Global.log_level": "error",
    "Global.use_cls": False,  # labels are written upright; the angle classifier only costs time
    # rapidocr's default enlarges the short side to 736 px before detection; the mosaic is
    # already at the scale labels are legible, so detect at its own size (about 4x faster)
    "Det.limit_side_len": 736,
    "Det.limit_type": "max",
    "EngineConfig.onnxruntime.intra_op_num_threads": 1,
    # rapidocr turns ONNX Runtime's memory arena off; with it, the detection net's buffers are
    # kept between calls: 0.81 of the time per call, 45 MB more held per process
    # (bench/results/visible_marks_passes.md, "The text detector's memory arena").
    "EngineConfig.onnxruntime.enable_cpu_mem_arena": True,
}


def ocr_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import rapidocr  # noqa: F401
    except ImportError:
        return False
    return True


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).upper().split())


def _bright_strokes(tile: npt.NDArray[np.uint8], reach: int) -> npt.NDArray[np.uint8]:
    """Thin bright strokes of ``tile`` as dark text on white: a white top-hat of the luma (the
    image minus its grey opening by a disc of ``reach`` px) keeps what is brighter than its
    surroundings and narrower than the disc, so a semi-transparent white label keeps its strokes
    while the picture under it goes flat; stretched to the full range and inverted."""
    grey = cv2.cvtColor(tile, cv2.COLOR_RGB2GRAY)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    hat = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, disc).astype(np.float32)
    top = max(12.0, float(np.percentile(hat, 99.5)))
    ink = np.clip(hat * (255.0 / top), 0, 255).astype(np.uint8)
    return np.repeat((255 - ink)[:, :, None], 3, axis=2)


@dataclasses.dataclass(frozen=True, slots=True)
class _Mosaic:
    """The four corners of an image as one 2x2 mosaic, and how to map a box back."""

    image: npt.NDArray[np.uint8]
    tiles: dict[str, tuple[int, int]]
    """Top-left of each corner's tile in the mosaic."""
    origins: dict[str, tuple[int, int]]
    """Top-left of each corner in the image."""
    scale: float
    tile: tuple[int, int]
    """(rows, cols) of a tile."""


def _mosaic(rgb: npt.NDArray[np.uint8], corner_share: float, corner_side: int) -> _Mosaic:
    rows, cols = rgb.shape[:2]
    h, w = max(32, int(rows * corner_share)), max(32, int(cols * corner_share))
    scale = min(1.0, corner_side / max(h, w))
    th, tw = max(16, round(h * scale)), max(16, round(w * scale))
    origins = {
        "top-left": (0, 0),
        "top-right": (0, max(0, cols - w)),
        "bottom-left": (max(0, rows - h), 0),
        "bottom-right": (max(0, rows - h), max(0, cols - w)),
    }
    gap = 8  # white gutters keep text from running across tiles
    mosaic = np.full((2 * th + gap, 2 * tw + gap, 3), 255, np.uint8)
    tiles: dict[str, tuple[int, int]] = {}
    for index, (name, (r0, c0)) in enumerate(origins.items()):
        crop = rgb[r0 : r0 + h, c0 : c0 + w]
        tile = cv2.resize(crop, (tw, th), interpolation=cv2.INTER_AREA) if scale < 1 else crop
        tr, tc = (index // 2) * (th + gap), (index % 2) * (tw + gap)
        mosaic[tr : tr + tile.shape[0], tc : tc + tile.shape[1]] = tile
        tiles[name] = (tr, tc)
    return _Mosaic(mosaic, tiles, origins, scale, (th, tw))


def _read(
    mosaic: _Mosaic,
    image: npt.NDArray[np.uint8],
    min_score: float,
    detector: str,
    det_side: int = 736,
) -> list[OcrHit]:
    """One OCR call on ``image`` (``mosaic``'s image or a transform of it, same geometry): text
    found on ``image`` scaled to at most ``det_side`` px, read at ``image``'s own size."""
    with _LOCK:  # one ONNX session per process, not re-entrant across threads
        engine = _engine(detector, det_side)
        result = engine(np.ascontiguousarray(image[:, :, ::-1]))  # rapidocr expects BGR
    th, tw = mosaic.tile
    hits: list[OcrHit] = []
    for i, text in enumerate(result.txts or ()):
        score = float(result.scores[i])
        folded = _fold(text)
        found = [m for m in marks() if _fold(m.text) in folded]
        if score < min_score or not found:
            continue
        best = max(found, key=lambda m: (m.kind == "label", len(m.text)))
        box = np.asarray(result.boxes[i], np.float64)
        centre_r, centre_c = box[:, 1].mean(), box[:, 0].mean()
        name = min(
            mosaic.tiles,
            key=lambda n: (
                abs(centre_r - mosaic.tiles[n][0] - th / 2)
                + abs(centre_c - mosaic.tiles[n][1] - tw / 2)
            ),
        )
        tr, tc = mosaic.tiles[name]
        r0, c0 = mosaic.origins[name]
        rr = (box[:, 1] - tr) / mosaic.scale + r0
        cc = (box[:, 0] - tc) / mosaic.scale + c0
        hits.append(
            OcrHit(
                best,
                text,
                score,
                name,
                (int(rr.min()), int(cc.min()), int(rr.max() - rr.min()), int(cc.max() - cc.min())),
            )
        )
    return hits


def find_visible_marks(
    rgb: npt.NDArray[np.uint8],
    *,
    corner_share: float = 0.35,
    corner_side: int = 384,
    min_score: float = 0.6,
    enhance: bool = True,
    strokes_side: int | None = None,
    detector: str = "auto",
    det_side: int = 736,
    strokes_det_side: int = 736,
) -> list[OcrHit]:
    """OCR the four corners (``corner_share`` of each side, each scaled to at most ``corner_side``
    pixels) as one 2x2 mosaic, in a single OCR call, and return the known marks read.

    With ``enhance``, when that call reads no label, a second call reads the corners again with
    each tile reduced to its thin bright strokes (:func:`_bright_strokes`), its tiles at most
    ``strokes_side`` pixels (default: ``corner_side``): labels drawn semi-transparent, or white
    over a bright picture, that the plain tiles lose. Two OCR calls at most per image. Sizes and
    opacities read, and what smaller passes would cost in misses, are in
    bench/results/provenance.md and bench/results/visible_marks_passes.md. ``detector`` picks
    the text detector's weights (:func:`text_detector`). ``det_side`` and ``strokes_det_side``
    bound the detector's input per pass (recognition reads at full size); smaller inputs miss
    labels of 18 px and more (bench/results/visible_marks_passes.md), so the default is 736.
    """
    detector = text_detector(detector)
    plain = _mosaic(rgb, corner_share, corner_side)
    hits = _read(plain, plain.image, min_score, detector, det_side)
    if enhance and not any(hit.mark.kind == "label" for hit in hits):
        side = strokes_side or corner_side
        again = plain if side == corner_side else _mosaic(rgb, corner_share, side)
        th, tw = again.tile
        strokes = np.full_like(again.image, 255)
        for tr, tc in again.tiles.values():
            strokes[tr : tr + th, tc : tc + tw] = _bright_strokes(
                again.image[tr : tr + th, tc : tc + tw], 5
            )
        seen = {(hit.corner, hit.mark.text) for hit in hits}
        hits += [
            hit
            for hit in _read(again, strokes, min_score, detector, strokes_det_side)
            if (hit.corner, hit.mark.text) not in seen
        ]
    return hits
