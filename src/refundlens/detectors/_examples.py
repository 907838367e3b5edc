"""Small synthetic cases with known answers for the reference detector (run by the contract test)."""

from __future__ import annotations

import numpy as np

from .. import synth
from ..media import Media, media_from_bytes
from .base import Context, Example


def _product(seed: int, size: int = 320) -> np.ndarray:
    """A 'listing photo': a textured box on a white backdrop, different for every seed."""
    rng = np.random.default_rng(seed)
    import cv2

    image = np.full((size, size, 3), 255, np.uint8)
    box = rng.integers(40, 200, (size // 8, size // 8, 3)).astype(np.uint8)
    box = cv2.resize(box, (size * 3 // 4, size * 3 // 4), interpolation=cv2.INTER_CUBIC)
    box = cv2.GaussianBlur(box, (0, 0), 1.0)
    lo, hi = size // 8, size // 8 + box.shape[0]
    image[lo:hi, lo:hi] = box
    for i in range(6):
        y, x = (int(v) for v in rng.integers(lo + 10, hi - 30, 2))
        cv2.putText(
            image, f"SKU{seed}{i}", (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1
        )
    return image


def _media(rgb: np.ndarray, name: str, quality: int = 90) -> Media:
    return media_from_bytes(synth.jpeg_bytes(rgb, quality), name)


def forged_from_listing(seed: int = 1) -> tuple[Media, Context, np.ndarray]:
    """A crack painted on the listing photo, rotated and re-encoded; returns the true mask too."""
    listing = _product(seed)
    obj = listing.min(axis=2) < 250
    damaged, mask = synth.paint_damage(listing, obj, "stain", 0.04, seed)
    claim, mask = synth.transform(damaged, mask, "rotate", seed)
    return (
        _media(claim, "forged.jpg", 80),
        Context(references=(_media(listing, "listing.jpg"),)),
        mask,
    )


def _shelf(shift: tuple[int, int], seed: int = 3) -> np.ndarray:
    """A textured item held before a textured shelf, the item ``shift`` (x, y) px from its place:
    two photos of one scene, seconds apart, the item moved in the hand between them."""
    import cv2

    from ._pixels_examples import camera_photo

    shelf = camera_photo(seed, (360, 480), noise=0)
    rng = np.random.default_rng(seed + 100)
    item = rng.integers(30, 220, (12, 10, 3)).astype(np.uint8)
    item = cv2.resize(item, (150, 180), interpolation=cv2.INTER_CUBIC)
    top, left = 90 + shift[1], 160 + shift[0]
    shelf[top : top + 180, left : left + 150] = item
    return shelf


def reference_examples() -> list[Example]:
    def derived() -> tuple[Media, Context]:
        claim, ctx, _ = forged_from_listing()
        return claim, ctx

    def identical() -> tuple[Media, Context]:
        listing = _product(2)
        return _media(listing, "copy.jpg", 75), Context(
            references=(_media(listing, "listing.jpg"),)
        )

    def crushed() -> tuple[Media, Context]:
        listing = _product(2)
        return _media(listing, "crushed.jpg", 20), Context(
            references=(_media(listing, "listing.jpg"),)
        )

    def on_screen() -> tuple[Media, Context]:
        listing = _product(6)
        return _media(synth.photograph_on_screen(listing, 6), "screen.jpg", 85), Context(
            references=(_media(listing, "listing.jpg"),)
        )

    def unrelated() -> tuple[Media, Context]:
        return _media(_product(3), "other.jpg"), Context(
            references=(_media(_product(4), "listing.jpg"),)
        )

    def new_photo() -> tuple[Media, Context]:
        # GroceryStoreDataset (MIT, credited in NOTICE): the web listing photo of a yoghurt and a
        # shop photo of the same product, the demo's honest claim.
        from importlib import resources

        from ..media import media_from_bytes

        def sample(name: str) -> Media:
            data = (resources.files("refundlens") / "samples" / name).read_bytes()
            return media_from_bytes(data, name)

        return sample("claim_genuine.jpg"), Context(references=(sample("listing.jpg"),))

    def no_reference() -> tuple[Media, Context]:
        return _media(_product(5), "claim.jpg"), Context()

    def colour_halved() -> tuple[Media, Context]:
        # The bundled 198-px listing photo (colour at full resolution), saved again as phones
        # and chat apps save, colour at half resolution (JPEG 4:2:0): unedited, and was called
        # derived with 1.4% of the yoghurt "changed".
        import io
        from importlib import resources

        from PIL import Image

        from ..media import media_from_bytes

        data = (resources.files("refundlens") / "samples" / "listing.jpg").read_bytes()
        copy = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").save(copy, "JPEG", quality=70)
        return media_from_bytes(copy.getvalue(), "copy.jpg"), Context(
            references=(media_from_bytes(data, "listing.jpg"),)
        )

    def item_moved() -> tuple[Media, Context]:
        return _media(_shelf((14, 6)), "second.jpg", 85), Context(
            references=(_media(_shelf((0, 0)), "first.jpg"),)
        )

    def large_crack() -> tuple[Media, Context]:
        first = _shelf((0, 0))
        everywhere = np.ones(first.shape[:2], bool)
        damaged, _ = synth.paint_damage(first, everywhere, "crack", 0.04, 3)
        return _media(damaged, "cracked.jpg", 85), Context(references=(_media(first, "first.jpg"),))

    return [
        Example("crack on the listing photo", derived, frozenset({"reference.derived"})),
        Example("the listing photo re-encoded", identical, frozenset({"reference.identical"})),
        Example(
            "the listing photo crushed by JPEG quality 20: close, not provably a copy",
            crushed,
            frozenset({"reference.near_copy_unresolved"}),
        ),
        Example(
            "the listing photo on a screen, photographed: moire and glare, its borders in view",
            on_screen,
            frozenset({"reference.recaptured"}),
        ),
        Example(
            "a small listing photo saved again with its colour at half resolution (JPEG "
            "4:2:0): a copy with nothing changed",
            colour_halved,
            frozenset({"reference.identical"}),
        ),
        Example("an unrelated photo", unrelated, frozenset({"reference.no_match"})),
        Example(
            "a shop photo of the listed product: a new exposure, supports the buyer",
            new_photo,
            frozenset({"reference.same_item_new_photo"}),
        ),
        Example("no reference given: abstains", no_reference, frozenset()),
        Example(
            "two photos of one shelf, the item moved in the hand: its own content shifted, "
            "not an edit",
            item_moved,
            frozenset({"reference.near_copy_unresolved"}),
        ),
        Example(
            "a crack painted over 17% of the same photo: no shift explains it, derived",
            large_crack,
            frozenset({"reference.derived"}),
        ),
    ]
