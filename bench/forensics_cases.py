"""Benchmark cases for detectors/pixels: real forgeries by other people, and forgeries we make.

Real (../shared/data, never edited): the Reddit Photoshop pairs of ManTraNet (masks from the
difference to the source where the sizes match), CASIA, NIST16 and Korus samples with masks,
PSCC-Net and TruFor samples (image labels only).
Authentic: camera originals (exif-samples camera JPEGs, HEIC phone photos, the TruFor pristine
photos, SuperGlue photos), and the same photos as a chat app re-sends them (longest side 1280,
JPEG 70-85, metadata stripped).
Generated from camera originals: splice (a patch of another photo), copy-move, OpenCV inpainting,
a smoothed patch with synthetic noise, and a diffusion-like blur-and-regrain patch, each saved the
way an editor saves (JPEG 85-95, one in five as PNG).

Generator outputs (../shared/data/ai-generated-repos): generated pictures, AI edits and
inpaintings beside the real photos they started from, metadata stripped (pixels saved as PNG, and
once more as a chat app re-sends them: JPEG 85). They split by source repository
(``REPO_SPLIT``): the generator-trace net trained on the "train" repositories, which the benchmark
leaves out; "dev" sets thresholds, "test" is reported.

Every other source falls in "dev" or "test" by the hash of its path (bench.cases.split_of).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from .cases import DATA, split_of
from .forgeries import KINDS, forge

__all__ = [
    "REPO_SPLIT",
    "ForensicsCase",
    "ai_repo_cases",
    "authentic_cases",
    "generated_cases",
    "real_cases",
]

MAX_SIDE = 4096

# ai-generated-repos by source repository, never by file: the generator-trace net
# (training/generator_traces) learns from "train", the benchmark sets thresholds on "dev" and
# reports "test". Stability-AI/stablediffusion is ../shared/data/stablediffusion-samples.
REPO_SPLIT = {
    "geekyutao/Inpaint-Anything": "train",
    "Kwai-Kolors/Kolors": "train",
    "stepfun-ai/Step1X-Edit": "train",
    "lllyasviel/IC-Light": "train",
    "Tencent-Hunyuan/HunyuanDiT": "train",
    "CompVis/latent-diffusion": "train",
    "XLabs-AI/x-flux": "train",
    "QwenLM/Qwen-Image": "train",
    "tencent-ailab/IP-Adapter": "train",
    "VectorSpaceLab/OmniGen": "dev",
    "HighwayWu/InpaintingForensics": "dev",
    "PixArt-alpha/PixArt-alpha": "dev",
    "black-forest-labs/flux": "dev",
    "TencentARC/BrushNet": "test",
    "Sanster/IOPaint": "test",
    "jonasricker/aeroblade": "test",
    "CompVis/stable-diffusion": "test",
    "HiDream-ai/HiDream-I1": "test",
    "PixArt-alpha/PixArt-sigma": "test",
    "Stability-AI/generative-models": "test",
    "Stability-AI/stablediffusion": "test",
}


@dataclasses.dataclass(frozen=True)
class ForensicsCase:
    id: str
    dataset: str
    split: str
    positive: bool
    data: bytes
    mask: np.ndarray | None = None  # truth at the decoded (EXIF-oriented) size
    kind: str = ""
    source: str = ""


def _rows() -> list[dict[str, str]]:
    with (DATA / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _rgb(path: Path) -> np.ndarray:
    image = Image.open(path)
    image = ImageOps.exif_transpose(image) or image
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return np.array(image)


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def _jpeg(image: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _file_bytes(path: Path) -> bytes:
    """The file as it is, or as PNG where refundlens does not read the format (TIFF)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        return _png(_rgb(path))
    return path.read_bytes()


def _mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(Image.open(path).convert("L")) >= 128
    if m.shape != shape:
        m = (
            cv2.resize(m.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
            > 0
        )
    return m


def _diff_mask(forged: np.ndarray, original: np.ndarray) -> np.ndarray | None:
    """Where a Reddit edit changed its source: |difference| > 24 grey levels, cleaned."""
    if forged.shape != original.shape:
        return None
    diff = (
        np.abs(forged.astype(np.int16) - original.astype(np.int16)).max(axis=2).astype(np.float32)
    )
    diff = cv2.GaussianBlur(diff, (0, 0), 2.0)
    mask = (diff > 24).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((5, 5), np.uint8))
    share = mask.mean()
    if share < 0.002 or share > 0.6:
        return None
    return mask.astype(bool)


def real_cases() -> Iterator[ForensicsCase]:
    rows = _rows()
    originals = {
        Path(r["path"]).name.split("_")[0]: r["path"]
        for r in rows
        if "mantranet-reddit-pairs/original/" in r["path"]
    }
    for r in rows:
        path = r["path"]
        label = r["label"]
        if path.startswith("mantranet-reddit-pairs/"):
            positive = label.startswith("tampered")
            mask = None
            if positive:
                key = Path(path).name.split("_")[0]
                if key in originals:
                    mask = _diff_mask(_rgb(DATA / path), _rgb(DATA / originals[key]))
            yield ForensicsCase(
                path,
                "reddit",
                split_of(path),
                positive,
                _file_bytes(DATA / path),
                mask,
                label,
                path,
            )
        elif label.startswith("tampered") and r["mask_path"]:
            dataset = {"iml-vit-sample": "casia", "korus-multiscale-prnu-sample": "korus"}.get(
                path.split("/")[0], "nist16"
            )
            image = _rgb(DATA / path)
            yield ForensicsCase(
                path,
                dataset,
                "test",
                True,
                _file_bytes(DATA / path),
                _mask(DATA / r["mask_path"], image.shape[:2]),
                label,
                path,
            )
        elif path.startswith("noiseprint-demo/") and label.startswith("tampered"):
            # Only NC2016_2564 has a mask; the other demo images count at image level (test split).
            if path.endswith("NC2016_2564.jpg"):
                image = _rgb(DATA / path)
                mask = _mask(DATA / "noiseprint-demo/refs/NC2016_2564_gt.png", image.shape[:2])
                yield ForensicsCase(
                    path, "nist16", "test", True, _file_bytes(DATA / path), mask, label, path
                )
            else:
                yield ForensicsCase(
                    path, "grip_demo", "test", True, _file_bytes(DATA / path), None, label, path
                )
        elif label == "ai_generated" and not path.startswith("ai-generated-repos/"):
            # Stable Diffusion outputs without metadata: positives for the generative cues.
            yield ForensicsCase(
                path,
                "sd_generated",
                split_of(path),
                True,
                _file_bytes(DATA / path),
                None,
                "Stable Diffusion 2 (Stability-AI/stablediffusion)",
                path,
            )
        elif path.startswith(("pscc-net-samples/", "trufor-test-images/")):
            dataset = "pscc" if path.startswith("pscc") else "trufor"
            yield ForensicsCase(
                path,
                dataset,
                "test",
                label.startswith("tampered"),
                _file_bytes(DATA / path),
                None,
                label,
                path,
            )


def camera_sources() -> list[str]:
    """Camera originals: files as a phone or camera wrote them (no editor in between)."""
    out = []
    for r in _rows():
        path, label = r["path"], r["label"]
        if (
            label in ("camera_exif", "camera_heic")
            and not path.startswith(("exif-samples/jpg/tests", "exif-samples/jpg/invalid"))
        ) or (path.startswith("superglue-assets/") and path.lower().endswith(".jpg")):
            out.append(path)
    keep = []
    for path in sorted(out):
        try:
            with Image.open(DATA / path) as im:
                if min(im.size) >= 256 and "GIMP" not in str(im.getexif().get(0x0131, "")):
                    keep.append(path)
        except OSError:
            continue
    return keep


def authentic_cases() -> Iterator[ForensicsCase]:
    """Camera originals as they are, and as a chat app re-sends them."""
    for path in camera_sources():
        split = split_of(path)
        data = (DATA / path).read_bytes()
        yield ForensicsCase(path, "camera", split, False, data, None, "camera_original", path)
        image = _rgb(DATA / path)
        if max(image.shape[:2]) > 1280:
            f = 1280 / max(image.shape[:2])
            image = cv2.resize(
                image,
                (round(image.shape[1] * f), round(image.shape[0] * f)),
                interpolation=cv2.INTER_AREA,
            )
        quality = 70 + 5 * (hashlib.sha256(path.encode()).digest()[1] % 4)
        yield ForensicsCase(
            path + "#chat",
            "chat_resaved",
            split,
            False,
            _jpeg(image, quality),
            None,
            f"chat_q{quality}",
            path,
        )


def generated_cases(seed: int = 7) -> Iterator[ForensicsCase]:
    sources = camera_sources()
    rng = np.random.default_rng(seed)
    for index, path in enumerate(sources):
        image = _rgb(DATA / path)
        if max(image.shape[:2]) > 2048:
            f = 2048 / max(image.shape[:2])
            image = cv2.resize(
                image,
                (round(image.shape[1] * f), round(image.shape[0] * f)),
                interpolation=cv2.INTER_AREA,
            )
        donor = _rgb(DATA / sources[(index * 7 + 3) % len(sources)])
        kind = KINDS[index % len(KINDS)]
        forged, mask = forge(kind, image, donor, rng)
        quality = int(rng.integers(85, 96))
        data = _png(forged) if rng.random() < 0.2 else _jpeg(forged, quality)
        yield ForensicsCase(
            f"{path}#{kind}", "generated", split_of(path), True, data, mask, kind, path
        )


def ai_repo_cases() -> Iterator[ForensicsCase]:
    """The dev and test repositories of ai-generated-repos, metadata stripped: each picture as
    PNG pixels and as a chat app re-sends it (longest side 1280, JPEG 85).

    ``ai_generated``: generated pictures (kind = the generator). ``ai_edits``: AI edits and
    inpaintings (positives, with a mask where the real input has the same size) beside their
    real inputs (negatives)."""
    root = DATA / "ai-generated-repos"
    with (root / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    inputs = {r["path"]: r for r in rows if r["label"] == "authentic_input"}
    for r in rows:
        split = REPO_SPLIT[r["source_repo"]]
        if split == "train":
            continue
        path = "ai-generated-repos/" + r["path"]
        image = _rgb(DATA / path)
        positive = r["label"] != "authentic_input"
        dataset = "ai_generated" if r["label"] == "ai_generated" else "ai_edits"
        mask = None
        if r["label"] in ("ai_edited", "ai_inpainted") and r["pair_of"]:
            source = inputs.get(r["pair_of"].removeprefix("ai-generated-repos/"))
            if source is not None:
                mask = _diff_mask(image, _rgb(root / source["path"]))
        kind = f"{r['generator']} ({r['source_repo']})" if positive else "real input"
        yield ForensicsCase(path, dataset, split, positive, _png(image), mask, kind, path)
        small = image
        if max(image.shape[:2]) > 1280:
            f = 1280 / max(image.shape[:2])
            size = (round(image.shape[1] * f), round(image.shape[0] * f))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        yield ForensicsCase(
            path + "#chat",
            dataset,
            split,
            positive,
            _jpeg(small, 85),
            None if mask is None else _resize_mask(mask, small.shape[:2]),
            kind,
            path,
        )


def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return (
        cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    )
