"""A live capture must be a new photo: replays of the claim's photos or of the listing photo are
refused (and recorded), a new exposure of the item passes."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refundlens import cases, synth
from refundlens.config import Settings
from refundlens.errors import RefundlensError
from refundlens.media import Media, media_from_bytes
from refundlens.store import BlobStore
from refundlens.store.interface import CaptureToken, Claim, Order, Sku, Tenant, new_id, utcnow
from refundlens.store.memory import MemoryStore

SETTINGS = Settings()


def _sample(name: str) -> bytes:
    return (resources.files("refundlens") / "samples" / name).read_bytes()


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def claim_photo() -> Media:
    return media_from_bytes(_sample("claim_genuine.jpg"), "claim_genuine.jpg")


def _capture_of(rgb: np.ndarray, name: str, quality: int = 85) -> Media:
    return media_from_bytes(_jpeg(rgb, quality), name)


def test_the_claim_photo_sent_again_re_encoded_is_a_replay(claim_photo: Media) -> None:
    capture = _capture_of(claim_photo.analysis, "again.jpg", 70)
    found = cases.capture_repeats(capture, [("claim photo 1", claim_photo)], SETTINGS)
    assert found is not None
    assert found["repeats"] == "claim photo 1" and found["how"] == "pdq"
    assert found["pdq_distance"] <= SETTINGS.reuse_max_distance


def test_a_crop_of_the_claim_photo_shrunk_is_a_replay(claim_photo: Media) -> None:
    rows, cols = claim_photo.analysis.shape[:2]
    crop = claim_photo.analysis[rows // 8 : rows - rows // 8, cols // 8 : cols - cols // 8]
    small = np.asarray(
        Image.fromarray(crop).resize((crop.shape[1] * 4 // 5, crop.shape[0] * 4 // 5))
    )
    found = cases.capture_repeats(
        _capture_of(small, "crop.jpg"), [("claim photo 1", claim_photo)], SETTINGS
    )
    assert found is not None and found["repeats"] == "claim photo 1"


def test_the_claim_photo_shown_on_a_screen_and_photographed_is_a_replay(claim_photo: Media) -> None:
    screen = synth.photograph_on_screen(claim_photo.analysis, 3)
    found = cases.capture_repeats(
        _capture_of(screen, "screen.jpg"), [("claim photo 1", claim_photo)], SETTINGS
    )
    assert found is not None and found["repeats"] == "claim photo 1"


def test_the_listing_photo_is_a_replay_too(claim_photo: Media) -> None:
    listing = media_from_bytes(_sample("listing.jpg"), "listing.jpg")
    capture = _capture_of(listing.analysis, "listing-again.jpg", 80)
    earlier = [("claim photo 1", claim_photo), ("reference 1", listing)]
    found = cases.capture_repeats(capture, earlier, SETTINGS)
    assert found is not None and found["repeats"] == "reference 1"


def test_a_new_exposure_of_the_item_is_no_replay() -> None:
    # The demo's shop photo of the yoghurt against its web listing photo: the same product,
    # another camera, light and angle (GroceryStoreDataset, MIT; credited in NOTICE).
    capture = media_from_bytes(_sample("claim_genuine.jpg"), "capture.jpg")
    listing = media_from_bytes(_sample("listing.jpg"), "listing.jpg")
    assert cases.capture_repeats(capture, [("reference 1", listing)], SETTINGS) is None


def test_an_unrelated_photo_is_no_replay(claim_photo: Media) -> None:
    rng = np.random.default_rng(7)
    other = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    other = np.asarray(Image.fromarray(other).resize((640, 480)))
    capture = _capture_of(other, "other.jpg")
    assert cases.capture_repeats(capture, [("claim photo 1", claim_photo)], SETTINGS) is None


def _awaiting_capture(store: MemoryStore) -> tuple[Claim, str]:
    store.add_tenant(Tenant(id="m1", kind="merchant", name="m1"))
    sku = Sku(id=new_id("sku"), merchant_id="m1", external_id="mug", title="Mug")
    store.catalogue.add_sku(sku)
    order = Order(
        id=new_id("ord"),
        merchant_id="m1",
        external_id="o-1",
        sku_id=sku.id,
        buyer_id="b1",
        amount=100.0,
        currency="CNY",
    )
    store.catalogue.add_order(order)
    claim = Claim(
        id=new_id("clm"),
        seq=1,
        order_id=order.id,
        merchant_id="m1",
        buyer_id="b1",
        claim_type="refund_only",
        amount=50.0,
        state="awaiting_capture",
    )
    store.claims.add(claim)

    store.claims.add_capture_token(
        CaptureToken(
            id="cap_1",
            claim_id=claim.id,
            secret_hash=hashlib.sha256(b"s3cret").hexdigest(),
            expires_at=utcnow() + dt.timedelta(hours=1),
        )
    )
    return claim, "cap_1.s3cret"


def test_a_refused_replay_is_recorded_and_leaves_the_token_usable(tmp_path: Path) -> None:
    store = MemoryStore()
    blobs = BlobStore(tmp_path)
    claim, token = _awaiting_capture(store)
    data = _sample("claim_genuine.jpg")
    repeats = {"repeats": "claim photo 1", "how": "pdq", "pdq_distance": 4}
    buyer = cases.Actor("key-b", "buyer")
    refusal = cases.refuse_replayed_capture(
        store, blobs, buyer, claim, token, ("again.jpg", data), repeats
    )
    assert isinstance(refusal, RefundlensError) and refusal.code == "capture.replayed"
    assert "claim photo 1" in refusal.message
    [entry] = store.tables.audit
    assert entry.action == "capture.refused" and entry.claim_id == claim.id
    assert blobs.exists(entry.details["sha256"]) and entry.details["pdq_distance"] == 4
    token_row = store.claims.capture_token("cap_1")
    assert token_row is not None and token_row.used_at is None
    assert claim.state == "awaiting_capture"
    # A forged token is refused before anything is recorded.
    with pytest.raises(RefundlensError) as bad:
        cases.refuse_replayed_capture(
            store, blobs, buyer, claim, "cap_1.guess", ("again.jpg", data), repeats
        )
    assert bad.value.code == "capture.bad_token" and len(store.tables.audit) == 1
