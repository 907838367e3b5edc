"""Reuse index benchmark: query latency, recall under real edits, memory per million hashes.

Run: ``python -m bench.run_reuse`` (part of ``make bench``). Writes bench/results/reuse.md.

Stored hashes are random 256-bit codes (PDQ codes of unrelated photos are close to independent
bits); the queries are stored codes with bits flipped as many times as real edits flip them. That
count is measured first on real photos of ../shared/data (crop 5%, resize to 50%, JPEG 50, and
the three combined), and the flips are drawn from it, so recall is measured at the distances real
re-uploads produce, on one core. 10M needs about 6 GB of memory and two minutes to build; set
REFUNDLENS_BENCH_REUSE_SIZES=1000000 to skip it.
"""

from __future__ import annotations

import io
import os
import platform
import resource
import time
from pathlib import Path

import faiss
import numpy as np
from PIL import Image

from refundlens.media import media_from_bytes
from refundlens.media.fingerprint import hamming
from refundlens.reuse.index import HashIndex

from .cases import DATA

RESULTS = Path(__file__).resolve().parent / "results"
SIZES = [
    int(s) for s in os.environ.get("REFUNDLENS_BENCH_REUSE_SIZES", "1000000,10000000").split(",")
]
QUERIES = 2000


def _edits(path: Path) -> dict[str, int]:
    image = Image.open(path).convert("RGB")
    if max(image.size) > 1600:
        image.thumbnail((1600, 1600))

    def jpeg(im: Image.Image, q: int) -> bytes:
        out = io.BytesIO()
        im.save(out, "JPEG", quality=q)
        return out.getvalue()

    base = media_from_bytes(jpeg(image, 92), "a.jpg")
    w, h = image.size
    variants = {
        "crop 5%": image.crop((w // 40, h // 40, w - w // 40, h - h // 40)),
        "resize 50%": image.resize((w // 2, h // 2)),
        "jpeg 50": image,
        "all three": image.crop((w // 40, h // 40, w - w // 40, h - h // 40)).resize(
            (w // 2, h // 2)
        ),
    }
    out = {}
    for name, im in variants.items():
        m = media_from_bytes(jpeg(im, 50 if name in ("jpeg 50", "all three") else 90), "b.jpg")
        out[name] = min(hamming(base.pdq, x) for x in m.pdq_dihedral)
    return out


def _distance_model() -> tuple[dict[str, list[int]], list[int]]:
    photos = (
        sorted((DATA / "superglue-assets").rglob("*.jpg"))[:30]
        + sorted((DATA / "exif-samples" / "jpg").glob("*.jpg"))[:20]
    )
    per_edit: dict[str, list[int]] = {}
    for path in photos:
        try:
            for name, d in _edits(path).items():
                per_edit.setdefault(name, []).append(d)
        except Exception:
            continue
    return per_edit, [d for ds in per_edit.values() for d in ds]


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    faiss.omp_set_num_threads(1)
    per_edit, distances = _distance_model()
    rng = np.random.default_rng(0)
    lines = [
        "# Reuse index benchmark",
        "",
        f"One core ({platform.machine()}, {os.cpu_count()} cores on the machine). FAISS {faiss.__version__} "
        "IndexBinaryMultiHash, 11 tables of 23 bits, 2 flips probed: exact within 31 bits.",
        "",
        "## PDQ distance of real re-uploads (photos of ../shared/data)",
        "",
        "| edit | photos | median bits | 90th percentile | share within 31 |",
        "|---|---|---|---|---|",
    ]
    for name, ds in per_edit.items():
        arr = np.array(ds)
        lines.append(
            f"| {name} | {len(arr)} | {np.median(arr):.0f} | {np.percentile(arr, 90):.0f} | {100 * (arr <= 31).mean():.0f}% |"
        )
    lines += [
        "",
        "Edits beyond 31 bits (heavy crops) are what the centre-crop hashes and the local-feature fallback of "
        "`detectors/reuse` are for; the index itself is measured on the flips real edits produce.",
        "",
        "## Query latency and recall",
        "",
        "| stored hashes | build s | memory MB per million | p50 ms | p99 ms | recall of edited copies within 31 bits | recall of all edited copies |",
        "|---|---|---|---|---|---|---|",
    ]
    draw = np.array(distances)
    per_million = 0.0
    for size in SIZES:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stored = rng.integers(0, 256, (size, 32), dtype=np.uint8)
        start = time.perf_counter()
        index = HashIndex(shards=1)
        index.add(np.arange(size).tolist(), stored)
        build = time.perf_counter() - start
        memory = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        picks = rng.integers(0, size, QUERIES)
        flips = rng.choice(draw, QUERIES)
        latencies, hit_within, n_within, hit_all = [], 0, 0, 0
        for pick, k in zip(picks, flips, strict=True):
            bits = np.unpackbits(stored[pick])
            bits[rng.choice(256, int(k), replace=False)] ^= 1
            query = np.packbits(bits).tobytes()
            t = time.perf_counter()
            found = {i for i, _ in index.search(query, 31)}
            latencies.append(time.perf_counter() - t)
            hit = int(pick) in found
            hit_all += hit
            if k <= 31:
                n_within += 1
                hit_within += hit
        lat = np.array(latencies) * 1000
        per_million = memory / (size / 1e6)
        lines.append(
            f"| {size:,} | {build:.0f} | {memory / (size / 1e6):.0f} | {np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} | "
            f"{100 * hit_within / max(n_within, 1):.2f}% | {100 * hit_all / QUERIES:.1f}% |"
        )
        del index, stored
    lines += [
        "",
        "Targets (issue 8): p99 <= 5 ms and recall >= 99% at distance 31 for 10M hashes on one core.",
        "",
        "## Plan for 1B hashes",
        "",
        f"- Memory: {per_million:.0f} MB per million hashes as measured (codes, 11 hash tables, the id list), "
        f"so 1B hashes need about {per_million * 1000 / 1024:.0f} GB: shard across machines of 64 GB holding "
        f"{int(48 * 1024 / max(per_million, 1))}M hashes each (48 GB, with headroom), i.e. "
        f"{int(np.ceil(1000 / max(48 * 1024 / max(per_million, 1), 1)))} shards, each replicated for throughput.",
        "- Sharding: by the hash's first byte (any split works: multi-index hashing is exact per shard), "
        "each shard rebuilt from the store independently; a query fans out to every shard in parallel "
        "and the answers are merged, so latency is one shard's p99 plus the network round trip (about 1 ms "
        "in one data centre), and throughput grows with replicas of each shard.",
        "- Per-shard latency grows with its size mainly through bucket occupancy (size / 2^23 per table): "
        "50M hashes put about 6 codes per bucket, so 277 x 11 probes verify about 18,000 codes, a few ms on one core "
        "(the 10M row above is the measured point).",
        "- Writes: append to the owning shard's in-memory index and the store; a shard restarts by rebuilding "
        "from the store (minutes per 100M at the build rate above).",
        "",
    ]
    (RESULTS / "reuse.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
