"""Visible "AI生成" marks drawn on real photos: miss rate per mark size, position and opacity.

Each photo of ../shared/data (Photo Tourism, ScanNet, ManTraNet source photos: no one here made
them) is reduced to at most 1024 px (the analysis size), and the label is drawn as services draw
theirs: white text with a thin dark outline, in one corner, a margin of half its height from the
edges, at a text height of 10 to 32 px and an opacity of 100%, 60% or 35% (semi-transparent
marks), then saved as JPEG q85 and read by the detector's OCR. Photos fall in split dev or test
by ``bench.cases.split_of`` (a hash of the path); the reported table is the test split.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from refundlens.detectors.provenance._examples import draw_mark
from refundlens.detectors.provenance.visible import find_visible_marks
from refundlens.media import media_from_bytes

from .cases import DATA, split_of

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
HEIGHTS = (10, 14, 18, 24, 32)
OPACITIES = (1.0, 0.6, 0.35)
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
TEXT = "AI生成"


def photos(split: str, limit: int = 6) -> list[Path]:
    found = sorted(
        [
            *(DATA / "superglue-assets" / "phototourism_sample_images").glob("*.jpg"),
            *(DATA / "superglue-assets" / "scannet_sample_images").glob("*.jpg"),
            *(DATA / "mantranet-reddit-pairs" / "original").glob("*.jpg"),
        ]
    )
    chosen = [p for p in found if split_of(str(p.relative_to(DATA))) == split]
    return chosen[:: max(1, len(chosen) // limit)][:limit]


def miss_rates(
    paths: Iterable[Path],
) -> dict[tuple[str, object], list[bool]]:
    """{(axis, value): [found per case]} over heights x corners x opacities, axes 'height',
    'corner', 'opacity' and 'height x opacity'."""
    out: dict[tuple[str, object], list[bool]] = collections.defaultdict(list)
    for path in paths:
        base = Image.open(path).convert("RGB")
        base.thumbnail((1024, 1024))
        for height, corner, opacity in itertools.product(HEIGHTS, CORNERS, OPACITIES):
            media = media_from_bytes(draw_mark(base, height, corner, opacity, FONT), "mark.jpg")
            found = any(hit.mark.kind == "label" for hit in find_visible_marks(media.analysis))
            out[("height", height)].append(found)
            out[("corner", corner)].append(found)
            out[("opacity", opacity)].append(found)
            out[("height x opacity", (height, opacity))].append(found)
    return out


def table(rates: dict[tuple[str, object], list[bool]]) -> list[str]:
    lines = ["| mark | cases | missed | miss rate |", "|---|---|---|---|"]
    for (axis, value), hits in rates.items():
        if axis == "height x opacity":
            continue
        label = (
            f"{value} px tall"
            if axis == "height"
            else f"{round(100 * float(value))}% opaque"  # type: ignore[arg-type]
            if axis == "opacity"
            else str(value)
        )
        missed = len(hits) - sum(hits)
        lines.append(f"| {label} | {len(hits)} | {missed} | {100 * missed / len(hits):.0f}% |")
    lines += [
        "",
        "| height \\ opacity | " + " | ".join(f"{round(100 * o)}%" for o in OPACITIES) + " |",
        "|---" * (len(OPACITIES) + 1) + "|",
    ]
    for height in HEIGHTS:
        cells = []
        for opacity in OPACITIES:
            hits = rates[("height x opacity", (height, opacity))]
            cells.append(f"{100 * (1 - float(np.mean(hits))):.0f}% missed")
        lines.append(f"| {height} px | " + " | ".join(cells) + " |")
    return lines


# Cheaper OCR passes, measured rather than guessed (issue 22: OCR is the largest single cost of
# an honest claim): each (plain tile side, strokes tile side) on the dev photos, misses per
# height, and the seconds an unmarked photo costs (both calls run when no label is read).
PASSES = ((384, 384), (384, 320), (384, 288), (320, 320))


def _misses(bases: list[Image.Image], **options: int) -> tuple[collections.Counter[int], int]:
    """Labels missed per height over every height, corner and opacity drawn on ``bases``, with
    ``find_visible_marks(**options)``; and the number of cases."""
    missed = collections.Counter[int]()
    total = 0
    for base in bases:
        for height, corner, opacity in itertools.product(HEIGHTS, CORNERS, OPACITIES):
            media = media_from_bytes(draw_mark(base, height, corner, opacity, FONT), "m.jpg")
            hits = find_visible_marks(media.analysis, **options)  # type: ignore[arg-type]
            total += 1
            missed[height] += not any(hit.mark.kind == "label" for hit in hits)
    return missed, total


def passes_study(split: str = "dev", limit: int = 6) -> list[str]:
    import time

    from refundlens.threads import one_thread_per_process

    one_thread_per_process()
    paths = photos(split, limit)
    bases = []
    for path in paths:
        base = Image.open(path).convert("RGB")
        base.thumbnail((1024, 1024))
        bases.append(base)
    lines = [
        "# Visible marks: what cheaper OCR passes would miss",
        "",
        f"Split `{split}` ({len(paths)} photos: {', '.join(p.name for p in paths)}); the label "
        "drawn as in the provenance report (white, thin dark outline), every height, corner and "
        "opacity, JPEG q85. 'Seconds' is one core, an unmarked photo (both OCR calls run), best "
        "of 3, mean over the photos. Command: `python -m bench.visible_marks`.",
        "",
        "| plain tiles px | strokes tiles px | missed | "
        + " | ".join(f"{h} px" for h in HEIGHTS)
        + " | seconds per unmarked photo |",
        "|---" * (4 + len(HEIGHTS)) + "|",
    ]
    for corner_side, strokes_side in PASSES:
        missed, total = _misses(bases, corner_side=corner_side, strokes_side=strokes_side)
        seconds = []
        for base in bases:
            rgb = np.asarray(base)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                find_visible_marks(rgb, corner_side=corner_side, strokes_side=strokes_side)
                times.append(time.perf_counter() - start)
            seconds.append(min(times))
        lines.append(
            f"| {corner_side} | {strokes_side} | {sum(missed.values())} of {total} | "
            + " | ".join(str(missed[h]) for h in HEIGHTS)
            + f" | {float(np.mean(seconds)):.3f} |"
        )
    return lines


# Text found on the mosaic scaled down for the detection net (its cost follows its pixels),
# read at full size by the recognition net: (plain pass, strokes pass) detection sides in px.
DET_SIDES = ((736, 736), (736, 416), (544, 416), (416, 416))


def det_side_study(
    split: str = "dev", limit: int = 6, sides: tuple[tuple[int, int], ...] = DET_SIDES
) -> list[str]:
    """Rows of misses per height and CPU seconds per unmarked photo, the tiles at their
    shipped size and the detection net's input at most ``sides`` px."""
    import time

    from refundlens.threads import one_thread_per_process

    one_thread_per_process()
    bases = []
    for path in photos(split, limit):
        base = Image.open(path).convert("RGB")
        base.thumbnail((1024, 1024))
        bases.append(base)
    rows = []
    for det_side, strokes_det_side in sides:
        missed, total = _misses(bases, det_side=det_side, strokes_det_side=strokes_det_side)
        seconds = []
        for base in bases:
            rgb = np.asarray(base)
            start = time.process_time()
            find_visible_marks(rgb, det_side=det_side, strokes_det_side=strokes_det_side)
            seconds.append(time.process_time() - start)
        rows.append(
            f"| {split} | {det_side} | {strokes_det_side} | {sum(missed.values())} of {total} | "
            + " | ".join(str(missed[h]) for h in HEIGHTS)
            + f" | {float(np.median(seconds)):.3f} |"
        )
    return rows


def arena_study(rounds: int = 3) -> list[str]:
    """Rows of one core's seconds for a whole honest claim's analysis (1152 x 864, OCR on, the
    bundled genuine photo as bench/run_service.py sends it), with ONNX Runtime's memory arena
    off (rapidocr's default) and on for the OCR nets, alternated in one process, and the peak
    resident memory of the detection net alone in each mode."""
    import subprocess
    import sys
    import time

    from refundlens.config import Settings
    from refundlens.detectors import reference
    from refundlens.detectors.provenance import visible
    from refundlens.pipeline import analyze
    from refundlens.threads import one_thread_per_process

    from .run_service import ROOT, _photo

    one_thread_per_process()
    settings = Settings(ocr_enabled=True)
    listing = (ROOT / "src" / "refundlens" / "samples" / "listing.jpg").read_bytes()
    refs = [media_from_bytes(listing, "listing.jpg", settings)]
    for ref in refs:
        reference.prepare_reference(ref)
    data = _photo(7, "honest")

    def best(arena: bool) -> float:
        visible._ENGINE_PARAMS["EngineConfig.onnxruntime.enable_cpu_mem_arena"] = arena
        visible._engine.cache_clear()
        analyze([media_from_bytes(data, "c.jpg", settings)], refs, settings=settings)
        times = []
        for _ in range(3):
            claim = media_from_bytes(data, "c.jpg", settings)
            start = time.process_time()
            analyze([claim], refs, settings=settings)
            times.append(time.process_time() - start)
        return min(times)

    seconds: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for arena in (False, True):
            seconds[arena].append(best(arena))
    peak = {}
    for arena in (False, True):
        # A fresh process each, so that one mode's peak does not hide the other's.
        code = (
            "import resource, numpy as np; "
            "from refundlens.detectors.provenance import visible as v; "
            f"v._ENGINE_PARAMS['EngineConfig.onnxruntime.enable_cpu_mem_arena'] = {arena}; "
            "e = v._engine(); "
            "[e(np.full((s, 736, 3), 128, np.uint8)) for s in (544, 736, 512, 544)]; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        peak[arena] = int(out.stdout.split()[-1]) / 1024
    off, on = min(seconds[False]), min(seconds[True])
    return [
        "| OCR nets' memory arena | whole honest claim, s of one core (best of 3, each round) "
        "| best | peak resident MB, OCR alone |",
        "|---|---|---|---|",
        *(
            f"| {'on' if arena else 'off (rapidocr default)'} | "
            + ", ".join(f"{t:.3f}" for t in seconds[arena])
            + f" | {min(seconds[arena]):.3f} | {peak[arena]:.0f} |"
            for arena in (False, True)
        ),
        "",
        f"Ratio on / off: {on / off:.3f}.",
    ]


def main() -> None:
    import sys

    if sys.argv[1:2] == ["arena"]:
        print("\n".join(arena_study()), flush=True)
        return
    if sys.argv[1:2] == ["det-side"]:
        # python -m bench.visible_marks det-side [split] [plain,strokes ...]: rows to paste into
        # bench/results/visible_marks_passes.md (two processes can share the configurations)
        split = sys.argv[2] if len(sys.argv) > 2 else "dev"
        chosen = (
            tuple((int(a), int(b)) for a, b in (arg.split(",") for arg in sys.argv[3:]))
            or DET_SIDES
        )
        print("\n".join(det_side_study(split, sides=chosen)), flush=True)
        return
    text = "\n".join(passes_study()) + "\n"
    (Path(__file__).resolve().parent / "results" / "visible_marks_passes.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
