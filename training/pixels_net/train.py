"""Train the pixel detector's small residual net and export it to ONNX.

The net maps an RGB photo to one logit per 8x8 cell: "this cell was pasted, painted or inpainted".
It learns from forgeries made on the fly (bench/forgeries.py: splice, copy-move, OpenCV inpainting,
smoothed patch with fresh grain, diffusion-like decode) from three sets of photos:

* the 781 smartphone shop photos and 31 web product photos of the Grocery Store Dataset (MIT;
  ../shared/data/grocery-store-packages), which the forensics benchmark does not use;
* the camera JPEGs of exif-samples (CC BY-SA 4.0) that fall in the benchmark's *dev* split
  (23 photos), so that the net sees camera photos at the size the product analyses them. The
  benchmark therefore chooses the net's threshold on dev photos the net never saw, and every
  test-split photo stays unseen.

Each photo goes the way the benchmark's cases go: at most 2048 px before an edit, saved as an
editor or a chat app saves it, then reduced to the product's working copy (``pixels_side``, 1536).

Run (needs PyTorch and onnx; a GPU makes it minutes), after copying the photos listed above into
one folder per set (bench/forensics_cases.py ``camera_sources`` and ``split_of`` name them):

    python training/pixels_net/train.py --photos GROCERY_TEST --photos GROCERY_ICONIC \
        --camera CAMERA_DEV --out src/refundlens/forensics/models --minutes 8

The defaults reproduce the shipped net's recipe (one crop per forged photo, every recipe, no
global filters). ``--crops``, ``--filters``, ``--kinds`` and ``--resume`` are the experiments of
docs/detectors/pixels.md ("Retraining experiments"), which did not beat it on the dev split.

It writes ``residual_net.onnx`` (the convolutional body), ``residual_net_head.npz`` (the head that
weighs each cell against the whole image) and ``residual_net.json`` (architecture, data, seed,
held-out figures). The product runs the body with OpenCV's dnn module and the head in NumPy: no
PyTorch at run time. ``residual_net.pt`` keeps the weights for further training (``--resume``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.forgeries import KINDS, forge

CELL = 8
CROP = 320
EDIT_SIDE = 2048  # bench/forensics_cases.py generated_cases
WORK_SIDE = 1536  # refundlens Settings.pixels_side
# Input scaling, repeated in refundlens.forensics.learned: (x - MEAN) / SCALE.
MEAN, SCALE = 127.5, 64.0


class ResidualNet(nn.Module):
    """About 110k weights, 1/8-resolution output; about 2.8 GMAC per megapixel.

    The local branch says what each cell looks like; the image's mean feature (global average
    pooling) is added to the head so that a cell is judged against the photo it sits in: a smooth
    wall in a smooth photo is not a painted patch in a grainy one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 2, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=2, dilation=2),
            nn.ReLU(),
        )
        self.local = nn.Conv2d(64, 32, 1)
        self.context = nn.Conv2d(64, 32, 1, bias=False)
        self.out = nn.Conv2d(32, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.body(x)
        image = nn.functional.adaptive_avg_pool2d(features, 1)
        return self.out(torch.relu(self.local(features) + self.context(image)))


def _held_out(path: Path) -> bool:
    return hashlib.sha256(path.name.encode()).digest()[0] < 26  # about 10 %


def _decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    image = ImageOps.exif_transpose(image) or image
    return np.array(image.convert("RGB"))


def _fit(image: np.ndarray, side: int) -> np.ndarray:
    if max(image.shape[:2]) <= side:
        return image
    f = side / max(image.shape[:2])
    size = (round(image.shape[1] * f), round(image.shape[0] * f))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


_CACHE: dict[Path, np.ndarray] = {}


def _source(path: Path) -> np.ndarray:
    """The photo, EXIF-oriented, at most EDIT_SIDE: decoded once per worker."""
    if path not in _CACHE:
        _CACHE[path] = _fit(_decode(path.read_bytes()), EDIT_SIDE)
    return _CACHE[path]


def _save(image: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def honest_filter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A phone's or an app's global adjustment: sharpening, gamma, contrast or saturation.

    Applied to the whole photo, so it is no local edit: authentic photos that went through one
    must stay authentic to the net, and a forgery that went through one after the edit stays
    forged."""
    out = image.astype(np.float32)
    step = int(rng.integers(4))
    if step == 0:
        blur = cv2.GaussianBlur(out, (0, 0), float(rng.uniform(0.8, 2.0)))
        out = out + float(rng.uniform(0.3, 1.0)) * (out - blur)
    elif step == 1:
        out = 255.0 * (out / 255.0) ** float(rng.uniform(0.7, 1.4))
    elif step == 2:
        out = (out - 127.5) * float(rng.uniform(0.8, 1.3)) + 127.5
    else:
        grey = out.mean(axis=2, keepdims=True)
        out = grey + (out - grey) * float(rng.uniform(0.6, 1.4))
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def make_samples(
    photos: list[Path],
    index: int,
    rng: np.random.Generator,
    crop: int = CROP,
    crops: int = 1,
    filters: bool = False,
    kinds: tuple[str, ...] = KINDS,
) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """``crops`` (RGB crop, cell targets in [0, 1], kind) from one photo, forged or not, saved as
    people do. Several crops share one forgery: forging and re-saving a 2048 px photo costs far
    more than cutting it, and it bounded the first training run. ``filters`` adds the global
    adjustments of :func:`honest_filter` (training only: held-out figures stay comparable)."""
    image = _source(photos[index])
    kind = "authentic"
    mask = np.zeros(image.shape[:2], bool)
    if rng.random() < 0.5:
        kind = str(rng.choice(kinds))
        donor = _source(photos[int(rng.integers(len(photos)))])
        image, mask = forge(kind, image, donor, rng)
        if filters and rng.random() < 0.2:
            image = honest_filter(image, rng)
        image = (
            _decode(_save(image, "PNG"))
            if rng.random() < 0.2
            else _decode(_save(image, "JPEG", int(rng.integers(85, 96))))
        )
    else:
        filtered = filters and rng.random() < 0.3
        if filtered:
            image = honest_filter(image, rng)
        if rng.random() < 0.5:
            # As a chat app re-sends it: recompressed, sometimes smaller.
            if rng.random() < 0.5:
                f = rng.uniform(0.6, 0.95)
                size = (round(image.shape[1] * f), round(image.shape[0] * f))
                image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                mask = np.zeros(image.shape[:2], bool)
            image = _decode(_save(image, "JPEG", int(rng.integers(70, 90))))
        elif filtered:  # the phone saves what its filter made
            image = _decode(_save(image, "JPEG", int(rng.integers(85, 96))))
    if kind != "authentic" and rng.random() < 0.3:
        image = _decode(_save(image, "JPEG", int(rng.integers(70, 90))))
    if image.shape[:2] != mask.shape:
        raise AssertionError("mask and image disagree")
    work = _fit(image, WORK_SIDE)
    if work.shape[:2] != image.shape[:2]:
        mask = cv2.resize(
            mask.astype(np.uint8), (work.shape[1], work.shape[0]), interpolation=cv2.INTER_NEAREST
        ).astype(bool)
        image = work
    rows, cols = image.shape[:2]
    if rows < crop or cols < crop:
        pad = ((0, max(0, crop - rows)), (0, max(0, crop - cols)))
        image = np.pad(image, (*pad, (0, 0)), mode="reflect")
        mask = np.pad(mask, pad)
        rows, cols = image.shape[:2]
    out = []
    for _ in range(crops):
        # Offsets on the 8-pixel grid keep the JPEG block phase the product sees on a whole photo.
        if mask.any() and rng.random() < 0.8:
            ys, xs = np.nonzero(mask)
            cy, cx = int(ys.mean()), int(xs.mean())
            top = int(np.clip(cy - rng.integers(crop // 4, 3 * crop // 4), 0, rows - crop))
            left = int(np.clip(cx - rng.integers(crop // 4, 3 * crop // 4), 0, cols - crop))
        else:
            top = int(rng.integers(0, rows - crop + 1))
            left = int(rng.integers(0, cols - crop + 1))
        top, left = top // CELL * CELL, left // CELL * CELL
        piece = image[top : top + crop, left : left + crop]
        truth = mask[top : top + crop, left : left + crop].astype(np.float32)
        cells = truth.reshape(crop // CELL, CELL, crop // CELL, CELL).mean(axis=(1, 3))
        out.append((np.ascontiguousarray(piece), cells, kind))
    return out


def make_sample(
    photos: list[Path], index: int, rng: np.random.Generator, crop: int = CROP
) -> tuple[np.ndarray, np.ndarray, str]:
    """(RGB crop, cell targets in [0, 1], kind) for one photo, forged or not, saved as people do."""
    return make_samples(photos, index, rng, crop)[0]


class Forgeries(torch.utils.data.IterableDataset):
    """Endless samples; a camera photo is drawn ``camera_share`` of the time."""

    def __init__(
        self,
        photos: list[Path],
        camera: list[Path],
        seed: int,
        camera_share: float = 0.4,
        crops: int = 1,
        filters: bool = False,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.photos, self.camera, self.seed, self.share = photos, camera, seed, camera_share
        self.crops, self.filters, self.kinds = crops, filters, kinds

    def __iter__(self):  # type: ignore[no-untyped-def]
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        everything = self.photos + self.camera
        while True:
            if self.camera and rng.random() < self.share:
                index = len(self.photos) + int(rng.integers(len(self.camera)))
            else:
                index = int(rng.integers(len(self.photos)))
            for image, cells, _ in make_samples(
                everything, index, rng, crops=self.crops, filters=self.filters, kinds=self.kinds
            ):
                x = (torch.from_numpy(image).permute(2, 0, 1).float() - MEAN) / SCALE
                yield x, torch.from_numpy(cells)[None]


def _auc(pos: list[float], neg: list[float]) -> float:
    p, n = np.asarray(pos), np.asarray(neg)
    greater = (p[:, None] > n[None, :]).mean()
    ties = (p[:, None] == n[None, :]).mean()
    return float(greater + 0.5 * ties)


def evaluate(model: ResidualNet, photos: list[Path], device: str, seed: int = 1) -> dict:
    """Held-out photos, each once authentic and once forged: image AUC and cell F1 at 0.5."""
    rng = np.random.default_rng(seed)
    scores: dict[str, list[float]] = {}
    f1s: dict[str, list[float]] = {}
    model.eval()
    with torch.no_grad():
        for i in range(len(photos)):
            for _ in range(2):
                image, cells, kind = make_sample(photos, i, rng)
                x = (torch.from_numpy(image).permute(2, 0, 1).float()[None] - MEAN) / SCALE
                prob = torch.sigmoid(model(x.to(device)))[0, 0].cpu().numpy()
                scores.setdefault(kind, []).append(float(np.percentile(prob, 99)))
                if kind != "authentic":
                    truth, found = cells >= 0.5, prob >= 0.5
                    tp = float((truth & found).sum())
                    f1s.setdefault(kind, []).append(
                        2 * tp / max(1.0, float(truth.sum() + found.sum()))
                    )
    model.train()
    neg = scores.get("authentic", [])
    out = {"authentic": len(neg)}
    for kind in KINDS:
        if scores.get(kind):
            out[kind] = {
                "n": len(scores[kind]),
                "auc": round(_auc(scores[kind], neg), 3),
                "cell_f1_at_0.5": round(float(np.mean(f1s[kind])), 3),
            }
    allpos = [s for k in KINDS for s in scores.get(k, [])]
    out["all"] = {"n": len(allpos), "auc": round(_auc(allpos, neg), 3)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=Path, action="append", required=True)
    parser.add_argument("--camera", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--crops", type=int, default=4, help="crops cut from each forged or authentic photo"
    )
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=KINDS,
        default=list(KINDS),
        help="forgery recipes to learn (held-out figures cover all of them)",
    )
    parser.add_argument("--resume", type=Path, help="residual_net.pt to go on training from")
    parser.add_argument(
        "--no-filters", action="store_true", help="leave out honest_filter's global adjustments"
    )
    args = parser.parse_args()

    photos = sorted(p for folder in args.photos for p in folder.rglob("*.jpg"))
    camera_named = sorted(
        (p, str(p.relative_to(folder))) for folder in args.camera for p in folder.rglob("*.jpg")
    )
    camera = [p for p, _ in camera_named]
    train = [p for p in photos if not _held_out(p)]
    held = [p for p in photos if _held_out(p)]
    print(f"{len(train)} + {len(camera)} training photos, {len(held)} held out", flush=True)
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = ResidualNet()
    if args.resume:
        model.load_state_dict(torch.load(args.resume, map_location="cpu"))
    model = model.to(device)
    loader = torch.utils.data.DataLoader(
        Forgeries(
            train,
            camera,
            args.seed,
            crops=args.crops,
            filters=args.filters,
            kinds=tuple(args.kinds),
        ),
        batch_size=args.batch,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    started = time.time()
    deadline = started + 60 * args.minutes
    step, seen, smooth = 0, 0, None
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        # Cells with a sliver of the edit are weighted less than cells inside it.
        weight = torch.where((y > 0) & (y < 0.5), 0.3, 1.0)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y, weight=weight)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step, seen = step + 1, seen + len(x)
        value = float(loss.detach())
        smooth = value if smooth is None else 0.98 * smooth + 0.02 * value
        if step % 200 == 0:
            rate = seen / max(1e-9, time.time() - started)
            print(f"step {step} samples {seen} ({rate:.0f}/s) loss {smooth:.4f}", flush=True)
        left = deadline - time.time()
        if left < 0:
            break
        if left < 60 * args.minutes * 0.25:
            for group in optimiser.param_groups:
                group["lr"] = 2e-4
    model = model.cpu().eval()
    figures = evaluate(model, held, "cpu")
    print(json.dumps(figures, indent=1), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), args.out / "residual_net.pt")
    # OpenCV's dnn runs the convolutional body; the head (image context) runs in NumPy in
    # refundlens.forensics.learned, because OpenCV 5.0 refuses a broadcast add after a convolution.
    body = nn.Sequential(*model.body)
    torch.onnx.export(
        body,
        (torch.zeros(1, 3, 256, 256),),
        str(args.out / "residual_net.onnx"),
        input_names=["image"],
        output_names=["features"],
        dynamic_axes={
            "image": {2: "rows", 3: "cols"},
            "features": {2: "cell_rows", 3: "cell_cols"},
        },
        opset_version=13,
        dynamo=False,
    )
    # ONNX Runtime refuses a file whose IR version is newer than it reads (1.31 reads 13, 1.22
    # reads 10), and a recent onnx writes its newest: the body is Conv and Relu of opset 13,
    # which IR 8 describes, so the file says 8 (tests/test_forensics.py checks it).
    import onnx

    exported = onnx.load(str(args.out / "residual_net.onnx"))
    exported.ir_version = 8
    onnx.save(exported, str(args.out / "residual_net.onnx"))
    head = {
        "local_weight": model.local.weight,
        "local_bias": model.local.bias,
        "context_weight": model.context.weight,
        "out_weight": model.out.weight,
        "out_bias": model.out.bias,
    }
    np.savez(
        args.out / "residual_net_head.npz",
        **{k: v.detach().numpy().astype(np.float32) for k, v in head.items()},
    )
    check = torch.from_numpy(
        np.random.default_rng(0).uniform(-2, 2, (1, 3, 328, 416)).astype(np.float32)
    )
    net = cv2.dnn.readNetFromONNX(str(args.out / "residual_net.onnx"))
    net.setInput(check.numpy())
    features = net.forward()[0].reshape(64, -1)
    w = {
        k: v.detach().numpy()[..., 0, 0] if v.ndim == 4 else v.detach().numpy()
        for k, v in head.items()
    }
    hidden = w["local_weight"] @ features + w["local_bias"][:, None]
    hidden += (w["context_weight"] @ features.mean(1))[:, None]
    logits = w["out_weight"] @ np.maximum(hidden, 0) + w["out_bias"][:, None]
    with torch.no_grad():
        expected = model(check).numpy()[0, 0]
    difference = float(np.abs(logits.reshape(expected.shape) - expected).max())
    print(
        f"OpenCV {cv2.__version__} dnn + NumPy head against PyTorch: {difference:.2e}", flush=True
    )
    card = {
        "architecture": "training/pixels_net/train.py ResidualNet",
        "weights": sum(p.numel() for p in model.parameters()),
        "input": f"RGB, (x - {MEAN}) / {SCALE}, any size; output one logit per {CELL}x{CELL} cell",
        "data": "grocery-store-packages smartphone and iconic photos (MIT) and the dev-split "
        "camera JPEGs of exif-samples (CC BY-SA 4.0); forgeries from bench/forgeries.py",
        "training_photos": len(train),
        # Paths below the --camera folder, which mirrors ../shared/data: the benchmark leaves
        # these photos out when it chooses the net's threshold.
        "camera_photos": [name for _, name in camera_named],
        "minutes": args.minutes,
        "resumed_from": str(args.resume) if args.resume else None,
        "crops_per_photo": args.crops,
        "honest_filters": args.filters,
        "kinds": args.kinds,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "workers": args.workers,
        "held_out_photos": len(held),
        "seed": args.seed,
        "steps": step,
        "samples": seen,
        "batch": args.batch,
        "crop": CROP,
        "held_out_figures": figures,
        "torch": torch.__version__,
        "opencv_dnn_max_difference": difference,
    }
    (args.out / "residual_net.json").write_text(json.dumps(card, indent=1) + "\n")


if __name__ == "__main__":
    main()
