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
from refundlens.store.interface import (
    NAME_LENGTH,
    CaptureToken,
    Claim,
    ClaimPhoto,
    Evidence,
    Order,
    Sku,
    Tenant,
    new_id,
    utcnow,
)
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
    assert "claim photo 1" not in refusal.message and "already on file" in refusal.message
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


# --- the capture page's short clip ---


def write_clip(rgb: np.ndarray, path: Path, seconds: float = 2.0, fps: int = 10) -> bytes:
    """A clip that films ``rgb`` with the camera drifting a few pixels (OpenCV's mp4v)."""
    import cv2

    rows, cols = rgb.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (cols, rows))
    for i in range(round(seconds * fps)):
        shifted = np.roll(rgb, (i % 5) - 2, axis=1)
        writer.write(cv2.cvtColor(np.ascontiguousarray(shifted), cv2.COLOR_RGB2BGR))
    writer.release()
    return path.read_bytes()


def _new_scene() -> np.ndarray:
    from refundlens.detectors._examples import _product

    return np.asarray(_product(31, 480))


def test_a_clip_is_timed_by_its_frames_and_checked_at_frames_spread_over_it(
    tmp_path: Path,
) -> None:
    data = write_clip(_new_scene(), tmp_path / "clip.mp4", seconds=3.0)
    clip = cases.capture_clip("clip.mp4", data, SETTINGS)
    assert clip.duration_s == pytest.approx(3.0, abs=0.15) and clip.frames == 30
    assert clip.sha256 == hashlib.sha256(data).hexdigest()
    times = [t for t, _ in clip.sampled]
    assert len(times) == SETTINGS.capture_clip_check_frames
    assert times == sorted(times) and times[0] < 1.0 and times[-1] > 2.0
    assert all(m.name.startswith(f"clip.mp4#{clip.sha256[:16]}@") for _, m in clip.sampled)
    facts = clip.facts()
    assert facts["frames"] == 30 and facts["bytes"] == len(data)


@pytest.mark.parametrize(
    ("changes", "code", "media_code"),
    [
        ({"capture_clip_max_bytes": 1000}, "capture.clip_too_large", None),
        ({"capture_clip_seconds": 1.0}, "capture.clip_too_long", "media.video_too_long"),
        ({"video_max_frame_pixels": 100 * 100}, "capture.bad_clip", "media.too_many_pixels"),
        (
            {"video_max_total_pixels": 10 * 480 * 480},
            "capture.bad_clip",
            "media.decompression_bomb",
        ),
        ({"capture_clip_seconds": 0.0}, "capture.bad_clip", None),
    ],
)
def test_a_clip_over_a_limit_is_refused_with_its_code(
    tmp_path: Path, changes: dict[str, object], code: str, media_code: str | None
) -> None:
    data = write_clip(_new_scene(), tmp_path / "clip.mp4", seconds=3.0)
    with pytest.raises(RefundlensError) as refused:
        cases.capture_clip("clip.mp4", data, SETTINGS.replace(**changes))
    assert refused.value.code == code, refused.value
    assert refused.value.facts.get("media_code") == media_code


@pytest.mark.parametrize(
    "data", [b"", b"\x1aE\xdf\xa3 not a webm at all" * 20, b"\x00\x00\x00\x18ftypmp42 junk"]
)
def test_a_clip_that_is_no_video_is_refused_as_a_bad_clip(data: bytes) -> None:
    with pytest.raises(RefundlensError) as refused:
        cases.capture_clip("clip.webm", data, SETTINGS)
    assert refused.value.code == "capture.bad_clip"
    assert refused.value.facts["media_code"] in {"media.empty", "media.video_unreadable"}


def test_frames_of_a_clip_that_films_the_claim_photo_are_replays(
    tmp_path: Path, claim_photo: Media
) -> None:
    clip = cases.capture_clip(
        "clip.mp4", write_clip(claim_photo.analysis, tmp_path / "clip.mp4"), SETTINGS
    )
    earlier = [("claim photo 1", claim_photo)]
    found = [cases.capture_repeats(frame, earlier, SETTINGS) for _, frame in clip.sampled]
    assert found and all(f is not None and f["repeats"] == "claim photo 1" for f in found)
    new = cases.capture_clip("new.mp4", write_clip(_new_scene(), tmp_path / "new.mp4"), SETTINGS)
    assert all(cases.capture_repeats(f, earlier, SETTINGS) is None for _, f in new.sampled)


def test_an_accepted_clip_is_kept_as_evidence_and_named_in_the_audit_entry(
    tmp_path: Path,
) -> None:
    store = MemoryStore()
    blobs = BlobStore(tmp_path / "blobs")
    claim, token = _awaiting_capture(store)
    clip = cases.capture_clip("clip.mp4", write_clip(_new_scene(), tmp_path / "clip.mp4"), SETTINGS)
    photo = ("live-1.jpg", _jpeg(_new_scene(), 90))
    buyer = cases.Actor("capture:cap_1", "buyer")
    cases.accept_capture(
        store, blobs, SETTINGS, buyer, claim, token, [photo], None, via="page", clip=clip
    )
    [kept] = store.evidence.of_kind(claim.id, cases.CLIP_EVIDENCE_KIND)
    assert kept.sha256 == clip.sha256 and blobs.get(clip.sha256) == clip.data
    assert kept.submitted_by == "buyer" and kept.name == "clip.mp4"
    [entry] = [e for e in store.tables.audit if e.action == "capture.accepted"]
    assert entry.details["clip"]["sha256"] == clip.sha256
    assert entry.details["clip"]["frames"] == clip.frames > 0
    assert entry.details["clip"]["duration_s"] > 0
    assert claim.state == "analysing"
    # The live photo and the clip's kept frames are on file for reuse: they serve this claim only.
    indexed = {row.photo_sha256 for row in store.fingerprints.photo_prints(claim.id)}
    live = hashlib.sha256(photo[1]).hexdigest()
    assert indexed == {live} | {frame.sha256 for _, frame in clip.sampled}


def test_a_confirmed_forgery_banks_the_photos_it_was_filed_with_not_its_live_capture(
    tmp_path: Path,
) -> None:
    from refundlens.cases.review import _bank_confirmed_forgery

    store = MemoryStore()
    blobs = BlobStore(tmp_path / "blobs")
    claim, token = _awaiting_capture(store)
    filed = media_from_bytes(_sample("claim_genuine.jpg"), "filed.jpg")
    cases.add_photo_prints(store, claim, filed)
    store.claims.add_photo(
        claim,
        ClaimPhoto(id=new_id("pho"), claim_id=claim.id, position=0, sha256=filed.sha256, name="f"),
    )
    live = ("live-1.jpg", _jpeg(_new_scene(), 90))
    buyer = cases.Actor("capture:cap_1", "buyer")
    cases.accept_capture(store, blobs, SETTINGS, buyer, claim, token, [live], None, via="page")
    _bank_confirmed_forgery(store, claim, SETTINGS)
    banked = {e.pdq for e in store.tables.bank}
    filed_prints = {r.pdq for r in store.fingerprints.photo_prints(claim.id)
                    if r.photo_sha256 == filed.sha256 and r.quality >= SETTINGS.reuse_min_pdq_quality}  # fmt: skip
    assert banked and banked == filed_prints


def test_the_sharpest_frames_of_an_accepted_clip_become_live_views_of_the_item(
    tmp_path: Path,
) -> None:
    import contextlib

    import cv2

    store = MemoryStore()
    blobs = BlobStore(tmp_path / "blobs")
    claim, token = _awaiting_capture(store)
    scene = _new_scene()
    path = tmp_path / "clip.mp4"
    # Sharp, then shaken (blurred), then sharp again.
    rows, cols = scene.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (cols, rows))
    for i in range(30):
        frame = cv2.GaussianBlur(scene, (0, 0), 6) if 10 <= i < 20 else np.roll(scene, i % 3, 1)
        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    writer.release()
    clip = cases.capture_clip("clip.mp4", path.read_bytes(), SETTINGS)
    assert len(clip.sampled) == 3
    buyer = cases.Actor("capture:cap_1", "buyer")
    cases.accept_capture(
        store, blobs, SETTINGS, buyer, claim, token, [("live-1.jpg", _jpeg(scene, 90))], None,
        via="page", clip=clip,
    )  # fmt: skip

    def stores() -> contextlib.AbstractContextManager[MemoryStore]:
        return contextlib.nullcontext(store)

    # The frames the replay check passed are kept as they were checked.
    kept = store.evidence.of_kind(claim.id, cases.CLIP_FRAME_EVIDENCE_KIND)
    assert [e.name for e in kept] == [m.name for _, m in clip.sampled]
    assert [blobs.get(e.sha256 or "") for e in kept] == [m.data for _, m in clip.sampled]
    views = cases.clip_views(stores, blobs, SETTINGS, claim.id)
    assert len(views) == SETTINGS.capture_clip_views == 2
    assert {v.sha256 for v in views} <= {e.sha256 for e in kept}
    # The middle frame, shaken, is left out; the two kept are in the clip's order.
    times = [float(v.name.split("@")[1].rstrip("s")) for v in views]
    assert times == sorted(times) and not any(1.0 <= t < 2.0 for t in times), times
    assert cases.clip_views(stores, blobs, SETTINGS.replace(capture_clip_views=0), claim.id) == []
    # Settings that would sample other frames today change nothing: the checked ones are used.
    other = SETTINGS.replace(capture_clip_check_frames=7, capture_clip_seconds=1.0)
    assert [v.sha256 for v in cases.clip_views(stores, blobs, other, claim.id)] == [
        v.sha256 for v in views
    ]
    # A frame whose file is gone is left out, not fatal.
    blobs.path(views[0].sha256).unlink()
    assert [v.sha256 for v in cases.clip_views(stores, blobs, SETTINGS, claim.id)] == [
        e.sha256 for e in kept if e.sha256 != views[0].sha256
    ]


def test_each_clip_keeps_its_own_sharpest_frames_whatever_the_buyer_named_it(
    tmp_path: Path,
) -> None:
    """The page names every clip clip.webm: a second capture's frames must not crowd out the
    first's (one that shows the marked damage differently stops a confirmation). Frames are
    told apart by the clip's hash in their names, which fit the stored name's length."""
    import contextlib

    import cv2

    store = MemoryStore()
    blobs = BlobStore(tmp_path / "blobs")
    claim, _token = _awaiting_capture(store)
    scene = _new_scene()
    for clip_sha, blur in (("a" * 64, 4.0), ("b" * 64, 0.0)):  # the second clip sharper
        for t in (0.5, 1.5, 2.5):
            image = cv2.GaussianBlur(scene, (0, 0), blur) if blur else np.roll(scene, int(t * 2), 1)
            store.evidence.add(
                Evidence(
                    id=new_id("evd"), claim_id=claim.id, kind=cases.CLIP_FRAME_EVIDENCE_KIND,
                    submitted_by="buyer", sha256=blobs.put(_jpeg(image, 90)),
                    name=cases.frame_name("clip.webm", clip_sha, t),
                )
            )  # fmt: skip

    def stores() -> contextlib.AbstractContextManager[MemoryStore]:
        return contextlib.nullcontext(store)

    views = cases.clip_views(stores, blobs, SETTINGS, claim.id)
    assert sorted(v.name.split("#")[1][:1] for v in views) == ["a", "a", "b", "b"]
    long_name = cases.frame_name("x" * 400, "c" * 64, 12.25)
    assert len(long_name) == NAME_LENGTH and long_name.endswith("#cccccccccccccccc@12.2s")


def test_a_capture_replaces_leaves_or_removes_each_filed_photos_box(tmp_path: Path) -> None:
    store = MemoryStore()
    blobs = BlobStore(tmp_path / "blobs")
    claim, token = _awaiting_capture(store)
    for i, box in enumerate(([0.1, 0.1, 0.4, 0.4], [0.5, 0.5, 0.7, 0.7], None)):
        store.claims.add_photo(
            claim,
            ClaimPhoto(
                id=new_id("pho"), claim_id=claim.id, position=i, sha256=f"{i}" * 64,
                name=f"filed-{i}.jpg", damage_box=box,
            ),
        )  # fmt: skip
    buyer = cases.Actor("capture:cap_1", "buyer")
    photo = ("live-1.jpg", _jpeg(_new_scene(), 90))
    cases.accept_capture(
        store, blobs, SETTINGS, buyer, claim, token, [photo], None, via="page",
        damage_boxes=[cases.REMOVED_BOX, None, cases.REMOVED_BOX],
    )  # fmt: skip
    # Removed, left as it was, and nothing on file to remove (not recorded).
    assert [p.damage_box for p in cases.filed_photos(claim)] == [None, [0.5, 0.5, 0.7, 0.7], None]
    [entry] = [e for e in store.tables.audit if e.action == "capture.accepted"]
    assert entry.details["damage_boxes"] == {"0" * 64: None}


def test_a_refused_clip_is_recorded_with_the_frame_that_repeated(tmp_path: Path) -> None:
    store = MemoryStore()
    blobs = BlobStore(tmp_path)
    claim, token = _awaiting_capture(store)
    repeats = {"repeats": "claim photo 1", "how": "pdq", "pdq_distance": 6}
    refusal = cases.refuse_replayed_capture(
        store,
        blobs,
        cases.Actor("capture:cap_1", "buyer"),
        claim,
        token,
        ("clip.webm", b"webm bytes"),
        repeats,
        clip_frame_s=1.25,
    )
    assert refusal.code == "capture.replayed" and "clip" in refusal.message
    [entry] = store.tables.audit
    assert entry.details["clip"] is True and entry.details["clip_frame_s"] == 1.25
    assert blobs.exists(entry.details["sha256"])


def test_the_capture_page_takes_one_captures_worth_of_body_and_no_more() -> None:
    """The capture page's upload is anonymous (its link is its capability): its body may hold
    one capture (photos at the file limit, the clip at its own, the form's fields), not the
    signed-in upload limit of a whole claim."""
    import asyncio

    from refundlens.service.body_limit import BodyLimit

    one_capture = SETTINGS.capture_max_photos * SETTINGS.max_file_bytes
    one_capture += SETTINGS.capture_clip_max_bytes + SETTINGS.max_body_bytes
    reached: list[str] = []

    async def app(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        reached.append(scope["path"])

    limit = BodyLimit(
        app,  # type: ignore[arg-type]
        multipart_bytes=(SETTINGS.max_photos_per_claim + 1) * SETTINGS.max_file_bytes,
        other_bytes=SETTINGS.max_body_bytes,
        capture_bytes=one_capture,
        signed_in=lambda _headers: True,
    )

    def post(path: str, size: int, signed: bool = False) -> int:
        sent: list[dict] = []  # type: ignore[type-arg]
        headers = [(b"content-type", b"multipart/form-data; boundary=x")]
        headers.append((b"content-length", str(size).encode()))
        if signed:
            headers.append((b"authorization", b"Bearer k"))
        scope = {"type": "http", "path": path, "headers": headers, "method": "POST"}

        async def receive() -> dict:  # type: ignore[type-arg]
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:  # type: ignore[type-arg]
            sent.append(message)

        asyncio.run(limit(scope, receive, send))
        return next((m["status"] for m in sent if m["type"] == "http.response.start"), 200)

    assert post("/web/capture/cap_1.s3cret", one_capture) == 200
    assert post("/web/capture/cap_1.s3cret", one_capture + 1) == 413
    assert post("/v1/claims", one_capture + 1, signed=True) == 200  # a signed-in claim upload
    assert post("/v1/claims", SETTINGS.max_body_bytes + 1) == 413  # anonymous elsewhere
    assert reached == ["/web/capture/cap_1.s3cret", "/v1/claims"]


def test_refused_captures_are_counted_and_spend_the_link_at_the_limit(tmp_path: Path) -> None:
    store = MemoryStore()
    claim, token = _awaiting_capture(store)
    buyer = cases.Actor("capture:cap_1", "buyer")
    settings = SETTINGS.replace(capture_max_refusals=3)
    stale = RefundlensError("capture.not_fresh", "too old")
    for _ in range(2):
        cases.count_refused_capture(store, settings, buyer, claim, token, stale)
    row = store.claims.capture_token("cap_1")
    assert row is not None and row.refusals == 2 and row.used_at is None
    # A replay's refusal was recorded where it was found: counted, not recorded twice.
    cases.count_refused_capture(
        store, settings, buyer, claim, token, RefundlensError("capture.replayed", "x"),
        recorded=True,
    )  # fmt: skip
    assert row.refusals == 3 and row.used_at is not None
    actions = [(e.action, e.details) for e in store.tables.audit]
    assert actions == [
        ("capture.refused", {"code": "capture.not_fresh", "refusals": 1}),
        ("capture.refused", {"code": "capture.not_fresh", "refusals": 2}),
        ("capture.token_spent", {"refusals": 3, "capture_max_refusals": 3}),
    ]
    with pytest.raises(RefundlensError) as spent:
        cases.capture_claim(store, token)
    assert spent.value.code == "capture.token_used" and "refused" in spent.value.message
    # A spent (or wrong) token counts nothing more.
    cases.count_refused_capture(store, settings, buyer, claim, token, stale)
    cases.count_refused_capture(store, settings, buyer, claim, "cap_1.guess", stale)
    assert row.refusals == 3 and len(store.tables.audit) == 3


def test_the_same_file_twice_in_one_capture_is_refused_and_the_token_stays_unused(
    tmp_path: Path,
) -> None:
    # Two exposures never give the same bytes; two copies of one file would agree with each
    # other as two views by construction.
    store = MemoryStore()
    blobs = BlobStore(tmp_path)
    claim, token = _awaiting_capture(store)
    data = _sample("claim_genuine.jpg")
    with pytest.raises(RefundlensError) as refused:
        cases.accept_capture(
            store,
            blobs,
            Settings(),
            cases.Actor("key-b", "buyer"),
            claim,
            token,
            [("a.jpg", data), ("b.jpg", data)],
            None,
            via="page",
        )
    assert refused.value.code == "capture.duplicate_photo"
    assert "Photos 1 and 2" in refused.value.message
    token_row = store.claims.capture_token("cap_1")
    assert token_row is not None and token_row.used_at is None
    assert claim.state == "awaiting_capture" and not store.tables.audit


def test_a_link_ends_with_the_request_it_was_given_for(tmp_path: Path) -> None:
    # Two links for one request; a person asks for a capture again before that request's
    # deadline: the unused link of the first request stays dead (it came back to life, outside
    # the new request's count of links).
    store = MemoryStore()
    blobs = BlobStore(tmp_path)
    claim, _ = _awaiting_capture(store)
    claim.deadline_at = utcnow() + dt.timedelta(hours=20)
    buyer = cases.Actor("key-b", "buyer")
    first, _ = cases.issue_capture_token(store, buyer, claim, SETTINGS)
    second, _ = cases.issue_capture_token(store, buyer, claim, SETTINGS)
    reviewer = cases.Actor("key-r", "reviewer")
    cases.decide(store, reviewer, claim, "escalate", "a senior looks", None, SETTINGS)
    cases.decide(store, reviewer, claim, "request_capture", "look again", None, SETTINGS)
    assert claim.state == "awaiting_capture"
    for old in (first, second, "cap_1.s3cret"):
        with pytest.raises(RefundlensError) as ended:
            cases.capture_claim(store, old)
        assert ended.value.code == "capture.token_expired"
    [closed] = [e for e in store.tables.audit if e.action == "claim.window_closed"]
    assert sorted(closed.details["links_retired"]) == sorted(
        ["cap_1", first.partition(".")[0], second.partition(".")[0]]
    )
    # A capture taken on one link of a request ends the others.
    third, _ = cases.issue_capture_token(store, buyer, claim, SETTINGS)
    fourth, _ = cases.issue_capture_token(store, buyer, claim, SETTINGS)
    cases.accept_capture(
        store, blobs, SETTINGS, buyer, claim, third, [("live.jpg", _jpeg(_new_scene(), 90))],
        None, via="page",
    )  # fmt: skip
    [accepted] = [e for e in store.tables.audit if e.action == "capture.accepted"]
    assert accepted.details["links_retired"] == [fourth.partition(".")[0]]
    row = store.claims.capture_token(fourth.partition(".")[0])
    assert row is not None and row.used_at is None and row.expires_at <= utcnow()


def test_a_live_photo_too_small_to_show_damage_is_refused_before_anything_else() -> None:
    small = _jpeg(np.asarray(Image.fromarray(_new_scene()).resize((180, 240))), 90)
    media = media_from_bytes(small, "small.jpg")
    with pytest.raises(RefundlensError) as refused:
        cases.check_capture_photo(small, media, None, "cap_1.x", "page", utcnow(), SETTINGS)
    assert refused.value.code == "media.too_small"
    assert refused.value.facts == {"width": 180, "height": 240, "claim_photo_min_side": 200}
    # At the bound it passes that check.
    media = media_from_bytes(
        _jpeg(np.asarray(Image.fromarray(_new_scene()).resize((200, 240))), 90), "ok.jpg"
    )
    cases.check_capture_photo(small, media, None, "cap_1.x", "page", utcnow(), SETTINGS)
