"""Make the detector's example of a regenerated patch (src/refundlens/samples/regenerated_patch.png).

The bundled shop photo (samples/claim_genuine.jpg, 348 px) passed through one of the autoencoders
that ``train.py`` trained and saved (``autoencoders.pt``); the box ``BOX`` of the result is
stored, and ``detectors/_pixels_examples.py`` pastes it back into the photo: a camera photo with
a patch a learned decoder made, with a known answer. Run after train.py:

    python training/generator_traces/make_example.py --autoencoders OUT/autoencoders.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import AE_CONFIGS, AutoEncoder

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "src/refundlens/samples"
BOX = (96, 96, 160, 160)  # top, left, rows, cols: repeated in detectors/_pixels_examples.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--autoencoders", type=Path, required=True)
    parser.add_argument("--which", type=int, default=4, help="index into AE_CONFIGS")
    parser.add_argument("--width", type=float, default=0.5, help="as train.py --ae-width")
    args = parser.parse_args()
    states = torch.load(args.autoencoders, map_location="cpu")
    factor, up, latent, width = AE_CONFIGS[args.which]
    ae = AutoEncoder(factor, up, latent, max(8, round(width * args.width)))
    ae.load_state_dict(states[args.which])
    ae.eval()
    photo = cv2.cvtColor(cv2.imread(str(SAMPLES / "claim_genuine.jpg")), cv2.COLOR_BGR2RGB)
    rows, cols = photo.shape[0] // 8 * 8, photo.shape[1] // 8 * 8
    x = torch.from_numpy(photo[:rows, :cols]).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        y = (ae(x) * 127.5 + 127.5).clamp(0, 255).round().byte()[0].permute(1, 2, 0).numpy()
    top, left, h, w = BOX
    patch = np.ascontiguousarray(y[top : top + h, left : left + w])
    cv2.imwrite(str(SAMPLES / "regenerated_patch.png"), cv2.cvtColor(patch, cv2.COLOR_RGB2BGR))
    diff = np.abs(patch.astype(int) - photo[top : top + h, left : left + w]).mean()
    print(f"autoencoder {AE_CONFIGS[args.which]}: mean |twin - photo| {diff:.2f} grey levels")


if __name__ == "__main__":
    main()
