"""Pack the generator-trace net's training data: real photos and real generator outputs.

Run where ../shared/data is (the folder beside the repository):

    python training/generator_traces/pack.py --out .gpu/gentrace

It writes ``index.json`` (every file: source path, role, split, repository) and the files
themselves, small enough to travel to a training machine (about 50 MB). ``data_list.json`` beside
this script is the committed copy of the index, the documented data list.

What goes in, and why each split is what it is:

* **real** photos, the negatives and the sources of the regenerated twins that ``train.py``
  makes: the Grocery Store Dataset (MIT; 813 shop photos, 348 px, unused by the benchmarks),
  scikit-image's sample photos, and the 23 dev-split camera JPEGs of exif-samples that the
  painted-patch net already trains on (``forensics/models/residual_net.json``), as one
  768 px crop of the product's working copy each. The forensics benchmark picks thresholds on the
  other dev photos, and no test-split photo is used.
* **generated**: the example outputs of ``ai-generated-repos`` (generated, edited and inpainted
  pictures) and the real inputs of its edit pairs (negatives), split **by source repository**
  (``REPO_SPLIT``): train, dev (thresholds, early model choice) and test (the benchmark only).
  ``stablediffusion-samples`` (Stability-AI/stablediffusion) is test: the benchmark has reported on
  it since before this net. Metadata goes: only decoded pixels are stored.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
WORK_SIDE = 1536  # refundlens Settings.pixels_side: the product analyses at most this
GEN_CROP = 256
CAMERA_CROP = 768
SEED = 20261204

sys.path.insert(0, str(ROOT))
# Split by source repository, never by file (the generator's decoder is what the net must not
# learn by heart); the benchmark keeps the one table. Test repositories are the benchmark's alone.
from bench.forensics_cases import REPO_SPLIT  # noqa: E402

# The camera JPEGs (dev split of the forensics benchmark) that the painted-patch net saw too.
CAMERA = json.loads((ROOT / "src/refundlens/forensics/models/residual_net.json").read_text())[
    "camera_photos"
]


def rgb(path: Path) -> np.ndarray:
    image = Image.open(path)
    image = ImageOps.exif_transpose(image) or image
    return np.array(image.convert("RGB"))


def working_copy(image: np.ndarray) -> np.ndarray:
    """As the product sees it: longest side at most WORK_SIDE (INTER_AREA)."""
    side = max(image.shape[:2])
    if side <= WORK_SIDE:
        return image
    f = WORK_SIDE / side
    size = (round(image.shape[1] * f), round(image.shape[0] * f))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def crops(image: np.ndarray, side: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to ``count`` crops of ``side`` px at offsets that are multiples of 8 (the JPEG grid
    and a generator's upsampling grid stay where the file put them)."""
    rows, cols = image.shape[:2]
    if min(rows, cols) < side:
        return [image[: rows // 8 * 8, : cols // 8 * 8]] if min(rows, cols) >= 64 else []
    out = []
    for _ in range(count):
        top = int(rng.integers(0, (rows - side) // 8 + 1)) * 8
        left = int(rng.integers(0, (cols - side) // 8 + 1)) * 8
        out.append(image[top : top + side, left : left + side])
    return out


def png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]
    )
    assert ok
    return buf.tobytes()


def jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return buf.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-image", type=int, default=2, help="crops per generator file")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    out: Path = args.out
    (out / "files").mkdir(parents=True, exist_ok=True)
    index: list[dict[str, str]] = []

    def put(name: str, data: bytes, **row: str) -> None:
        (out / "files" / name).write_bytes(data)
        index.append({"file": name, **row})

    grocery = sorted((DATA / "grocery-store-packages").rglob("*.jpg"))
    for path in grocery:
        rel = str(path.relative_to(DATA))
        split = "dev" if hashlib.sha256(rel.encode()).digest()[0] < 26 else "train"
        # The file's own bytes: its camera JPEG is what a real photo looks like.
        put(
            f"g{len(index):05d}.jpg",
            path.read_bytes(),
            source=rel,
            role="real",
            split=split,
            repo="grocery",
        )
    for path in sorted((DATA / "skimage-data").iterdir()):
        if path.suffix.lower() in (".png", ".jpg"):
            put(
                f"s{len(index):05d}.png",
                png(rgb(path)),
                source=str(path.relative_to(DATA)),
                role="real",
                split="train",
                repo="skimage",
            )
    for rel in CAMERA:
        for i, crop in enumerate(crops(working_copy(rgb(DATA / rel)), CAMERA_CROP, 1, rng)):
            put(
                f"c{len(index):05d}_{i}.jpg",
                jpeg(crop, 96),
                source=rel,
                role="real",
                split="train",
                repo="camera",
            )

    # The other dev-split camera photos of the forensics benchmark: watched during training
    # (model choice), never trained on; the benchmark sets the thresholds on them too.
    from bench.cases import split_of
    from bench.forensics_cases import camera_sources

    for rel in camera_sources():
        if split_of(rel) == "dev" and rel not in CAMERA:
            for i, crop in enumerate(crops(working_copy(rgb(DATA / rel)), 512, 1, rng)):
                put(
                    f"w{len(index):05d}_{i}.jpg",
                    jpeg(crop, 96),
                    source=rel,
                    role="watch",
                    split="dev",
                    repo="camera",
                )

    with (DATA / "ai-generated-repos/manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        split = REPO_SPLIT[r["source_repo"]]
        if split == "test":
            continue
        role = "real" if r["label"] == "authentic_input" else "generated"
        image = working_copy(rgb(DATA / "ai-generated-repos" / r["path"]))
        for i, crop in enumerate(crops(image, GEN_CROP, args.per_image, rng)):
            put(
                f"a{len(index):05d}_{i}.png",
                png(crop),
                source="ai-generated-repos/" + r["path"],
                role=role,
                split=split,
                repo=r["source_repo"],
                label=r["label"],
                generator=r["generator"],
            )
    (out / "index.json").write_text(
        json.dumps({"seed": SEED, "repo_split": REPO_SPLIT, "files": index}, indent=0)
    )
    size = sum(p.stat().st_size for p in (out / "files").iterdir())
    print(f"{len(index)} files, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
