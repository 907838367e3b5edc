"""Train the generator-trace net (pixels decoded by a learned generator) and export it to ONNX.

The net maps an RGB image to one logit per 16x16 cell: "a learned decoder made these pixels".
Its first layer sees only neighbouring-pixel relationships (NPR, Tan et al. CVPR 2024 [1]_): its
4x4 kernels are constrained to sum to zero over every 2x2 block, which is a convolution of
``x - nearest_up(x[::2, ::2])``, the residual that upsampling layers leave their mark in; the
rest is a small fully convolutional net (about 0.42 M weights, 1/16 resolution).

It learns from aligned pairs (B-Free, Guillaro et al. CVPR 2025 [2]_): each real photo beside
its own regenerated twin, made by one of six small autoencoders this script first trains on the
real photos (downsampling 2, 4 or 8; transposed-convolution, pixel-shuffle, nearest or bilinear
upsampling), the twin whole or pasted back into a random blob (inpainting-style), and then the
same processing on both (nothing, a JPEG save at quality 65-98, or a chat app's resize and JPEG).
Real photos are also blurred or resampled now and then, as negatives: a classic filter is not a
generator. Beside the pairs it learns from real generator outputs (``pack.py``: the train
repositories of ai-generated-repos) against real photos, at image level.

Run, where pack.py's output is (a GPU makes it minutes; CPU works at a smaller scale):

    python training/generator_traces/pack.py --out .gpu/gentrace
    python training/generator_traces/train.py --data .gpu/gentrace --out OUT --minutes 5

It writes ``generator_traces.onnx`` (input: float32 RGB NCHW in 0-255, any size that is a
multiple of 16; output: logits, N x 1 x H/16 x W/16), ``generator_traces.json`` (architecture,
data, seed, dev figures) and ``generator_traces_reference.npz`` (an input and the torch model's
output on it, which the tests compare ONNX Runtime with).

References
----------
.. [1] C. Tan et al., "Rethinking the up-sampling operations in CNN-based generative network for
       generalizable deepfake detection", CVPR 2024.
.. [2] F. Guillaro et al., "A bias-free training paradigm for more general AI-generated image
       detection", CVPR 2025.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CELL = 16
SOURCE = 192  # side of the crop a pair is made from
SIDE = 128  # side the net trains on (after resizing and cropping)
SCALE = 1.0 / 16.0  # input scaling inside the net: NPR of 0-255 pixels, a few units
TOP_SHARE = 0.06  # image logit: mean of the top 6% cell logits (at least one cell)
SEED = 20261204


def top_mean(logits: torch.Tensor, share: float = TOP_SHARE) -> torch.Tensor:
    flat = logits.flatten(1)
    k = max(1, math.ceil(share * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(dim=1)


class NprConv(nn.Conv2d):
    """A 4x4 stride-4 convolution whose kernel sums to zero over each 2x2 block: equal to the
    same convolution over the NPR residual ``x - nearest_up(x[::2, ::2])``, baked in at export."""

    def __init__(self, out_channels: int) -> None:
        super().__init__(3, out_channels, 4, stride=4)

    def constrained(self) -> torch.Tensor:
        w = self.weight
        o, i = w.shape[:2]
        blocks = w.reshape(o, i, 2, 2, 2, 2)  # (o, i, by, y, bx, x)
        blocks = blocks - blocks.mean(dim=(3, 5), keepdim=True)
        return blocks.reshape(o, i, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.constrained(), self.bias, stride=4)


def _separable(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
        nn.Conv2d(channels, channels, 1),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


class GenTraceNet(nn.Module):
    """About 0.42 M weights; about 2.6 GMAC per megapixel; one logit per 16x16 cell."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = NprConv(64)
        self.body = nn.Sequential(
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            _separable(64),
            nn.Conv2d(64, 96, 2, stride=2),  # 1/8
            nn.BatchNorm2d(96),
            nn.ReLU(inplace=True),
            _separable(96),
            _separable(96),
            nn.Conv2d(96, 128, 2, stride=2),  # 1/16
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 128, 3, padding=1),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
        )
        self.context = nn.Conv2d(128, 64, 1)
        self.local = nn.Conv2d(128, 64, 1)
        self.out = nn.Conv2d(64, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(self.stem(x * SCALE))
        # Each cell is judged beside the image's mean feature: a smooth wall in a smooth photo.
        h = self.local(f) + self.context(f.mean(dim=(2, 3), keepdim=True))
        return self.out(F.relu(h))


class ExportNet(nn.Module):
    """GenTraceNet with the stem's constraint baked into a plain convolution (for ONNX)."""

    def __init__(self, net: GenTraceNet) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 4, stride=4)
        with torch.no_grad():
            self.stem.weight.copy_(net.stem.constrained() * SCALE)
            self.stem.bias.copy_(net.stem.bias)
        self.body, self.context, self.local, self.out = net.body, net.context, net.local, net.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body(self.stem(x))
        local = self.local(f)
        # Expanded explicitly: OpenCV's dnn module adds no broadcast residual to a convolution.
        h = local + self.context(f.mean(dim=(2, 3), keepdim=True)).expand_as(local)
        return self.out(F.relu(h))


# --- the autoencoders that make the twins ------------------------------------------------------


class AutoEncoder(nn.Module):
    """A small autoencoder whose decoder adds what it learned to a plain resampling of the
    image's 1/factor copy. The last layer starts at zero, so the output starts as the bicubic
    enlargement (which the classifier sees as a real photo: ``classic``) and every step of
    training adds detail that only the learned upsampling layers make: the trace to learn. It
    also makes the twins photo-like after a few hundred steps, which a CPU can afford."""

    def __init__(self, factor: int, up: str, latent: int, width: int) -> None:
        super().__init__()
        self.factor = factor
        steps = int(math.log2(factor))
        enc: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(steps):
            enc += [nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        enc += [nn.Conv2d(width, latent, 1)]
        dec: list[nn.Module] = [nn.Conv2d(latent, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(steps):
            if up == "transpose":
                dec += [nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)]
            elif up == "shuffle":
                dec += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2)]
            else:
                dec += [nn.Upsample(scale_factor=2, mode=up), nn.Conv2d(width, width, 3, padding=1)]
            dec += [nn.ReLU(inplace=True)]
        last = nn.Conv2d(width, 3, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        dec += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True), last]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(x, self.factor)
        base = F.interpolate(small, scale_factor=self.factor, mode="bicubic", align_corners=False)
        return base + self.decoder(self.encoder(x))


AE_CONFIGS = [
    (2, "transpose", 6, 48),
    (2, "shuffle", 8, 48),
    (4, "nearest", 16, 64),
    (4, "bilinear", 16, 64),
    (8, "transpose", 32, 96),
    (8, "shuffle", 32, 96),
]
# Shaped like a latent-diffusion VAE's decoder (8x, nearest-neighbour upsampling then convolution,
# 4 or 16 latent channels: Stable Diffusion 1/2/XL, then SD3 and FLUX), for ``--latent-like``.
LATENT_LIKE_CONFIGS = [
    (8, "nearest", 4, 128),
    (8, "nearest", 16, 128),
]


# --- data ----------------------------------------------------------------------------------------


def load(data: Path, small: int = 0) -> dict[str, list[np.ndarray]]:
    index = json.loads((data / "index.json").read_text())
    groups: dict[str, list[np.ndarray]] = {}
    for row in index["files"]:
        image = cv2.imread(str(data / "files" / row["file"]), cv2.IMREAD_COLOR)
        if image is None or min(image.shape[:2]) < SIDE:
            continue
        key = f"{row['role']}_{row['split']}" + (
            "_pair" if row["repo"] in ("grocery", "skimage", "camera") else ""
        )
        groups.setdefault(key, []).append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    if small:
        groups = {k: v[:small] for k, v in groups.items()}
    return groups


def crop(image: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    rows, cols = image.shape[:2]
    if (
        min(rows, cols) < side
    ):  # small photos (grocery, 348 px) are enlarged? no: tiled by reflection
        image = cv2.copyMakeBorder(
            image, 0, max(0, side - rows), 0, max(0, side - cols), cv2.BORDER_REFLECT
        )
        rows, cols = image.shape[:2]
    top = int(rng.integers(0, (rows - side) // 8 + 1)) * 8
    left = int(rng.integers(0, (cols - side) // 8 + 1)) * 8
    return image[top : top + side, left : left + side]


def blob(side: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros((side, side), np.float32)
    share = rng.uniform(0.08, 0.45)
    ry = int(np.sqrt(share * side * side / np.pi) * rng.uniform(0.7, 1.4))
    rx = int(share * side * side / (np.pi * max(ry, 1)))
    centre = (int(rng.uniform(0.3, 0.7) * side), int(rng.uniform(0.3, 0.7) * side))
    cv2.ellipse(mask, centre, (max(rx, 8), max(ry, 8)), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(0.8, 3.0)))


def classic(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A real photo through a classic filter (blur, or resampling down and up): still real."""
    if rng.random() < 0.5:
        return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.4, 1.2)))
    rows, cols = image.shape[:2]
    f = rng.uniform(0.5, 0.9)
    small = cv2.resize(image, (round(cols * f), round(rows * f)), interpolation=cv2.INTER_AREA)
    kind = [cv2.INTER_LINEAR, cv2.INTER_CUBIC, cv2.INTER_LANCZOS4][int(rng.integers(0, 3))]
    return cv2.resize(small, (cols, rows), interpolation=kind)


def process(images: list[np.ndarray], rng: np.random.Generator, masks: int = 0) -> list[np.ndarray]:
    """The same processing on every image of a pair, then one crop of SIDE at a multiple of 8.
    The last ``masks`` images are masks: resized and cropped alike, never compressed."""
    u = rng.random()
    src = images[0].shape[0]
    if u < 0.15 and src * 0.95 > SIDE:  # a chat app: smaller, then JPEG
        f = rng.uniform(SIDE / src, 0.95)
        size = max(SIDE, round(src * f))
        images = [cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images]
    if u < 0.7:
        q = int(rng.integers(60 if u < 0.15 else 65, 99))
        images = [
            cv2.imdecode(
                cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, q])[1], cv2.IMREAD_UNCHANGED
            )
            if i < len(images) - masks
            else im
            for i, im in enumerate(images)
        ]
    size = images[0].shape[0]
    top = int(rng.integers(0, (size - SIDE) // 8 + 1)) * 8
    left = int(rng.integers(0, (size - SIDE) // 8 + 1)) * 8
    return [im[top : top + SIDE, left : left + SIDE] for im in images]


def to_tensor(images: list[np.ndarray], device: str) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float()


def train_autoencoders(
    groups: dict[str, list[np.ndarray]],
    device: str,
    seconds: float,
    width: float,
    side: int,
    log: list[str],
    configs: list[tuple[int, str, int, int]],
) -> list[AutoEncoder]:
    """Train every autoencoder on the same batches for ``seconds``.

    The crops come from a pool cut once and kept on the device: cut per step on the CPU, they
    limited the first GPU run to 500 steps in 60 s with the GPU idle."""
    rng = np.random.default_rng(SEED + 1)
    reals = groups["real_train_pair"]
    aes = [
        AutoEncoder(f, up, latent, max(8, round(w * width))).to(device)
        for f, up, latent, w in configs
    ]
    # 3e-4: at 2e-3 and above, the first steps overshoot, the decoders' ReLUs die and the learned
    # residual collapses to zero, leaving the bicubic start (seen in the first GPU run; on a CPU,
    # 600 steps at 3e-4 take a 2x decoder from the bicubic MSE 0.0093 to 0.0016).
    opts = [torch.optim.Adam(a.parameters(), lr=3e-4) for a in aes]
    pool_size, batch = (8192, 64) if device == "cuda" else (512, 8)
    pool = to_tensor(
        [crop(reals[int(rng.integers(len(reals)))], side, rng) for _ in range(pool_size)], device
    ).to(torch.uint8)
    generator = torch.Generator(device=device).manual_seed(SEED + 1)
    start, step = time.time(), 0
    while time.time() - start < seconds:
        pick = torch.randint(pool_size, (batch,), device=device, generator=generator)
        x = pool[pick].float() / 127.5 - 1
        if step % 2:
            x = x.flip(3)
        for ae, opt in zip(aes, opts, strict=True):
            loss = F.l1_loss(ae(x), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        step += 1
        if step % (500 if device == "cuda" else 10) == 0:
            log.append(f"ae step {step} last l1 {loss.item():.4f}")
            print(log[-1], flush=True)
    psnr, bicubic = [], []
    with torch.no_grad():
        x = to_tensor(
            [crop(reals[int(rng.integers(len(reals)))], SIDE, rng) for _ in range(32)], device
        )
        for ae in aes:
            ae.eval()
            y = (ae(x / 127.5 - 1) * 127.5 + 127.5).clamp(0, 255).round()
            psnr.append(round(float(10 * torch.log10(255**2 / F.mse_loss(y, x))), 2))
            small = F.avg_pool2d(x, ae.factor)
            base = F.interpolate(small, scale_factor=ae.factor, mode="bicubic", align_corners=False)
            base = base.clamp(0, 255).round()
            bicubic.append(round(float(10 * torch.log10(255**2 / F.mse_loss(base, x))), 2))
    # A decoder whose PSNR equals its bicubic start learned nothing: its twins are resampled
    # photos, which the classifier is taught are real.
    log.append(
        f"autoencoders: {step} steps each, PSNR on real crops {psnr} (bicubic start {bicubic})"
    )
    print(log[-1], flush=True)
    return aes


@torch.no_grad()
def regenerate(
    aes: list[AutoEncoder], sources: list[np.ndarray], device: str, rng: np.random.Generator
) -> list[np.ndarray]:
    x = to_tensor(sources, device) / 127.5 - 1
    out = torch.empty_like(x)
    choice = rng.integers(0, len(aes), len(sources))
    for i, ae in enumerate(aes):
        idx = np.nonzero(choice == i)[0]
        if len(idx):
            t = torch.from_numpy(idx).to(device)
            out[t] = ae(x[t])
    y = (out * 127.5 + 127.5).clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return list(y)


def twin_bank(
    aes: list[AutoEncoder],
    reals: list[np.ndarray],
    count: int,
    device: str,
    rng: np.random.Generator,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` (real crop, regenerated twin) pairs of SOURCE px, each twin by a random
    autoencoder. Made once: on a CPU the autoencoders cost more than the classifier."""
    bank: list[tuple[np.ndarray, np.ndarray]] = []
    chunk = 64 if device == "cuda" else 8
    while len(bank) < count:
        sources = [crop(reals[int(rng.integers(len(reals)))], SOURCE, rng) for _ in range(chunk)]
        bank += list(zip(sources, regenerate(aes, sources, device, rng), strict=True))
    return bank[:count]


def make_batch(
    groups: dict[str, list[np.ndarray]],
    split: str,
    banks: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    pairs: int,
    singles: int,
    device: str,
    rng: np.random.Generator,
    pool: ThreadPoolExecutor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, cell labels with -1 = unknown, image labels with -1 = unknown)."""
    bank = banks[split]
    chosen = [bank[int(rng.integers(len(bank)))] for _ in range(pairs)]
    sources, twins = [a for a, _ in chosen], [b for _, b in chosen]
    seeds = rng.integers(0, 2**31, pairs + 2 * singles)

    def pair(i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = np.random.default_rng(int(seeds[i]))
        src, twin = sources[i], twins[i]
        mask = np.ones((SOURCE, SOURCE), np.float32)
        if r.random() < 0.5:
            mask = blob(SOURCE, r)
            twin = np.clip(
                src * (1 - mask[..., None]) + twin * mask[..., None] + 0.5, 0, 255
            ).astype(np.uint8)
        if r.random() < 0.2:
            src = classic(src, r)
        a, b, m = process([src, twin, mask], r, masks=1)
        return a, b, m

    def single(i: int, key: str) -> np.ndarray:
        r = np.random.default_rng(int(seeds[i]))
        group = groups[key]
        image = group[int(r.integers(len(group)))]
        image = crop(image, max(SIDE, min(SOURCE, min(image.shape[:2]) // 8 * 8)), r)
        if key.startswith("real") and r.random() < 0.2:
            image = classic(image, r)
        return process([image], r)[0]

    made = list(pool.map(pair, range(pairs)))
    gens = list(pool.map(lambda i: single(i, f"generated_{split}"), range(pairs, pairs + singles)))
    # Real crops beside the generator crops: half the generator repositories' own real inputs
    # (same kind of content), half the photos the pairs come from.
    keys = [f"real_{split}_pair"] + ([f"real_{split}"] if groups.get(f"real_{split}") else [])
    others = list(
        pool.map(
            lambda i: single(i, keys[i % len(keys)]), range(pairs + singles, pairs + 2 * singles)
        )
    )
    images = [a for a, _, _ in made] + [b for _, b, _ in made] + gens + others
    cells = SIDE // CELL
    cell = np.full((len(images), cells, cells), -1.0, np.float32)
    image_label = np.zeros(len(images), np.float32)
    cell[:pairs] = 0.0
    for i, (_, _, m) in enumerate(made):
        share = cv2.resize(m, (cells, cells), interpolation=cv2.INTER_AREA)
        c = np.where(share > 0.5, 1.0, np.where(share < 0.1, 0.0, -1.0))
        cell[pairs + i] = c
        image_label[pairs + i] = 1.0 if (c == 1).sum() >= 2 else -1.0
    image_label[2 * pairs : 2 * pairs + singles] = 1.0
    return (
        to_tensor(images, device),
        torch.from_numpy(cell).to(device)[:, None],
        torch.from_numpy(image_label).to(device),
    )


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    scores = np.concatenate([pos, neg])
    ranks = scores.argsort().argsort() + 1.0
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@torch.no_grad()
def evaluate(
    net: nn.Module,
    groups: dict[str, list[np.ndarray]],
    banks: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    device: str,
    pool: ThreadPoolExecutor,
    pairs: int,
) -> dict[str, float]:
    """Dev figures: twins of dev photos (AUC, cell AUC) and dev-repository generator crops
    against dev real crops, each as the batches make them (same processing mix), fixed seed."""
    net.eval()
    rng = np.random.default_rng(SEED + 2)
    out: dict[str, list[np.ndarray]] = {
        "pos_twin": [],
        "neg_twin": [],
        "pos_gen": [],
        "neg_gen": [],
    }
    half = pairs // 2
    for _ in range(4 if device == "cuda" else 2):
        x, _, image = make_batch(groups, "dev", banks, pairs, half, device, rng, pool)
        s = top_mean(net(x)).cpu().numpy()
        out["neg_twin"].append(s[:pairs])
        out["pos_twin"].append(s[pairs : 2 * pairs][image[pairs : 2 * pairs].cpu().numpy() == 1])
        out["pos_gen"].append(s[2 * pairs : 2 * pairs + half])
        out["neg_gen"].append(s[2 * pairs + half :])

    # Whole crops, unprocessed: the watched camera photos against the dev generator outputs.
    def whole(images: list[np.ndarray]) -> np.ndarray:
        scores = []
        for image in images:
            rows, cols = image.shape[0] // CELL * CELL, image.shape[1] // CELL * CELL
            scores.append(float(top_mean(net(to_tensor([image[:rows, :cols]], device)))[0]))
        return np.array(scores)

    camera = whole(groups.get("watch_dev_pair", []))
    generated = whole(groups["generated_dev"])
    net.train()
    cat = {k: np.concatenate(v) for k, v in out.items()}
    return {
        "dev_generator_vs_camera_auc": round(auc(generated, camera), 4),
        "dev_camera_top_score": round(float(camera.max()) if len(camera) else float("nan"), 3),
        "dev_twin_auc": round(auc(cat["pos_twin"], cat["neg_twin"]), 4),
        "dev_generator_auc": round(auc(cat["pos_gen"], cat["neg_gen"]), 4),
        "dev_generator_vs_all_real_auc": round(
            auc(cat["pos_gen"], np.concatenate([cat["neg_gen"], cat["neg_twin"]])), 4
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the generator-trace net.")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=5.0, help="classifier training time")
    parser.add_argument("--ae-seconds", type=float, default=75.0)
    parser.add_argument("--pairs", type=int, default=96, help="real/twin pairs per batch")
    parser.add_argument(
        "--singles", type=int, default=32, help="generator crops (and as many real) per batch"
    )
    parser.add_argument(
        "--small", type=int, default=0, help="use at most this many files per group (CPU smoke run)"
    )
    parser.add_argument("--threads", type=int, default=14)
    parser.add_argument("--ae-width", type=float, default=1.0, help="autoencoder width multiplier")
    parser.add_argument("--ae-side", type=int, default=SIDE, help="autoencoder training crop")
    parser.add_argument(
        "--bank", type=int, default=20000, help="real/twin pairs made once for training"
    )
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch CPU threads (0: default)"
    )
    parser.add_argument(
        "--latent-like",
        action="store_true",
        help="add two autoencoders shaped like latent-diffusion VAE decoders",
    )
    args = parser.parse_args()
    torch.manual_seed(SEED)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    log: list[str] = []
    groups = load(args.data, args.small)
    log.append("groups: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(groups.items())))
    print(log[-1], flush=True)
    pool = ThreadPoolExecutor(args.threads)
    configs = AE_CONFIGS + (LATENT_LIKE_CONFIGS if args.latent_like else [])
    aes = train_autoencoders(
        groups, device, args.ae_seconds, args.ae_width, args.ae_side, log, configs
    )
    args.out.mkdir(parents=True, exist_ok=True)
    # Kept to make the detector's example (a regenerated patch) and for retraining; not shipped.
    torch.save([ae.state_dict() for ae in aes], args.out / "autoencoders.pt")
    bank_rng = np.random.default_rng(SEED + 4)
    started = time.time()
    banks = {
        "train": twin_bank(aes, groups["real_train_pair"], args.bank, device, bank_rng),
        "dev": twin_bank(aes, groups["real_dev_pair"], max(64, args.bank // 10), device, bank_rng),
    }
    log.append(
        f"twin banks: train {len(banks['train'])}, dev {len(banks['dev'])} pairs in {time.time() - started:.0f}s"
    )
    print(log[-1], flush=True)

    net = GenTraceNet().to(device)
    weights = sum(p.numel() for p in net.parameters())
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    rng = np.random.default_rng(SEED + 3)
    budget = args.minutes * 60
    start, step, best, best_state = time.time(), 0, -1.0, None
    history = []
    next_eval = budget / 6
    while (elapsed := time.time() - start) < budget:
        for g in opt.param_groups:
            g["lr"] = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(1.0, elapsed / budget)))
        x, cells, image = make_batch(
            groups, "train", banks, args.pairs, args.singles, device, rng, pool
        )
        logits = net(x)
        known = cells >= 0
        cell_loss = F.binary_cross_entropy_with_logits(logits[known], cells[known])
        pooled = top_mean(logits)
        keep = image >= 0
        image_loss = F.binary_cross_entropy_with_logits(pooled[keep], image[keep])
        loss = cell_loss + image_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log.append(
                f"step {step} {elapsed:.0f}s cell {cell_loss.item():.3f} image {image_loss.item():.3f}"
            )
            print(log[-1], flush=True)
        if time.time() - start >= next_eval or time.time() - start >= budget:
            next_eval += budget / 6
            figures = evaluate(net, groups, banks, device, pool, min(args.pairs, 64))
            history.append({"step": step, **figures})
            print(history[-1], flush=True)
            score = float(
                np.nansum(
                    [
                        figures[k]
                        for k in (
                            "dev_twin_auc",
                            "dev_generator_auc",
                            "dev_generator_vs_camera_auc",
                        )
                    ]
                )
            )
            if score > best:
                best, best_state = (
                    score,
                    {k: v.detach().clone() for k, v in net.state_dict().items()},
                )
                # Kept as it goes: a run stopped at its time limit still leaves its best net.
                torch.save(best_state, args.out / "best_checkpoint.pt")
            (args.out / "dev_history.json").write_text(json.dumps(history, indent=1))
    figures = evaluate(net, groups, banks, device, pool, min(args.pairs, 64))
    history.append({"step": step, **figures, "final": True})
    final = float(
        np.nansum(
            [
                figures[k]
                for k in ("dev_twin_auc", "dev_generator_auc", "dev_generator_vs_camera_auc")
            ]
        )
    )
    if final >= best or best_state is None:
        chosen = "final"
    else:
        net.load_state_dict(best_state)
        chosen = "best dev checkpoint"
    print(history[-1], chosen, flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    export = ExportNet(net.cpu().eval()).eval()
    rng = np.random.default_rng(SEED)
    sample = rng.integers(0, 256, (1, 3, 64, 96)).astype(np.float32)
    smooth = cv2.GaussianBlur(sample[0].transpose(1, 2, 0), (0, 0), 2.0).transpose(2, 0, 1)[None]
    reference_in = np.concatenate([sample, smooth.astype(np.float32)])
    with torch.no_grad():
        reference_out = export(torch.from_numpy(reference_in)).numpy()
        original_out = net(torch.from_numpy(reference_in)).numpy()
    torch.onnx.export(
        export,
        (torch.from_numpy(reference_in),),
        str(args.out / "generator_traces.onnx"),
        input_names=["rgb"],
        output_names=["logits"],
        dynamic_axes={
            "rgb": {0: "n", 2: "rows", 3: "cols"},
            "logits": {0: "n", 2: "cell_rows", 3: "cell_cols"},
        },
        opset_version=17,
        do_constant_folding=True,
        dynamo=False,
    )
    np.savez_compressed(
        args.out / "generator_traces_reference.npz",
        rgb=reference_in,  # float32: the smooth half is not whole grey levels
        logits=reference_out,
    )
    card = {
        "architecture": "training/generator_traces/train.py GenTraceNet (NPR-constrained 4x4 stem, separable and 3x3 convolutions, image-context head)",
        "weights": weights,
        "input": "float32 RGB NCHW, 0-255, rows and cols multiples of 16; output one logit per 16x16 cell",
        "image_score": f"mean of the top {TOP_SHARE:.0%} cell logits (at least one cell)",
        "seed": SEED,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "steps": step,
        "batch": f"{args.pairs} real/twin pairs + {args.singles} generator crops + {args.singles} real crops, {SIDE} px",
        "minutes": args.minutes,
        "autoencoders": [
            {
                "factor": f,
                "upsampling": up,
                "latent_channels": latent,
                "width": max(8, round(w * args.ae_width)),
            }
            for f, up, latent, w in configs
        ],
        "ae_side": args.ae_side,
        "twin_bank": {k: len(v) for k, v in banks.items()},
        "command": "python training/generator_traces/train.py " + " ".join(sys.argv[1:]),
        "ae_seconds": args.ae_seconds,
        "data": "training/generator_traces/data_list.json (pack.py): groups "
        + ", ".join(f"{k} {len(v)}" for k, v in sorted(groups.items())),
        "dev_history": history,
        "chosen": chosen,
        "export_max_abs_diff": float(np.abs(reference_out - original_out).max()),
        "log": log[-40:],
    }
    (args.out / "generator_traces.json").write_text(json.dumps(card, indent=1))
    print("exported; max |export - net| =", card["export_max_abs_diff"], flush=True)


if __name__ == "__main__":
    main()
