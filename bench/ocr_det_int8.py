"""The OCR text detector with 8-bit weights against the wheel's original, side by side.

    .venv/bin/python -m bench.ocr_det_int8

Both nets read the visible-marks bench's cases (bench/visible_marks.py: the "AI生成" label drawn
on real photos of ../shared/data at every height, corner and opacity, JPEG q85; 360 cases a
split) and 60 unmarked photos (Photo Tourism samples and Grocery Store shop photos, every 7th),
for false labels and time. The two nets run at once, one process each, one core each, one ONNX
thread: the seconds are CPU time of the whole visible-marks detector (both OCR calls run on an
unmarked photo), median over the unmarked photos. Writes bench/results/ocr_det_int8.md.
"""

from __future__ import annotations

import io
import multiprocessing
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .cases import DATA

RESULTS = Path(__file__).resolve().parent / "results"
WHEEL = "the wheel's PP-OCRv6 small (float weights)"
INT8 = "8-bit weights (models/ocr_det_int8.onnx, shipped)"


def _unmarked() -> list[Path]:
    return sorted(
        [
            *(DATA / "superglue-assets" / "phototourism_sample_images").glob("*.jpg"),
            *(DATA / "grocery-store-packages" / "test" / "Packages").glob("*/*/*.jpg"),
        ]
    )[::7][:60]


def _measure(which: str) -> dict[str, Any]:
    import logging

    from rapidocr import RapidOCR

    from refundlens.detectors.provenance import visible
    from refundlens.media import media_from_bytes
    from refundlens.threads import one_thread_per_process

    from . import visible_marks as vm

    one_thread_per_process()
    engine = visible._engine()
    if which == WHEEL:  # the same parameters, the wheel's own detection net
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)
        params = {k: v for k, v in visible._ENGINE_PARAMS.items() if k != "Det.model_path"}
        engine = RapidOCR(params=params)
    visible._engine = lambda: engine  # type: ignore[assignment]
    out: dict[str, Any] = {"which": which}
    for split in ("dev", "test"):
        rates = vm.miss_rates(vm.photos(split))
        by_height = {k[1]: v for k, v in rates.items() if k[0] == "height"}
        out[split] = {str(h): sum(not x for x in v) for h, v in sorted(by_height.items())}
        out[split + "_cases"] = sum(len(v) for v in by_height.values())
    false, seconds = 0, []
    for path in _unmarked():
        image = Image.open(path).convert("RGB")
        image.thumbnail((1024, 1024))
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        media = media_from_bytes(buffer.getvalue(), path.name)
        start = time.process_time()
        hits = visible.find_visible_marks(media.analysis)
        seconds.append(time.process_time() - start)
        false += any(hit.mark.kind == "label" for hit in hits)
    out["false"], out["unmarked"] = false, len(seconds)
    out["seconds"] = float(np.median(seconds))
    return out


def main() -> None:
    started = time.time()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rows = pool.map(_measure, [WHEEL, INT8])
    wall = time.time() - started
    heights = list(rows[0]["dev"])
    lines = [
        "# The OCR text detector with 8-bit weights, against the wheel's own",
        "",
        f"Command: `python -m bench.ocr_det_int8` ({wall:.0f} s wall). Machine: "
        f"{platform.machine()}, 2 cores; the two nets ran at once, one process and one core "
        "each. Cases: bench/visible_marks.py's, 360 a split; false labels and time on 60 "
        "unmarked photos (Photo Tourism, Grocery Store). Seconds: CPU time of the whole "
        "visible-marks detector on an unmarked photo (both OCR calls), median.",
        "",
        "| text detector | split | missed | "
        + " | ".join(f"{h} px" for h in heights)
        + " | false labels (unmarked) | seconds per unmarked photo |",
        "|---" * (5 + len(heights)) + "|",
    ]
    for row in rows:
        for split in ("dev", "test"):
            missed = row[split]
            lines.append(
                f"| {row['which']} | {split} | {sum(missed.values())} of {row[split + '_cases']} | "
                + " | ".join(str(missed[h]) for h in heights)
                + f" | {row['false']} of {row['unmarked']} | {row['seconds']:.3f} |"
            )
    ratio = rows[0]["seconds"] / max(rows[1]["seconds"], 1e-9)
    lines += [
        "",
        f"The 8-bit net takes {1 / ratio:.2f} of the original's time ({ratio:.1f} times faster). "
        "Rule fixed before the test split was read: ship it if on dev it misses no more labels "
        "of 18 px and over (the size GB 45438-2025 asks for on these photos is about 32 px) and "
        "reads no false label.",
        "",
    ]
    text = "\n".join(lines)
    (RESULTS / "ocr_det_int8.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
