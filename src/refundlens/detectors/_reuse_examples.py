"""Claims with a known history, for the contract test: reuse, a bank match, a repeat offender."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..media import Media, media_from_bytes
from ..reuse.memory import MemoryHistory
from ..reuse.prints import local_print
from ._pixels_examples import camera_photo
from .base import Context, Example


def _jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


def _earlier(seed: int) -> Media:
    return media_from_bytes(_jpeg(camera_photo(seed, size=(480, 640))), "earlier.jpg")


def _reused_crop(seed: int) -> Media:
    """The earlier photo cropped by 4 px a side, shrunk to 75% and recompressed at 75: the same
    picture to PDQ (distance 14-20 here). Heavier crops move PDQ past 31 bits."""
    rgb = camera_photo(seed, size=(480, 640))
    small = np.asarray(Image.fromarray(rgb[4:-4, 4:-4]).resize((480, 360)))
    return media_from_bytes(_jpeg(small, 75), "reused.jpg")


def _cropped_unevenly(seed: int) -> Media:
    """The earlier photo cropped 10%, 3%, 2% and 9% from left, top, right and bottom, then
    recompressed at 85: its PDQ, and that of its centre crops, is about 100 bits from the
    earlier photo's, while most of its keypoints are still there."""
    rgb = camera_photo(seed, size=(480, 640))
    return media_from_bytes(_jpeg(np.ascontiguousarray(rgb[14:-43, 64:-12]), 85), "cropped.jpg")


def _history(
    claims: Sequence[tuple[Media, str, str]] = (),
    bank: Sequence[Media] = (),
    confirmed: int = 0,
    prints: bool = False,
    on_file: bool = True,
) -> MemoryHistory:
    """``prints``: bank entries as a format-2 bank file brings them, and claims as filed since
    migration 0020, with their local print; ``on_file``: the claims' photos are still held."""
    return MemoryHistory(
        claims=[
            {
                "pdq": m.pdq.hex,
                "claim": f"clm_earlier{i}",
                "order": order,
                "buyer": buyer,
                "merchant": "shop",
                "at": "2026-10-01T00:00:00",
                **({"local": local_print(m.analysis).to_text()} if prints else {}),
                **({"media": m} if prints and on_file else {}),
            }
            for i, (m, order, buyer) in enumerate(claims)
        ],
        bank=[
            {
                "pdq": m.pdq.hex,
                "bank": "platform-b",
                "signer": "platform-b",
                "confirmed_at": "2026-09-30",
                "codes": ["reference.derived"],
                **({"local": local_print(m.analysis).to_text()} if prints else {}),
            }
            for m in bank
        ],
        order_id="ord_now",
        buyer_id="buyer-now",
        merchant_id="shop",
        summary={
            "other_claims": confirmed + 1,
            "outcomes": {"rejected": confirmed},
            "confirmed_forgeries": confirmed,
            "confirmed_forged_value": 180.0 * confirmed,
            "refunded_on_forged": 0.0,
        },
    )


def _video_frames(seed: int, frames: int = 6) -> list[str]:
    """Frame PDQs of a stand-in video: distinct camera-like pictures, one per sampled second."""
    return [_earlier(seed * 100 + k).pdq.hex for k in range(frames)]


def _video_history(earlier_seed: int, own_seed: int, buyer: str = "buyer-old") -> MemoryHistory:
    history = _history()
    history.videos = [
        {
            "pdq": code,
            "video": f"v{earlier_seed}",
            "seconds": float(k),
            "claim": "clm_earlier_video",
            "order": "ord_old",
            "buyer": buyer,
            "merchant": "shop",
            "at": "2026-10-01T00:00:00",
        }
        for k, code in enumerate(_video_frames(earlier_seed))
    ]
    # This claim's video: the earlier one trimmed by its first two seconds.
    history.own_videos = {f"v{own_seed}-now": _video_frames(own_seed)[2:]}
    return history


def reuse_examples() -> list[Example]:
    return [
        Example(
            "a crop of another buyer's earlier claim photo is reuse",
            lambda: (
                _reused_crop(7),
                Context(history=_history([(_earlier(7), "ord_old", "buyer-old")])),
            ),
            frozenset({"reuse.seen_before"}),
        ),
        Example(
            "a different photo is not reuse",
            lambda: (
                _reused_crop(8),
                Context(history=_history([(_earlier(9), "ord_old", "buyer-old")])),
            ),
            frozenset(),
        ),
        Example(
            "the same photo on the same order is a retry, not reuse",
            lambda: (
                _reused_crop(7),
                Context(history=_history([(_earlier(7), "ord_now", "buyer-now")])),
            ),
            frozenset(),
        ),
        Example(
            "a picture in another platform's bank is matched",
            lambda: (_reused_crop(10), Context(history=_history(bank=[_earlier(10)]))),
            frozenset({"reuse.bank_match"}),
        ),
        Example(
            "an uneven crop of a picture in another platform's bank is matched by its local print",
            lambda: (
                _cropped_unevenly(20),
                Context(history=_history(bank=[_earlier(20)], prints=True)),
            ),
            frozenset({"reuse.bank_local_match"}),
        ),
        Example(
            "an uneven crop of another buyer's earlier claim photo is reuse, by print and pixels",
            lambda: (
                _cropped_unevenly(22),
                Context(history=_history([(_earlier(22), "ord_old", "buyer-old")], prints=True)),
            ),
            frozenset({"reuse.seen_before"}),
        ),
        Example(
            "a crop of a claim photo no longer on file may be a copy, by its print alone",
            lambda: (
                _cropped_unevenly(23),
                Context(
                    history=_history(
                        [(_earlier(23), "ord_old", "buyer-old")], prints=True, on_file=False
                    )
                ),
            ),
            frozenset({"reuse.print_seen_before"}),
        ),
        Example(
            "an uneven crop of the buyer's own earlier claim photo is reuse, by its print",
            lambda: (
                _cropped_unevenly(22),
                Context(history=_history([(_earlier(22), "ord_old", "buyer-now")], prints=True)),
            ),
            frozenset({"reuse.seen_before"}),
        ),
        Example(
            "a different picture does not match a bank entry's local print",
            lambda: (
                _earlier(21),
                Context(history=_history(bank=[_earlier(20)], prints=True)),
            ),
            frozenset(),
        ),
        Example(
            "a buyer with two confirmed forgeries has a history finding",
            lambda: (_reused_crop(11), Context(history=_history(confirmed=2))),
            frozenset({"reuse.buyer_history"}),
        ),
        Example(
            "an unboxing video sent before with another buyer's claim is video reuse",
            lambda: (_earlier(12), Context(history=_video_history(3, 3))),
            frozenset({"reuse.video_seen_before"}),
        ),
        Example(
            "a different unboxing video is not video reuse",
            lambda: (_earlier(12), Context(history=_video_history(3, 4))),
            frozenset(),
        ),
        Example(
            "a photo that is a frame of an earlier claim's video is reuse",
            lambda: (_reused_crop(302), Context(history=_video_history(3, 4))),
            frozenset({"reuse.seen_before"}),
        ),
        Example(
            "a flat picture is not fingerprinted",
            lambda: (
                media_from_bytes(_jpeg(np.full((300, 300, 3), 200, np.uint8)), "flat.jpg"),
                Context(history=_history()),
            ),
            frozenset({"reuse.low_quality_hash"}),
        ),
    ]
