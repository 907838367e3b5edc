"""Rebuild the demo samples in src/refundlens/samples from ../shared/data (credited in NOTICE).

    .venv/bin/python -m bench.make_samples

listing.jpg        GroceryStoreDataset (MIT): Arla-Natural-Yoghurt_Iconic.jpg, the web listing photo
claim_genuine.jpg  GroceryStoreDataset (MIT): a shop photo of the same product
claim_forged.jpg   listing.jpg with a crack painted by refundlens.synth, rotated, scaled, re-encoded
claim_screen.jpg   listing.jpg enlarged, shown on a screen and photographed
                   (refundlens.synth.photograph_on_screen, seed 9: with seeds 5 and 7 the enlarged
                   198-px listing agrees closely enough to be called derived, and the demo shows
                   the frame check here)
claim_unrelated.jpg scikit-image coffee.png (CC0, Rachel Michetti), as JPEG
"""

from __future__ import annotations

import glob
import io
from pathlib import Path

import numpy as np
from PIL import Image

from refundlens import synth
from refundlens.detectors.residual import background_mask

from .cases import DATA

OUT = Path(__file__).resolve().parents[1] / "src" / "refundlens" / "samples"
PRODUCT = "Arla-Natural-Yoghurt"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    iconic = glob.glob(
        str(
            DATA
            / f"grocery-store-packages/iconic-images-and-descriptions/Packages/*/{PRODUCT}/*.jpg"
        )
    )[0]
    shots = sorted(glob.glob(str(DATA / f"grocery-store-packages/test/Packages/*/{PRODUCT}/*.jpg")))
    (OUT / "listing.jpg").write_bytes(Path(iconic).read_bytes())
    (OUT / "claim_genuine.jpg").write_bytes(Path(shots[2]).read_bytes())
    listing = np.asarray(Image.open(iconic).convert("RGB"))
    # the forger works on the photo as the shop shows it, enlarged for a "phone-sized" picture
    big = np.asarray(Image.fromarray(listing).resize((600, 600), Image.Resampling.BICUBIC))
    damaged, mask = synth.paint_damage(big, ~background_mask(big), "crack", 0.03, seed=7)
    out, _ = synth.transform(damaged, mask, "rotate", seed=3)
    Image.fromarray(out).save(OUT / "claim_forged.jpg", quality=82)
    shot = synth.photograph_on_screen(big, 9, severity=1.0)
    Image.fromarray(shot).save(OUT / "claim_screen.jpg", quality=85)
    coffee = Image.open(DATA / "skimage-data/coffee.png").convert("RGB")
    buf = io.BytesIO()
    coffee.save(buf, "JPEG", quality=85)
    (OUT / "claim_unrelated.jpg").write_bytes(buf.getvalue())
    print("samples written to", OUT)


if __name__ == "__main__":
    main()
