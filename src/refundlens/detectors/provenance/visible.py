"""Visible AI marks ("AI生成", a generator's name) found by OCR in the corners of an image.

OCR uses rapidocr, whose wheel carries its ONNX models (nothing is downloaded), on onnxruntime;
both are the optional extra ``refundlens[ocr]``. Only the four corners are read, where services
put their explicit labels: a bounded budget per image. Without the extra, the detector says so
in an informational finding instead of staying silent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import unicodedata
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

__all__ = ["OcrHit", "VisibleMark", "find_visible_marks", "ocr_available"]

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


@lru_cache(maxsize=1)
def _engine() -> Any:
    from rapidocr import RapidOCR

    # An empty corner is the usual case, not worth a log line (rapidocr sets its logger's level
    # from this parameter). One ONNX thread: batch and workers already run a process per core.
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return RapidOCR(params={"Global.log_level": "error", "EngineConfig.onnxruntime.intra_op_num_threads": 1})


def ocr_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import rapidocr  # noqa: F401
    except ImportError:
        return False
    return True


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).upper().split())


def find_visible_marks(
    rgb: npt.NDArray[np.uint8], *, corner_share: float = 0.35, min_score: float = 0.6
) -> list[OcrHit]:
    """OCR the four corners (``corner_share`` of each side) and return the known marks read."""
    rows, cols = rgb.shape[:2]
    h, w = max(32, int(rows * corner_share)), max(32, int(cols * corner_share))
    corners = {
        "top-left": (0, 0),
        "top-right": (0, cols - w),
        "bottom-left": (rows - h, 0),
        "bottom-right": (rows - h, cols - w),
    }
    hits: list[OcrHit] = []
    engine = _engine()
    for name, (r0, c0) in corners.items():
        crop = np.ascontiguousarray(rgb[max(0, r0) : max(0, r0) + h, max(0, c0) : max(0, c0) + w])
        with _LOCK:  # one ONNX session per process, not re-entrant across threads
            result = engine(crop[:, :, ::-1])  # rapidocr expects BGR like OpenCV
        texts = result.txts or ()
        for i, read in enumerate(texts):
            score = float(result.scores[i])
            if score < min_score:
                continue
            folded = _fold(read)
            found = [m for m in marks() if _fold(m.text) in folded]
            if not found:
                continue
            best = max(found, key=lambda m: (m.kind == "label", len(m.text)))
            box = np.asarray(result.boxes[i])
            rr, cc = box[:, 1] + max(0, r0), box[:, 0] + max(0, c0)
            hits.append(
                OcrHit(
                    best,
                    read,
                    score,
                    name,
                    (
                        int(rr.min()),
                        int(cc.min()),
                        int(rr.max() - rr.min()),
                        int(cc.max() - cc.min()),
                    ),
                )
            )
    return hits
