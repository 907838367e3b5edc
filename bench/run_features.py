"""Reference features kept on disk: the cost of computing them against reading them back.

Run: ``python -m bench.run_features`` (part of ``make bench``). Writes bench/results/features.md.

Ten grocery-store photos (../shared/data/grocery-store-packages, MIT) resized to 1152x864 and
saved as JPEG 92 stand in for 1 MP listing photos. Each is prepared three ways on one core, side
by side in one run: features computed (RootSIFT plain and mirrored, object mask), read back from
``reference_feature_dir``, and its JPEG decoded with Pillow, the yardstick.
"""

from __future__ import annotations

import glob
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from refundlens.config import Settings
from refundlens.detectors import reference
from refundlens.media import media_from_bytes
from refundlens.store.features import feature_files
from refundlens.threads import one_thread_per_process

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "grocery-store-packages"


def _one_megapixel(path: str) -> bytes:
    image = Image.open(path).convert("RGB").resize((1152, 864), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92)
    return out.getvalue()


def main() -> None:
    one_thread_per_process()
    files = sorted(glob.glob(str(DATA / "**" / "*.jpg"), recursive=True))[100:110]
    if not files:
        print(f"no photos under {DATA}: skipped")
        return
    jpegs = [_one_megapixel(f) for f in files]
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(reference_feature_dir=folder)
        refs = [media_from_bytes(j, f"r{i}.jpg", settings) for i, j in enumerate(jpegs)]
        # SIFT's first call allocates; not timed.
        reference.prepare_reference(refs[0])
        files = feature_files(folder)
        computed, read, decoded = [], [], []
        for media, jpeg in zip(refs, jpegs, strict=True):
            reference.clear_caches()
            t0 = time.perf_counter()
            reference.prepare_reference(media, files)
            computed.append(time.perf_counter() - t0)
            reference.clear_caches()
            t0 = time.perf_counter()
            reference.prepare_reference(media, files)
            read.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            Image.open(io.BytesIO(jpeg)).load()
            decoded.append(time.perf_counter() - t0)
        size = statistics.mean(os.path.getsize(p) for p in Path(folder).rglob("*.npz"))
    c, r, d = (statistics.median(v) for v in (computed, read, decoded))
    lines = [
        "# Reference features: computed or read back",
        "",
        f"{len(refs)} photos of grocery-store-packages resized to 1152x864 (1 MP), JPEG 92; one core "
        f"of {os.cpu_count()} ({platform.machine()}); medians.",
        "",
        "| step | ms | / JPEG decode |",
        "|---|---|---|",
        f"| decode the JPEG (Pillow) | {d * 1000:.1f} | 1.0 |",
        f"| compute features (RootSIFT, its mirror by permutation, object mask) | {c * 1000:.1f} | {c / d:.1f} |",
        f"| read them back from `reference_feature_dir` | {r * 1000:.1f} | {r / d:.1f} |",
        "",
        f"One file per reference: {size / 1024:.0f} KiB (float32 descriptors, kept exact so a "
        "verdict does not depend on where the features came from).",
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "features.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
