"""The catalogue: merchants' SKUs and their reference photos, orders, and the packing videos
whose frames become an order's references."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Settings
from ..errors import NotFound, RefundlensError
from ..media import Media, media_from_bytes
from ..store.blobs import BlobStore
from ..store.features import feature_files
from ..store.interface import (
    Order,
    OrderReference,
    PackingVideo,
    ReferencePhoto,
    Sku,
    Store,
    new_id,
    utcnow,
)
from .actors import SYSTEM, Actor, aware
from .notifications import notify

__all__ = [
    "PreparedReferences",
    "create_order",
    "create_sku",
    "fail_packing_video",
    "finish_packing_video",
    "mark_packing_videos_queued",
    "new_sku_photos",
    "order_time_zone",
    "packing_video_frames",
    "packing_video_room",
    "packing_videos_to_queue",
    "prepare_references",
    "register_packing_video",
]


@dataclasses.dataclass(frozen=True)
class PreparedReferences:
    """An SKU's new photos decoded, their features computed and their bytes stored: the slow
    part of saving an SKU, done outside any transaction (:func:`prepare_references`)."""

    photos: list[tuple[str, bytes, str, Media]]  # name, bytes, sha256, media


def new_sku_photos(
    store: Store,
    settings: Settings,
    merchant_id: str,
    external_id: str,
    photos: Sequence[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """Which of ``photos`` the SKU does not have yet, within ``max_references_per_sku`` (a sync
    that retries sends its photos twice; every claim on the SKU is compared with each one):
    counted before any photo is decoded, and again under the lock by :func:`create_sku`."""
    if store.catalogue.tenant(merchant_id) is None:
        raise NotFound("merchant", merchant_id)
    if not photos:
        raise RefundlensError("sku.no_reference", "A SKU needs at least one reference photo.")
    return _new_references(store, settings, merchant_id, external_id, photos)


def prepare_references(
    blobs: BlobStore, settings: Settings, photos: Sequence[tuple[str, bytes]]
) -> PreparedReferences:
    """Decode ``photos``, compute their reference features (every claim on the SKU reads them
    back) and store them. No transaction is needed: on SQLite one held over three 64 MP photos
    kept every shop's requests waiting (found by a probe)."""
    from ..detectors.reference import prepare_reference

    prepared = []
    for index, (name, data) in enumerate(photos):
        try:
            media = media_from_bytes(data, name, settings)
        except RefundlensError as exc:  # which of the photos, as a claim's upload says
            raise exc.about_file(index, name) from None
        prepare_reference(media, feature_files(settings.reference_feature_dir))
        prepared.append((name, data, blobs.put(data), media))
    return PreparedReferences(prepared)


def create_sku(
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    merchant_id: str,
    external_id: str,
    title: str,
    photos: Sequence[tuple[str, bytes]] | PreparedReferences,
) -> Sku:
    """Save the SKU with ``photos``: the raw files, or what :func:`prepare_references` made of
    the new ones outside the transaction."""
    if isinstance(photos, PreparedReferences):
        if store.catalogue.tenant(merchant_id) is None:
            raise NotFound("merchant", merchant_id)
        prepared = photos
    else:
        prepared = prepare_references(
            blobs, settings, new_sku_photos(store, settings, merchant_id, external_id, photos)
        )
    stored = [(name, digest, media) for name, _, digest, media in prepared.photos]
    decoded = [(name, data, media) for name, data, _, media in prepared.photos]
    photos = [(name, data) for name, data, _, _ in prepared.photos]
    store.audit.lock()  # the same SKU sent twice at once must not be created twice
    # Another request may have added photos meanwhile: what is still new, within the limit.
    fresh = {hashlib.sha256(d).hexdigest() for _, d in _new_references(
        store, settings, merchant_id, external_id, photos
    )}  # fmt: skip
    stored = [entry for entry in stored if entry[1] in fresh]
    sku = store.catalogue.sku_by_external_id(merchant_id, external_id)
    if sku is None:
        sku = Sku(id=new_id("sku"), merchant_id=merchant_id, external_id=external_id, title=title)
        store.catalogue.add_sku(sku)
    for name, digest, media in stored:
        store.catalogue.add_reference(
            sku,
            ReferencePhoto(
                id=new_id("ref"),
                sku_id=sku.id,
                sha256=digest,
                name=name,
                width=media.width,
                height=media.height,
                pdq=media.pdq.hex,
            ),
        )
    store.audit.append(
        actor.id,
        "sku.saved",
        details={"sku": sku.id, "references": [m.sha256 for _, _, m in decoded]},
    )
    return sku


def _new_references(
    store: Store,
    settings: Settings,
    merchant_id: str,
    external_id: str,
    photos: Sequence[tuple[str, bytes]],
) -> list[tuple[str, bytes]]:
    """The photos the SKU does not hold yet (each once), or ``sku.too_many_references`` where
    they would take it past ``max_references_per_sku``."""
    sku = store.catalogue.sku_by_external_id(merchant_id, external_id)
    have = {sha for sha, _ in store.catalogue.reference_files(sku.id)} if sku else set()
    seen, fresh = set(have), []
    for name, data in photos:
        digest = hashlib.sha256(data).hexdigest()
        if digest not in seen:
            seen.add(digest)
            fresh.append((name, data))
    # A re-send of photos it holds passes even over the limit (lowered since, or held before).
    if fresh and len(have) + len(fresh) > settings.max_references_per_sku:
        raise RefundlensError(
            "sku.too_many_references",
            f"The SKU would hold {len(have) + len(fresh)} reference photos; the limit "
            f"(max_references_per_sku) is {settings.max_references_per_sku}: every claim on it "
            "is compared with each one.",
            {"held": len(have), "new": len(fresh)},
        )
    return fresh


def _utc(moment: dt.datetime) -> dt.datetime:
    """Comparable whether or not it came with an offset (none given is read as UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _offset_minutes(moment: dt.datetime | None) -> int | None:
    offset = moment.utcoffset() if moment is not None else None
    return None if offset is None else int(offset.total_seconds() // 60)


def order_time_zone(order: Order) -> dt.tzinfo:
    """The zone the merchant's times were sent in (UTC where it sent none)."""
    if order.utc_offset_minutes is None:
        return dt.UTC
    return dt.timezone(dt.timedelta(minutes=order.utc_offset_minutes))


def in_order_zone(moment: dt.datetime | None, order: Order) -> dt.datetime | None:
    """``moment`` in the zone the order's times were sent in; in UTC where that zone cannot hold
    it (the year 1, stored before ``order_time_earliest_year``: the conversion overflowed, and
    every page and analysis that showed it failed; a review)."""
    if moment is None:
        return None
    moment = _utc(moment)
    try:
        return moment.astimezone(order_time_zone(order))
    except OverflowError:
        return moment


def order_time_for_analysis(
    moment: dt.datetime | None, order: Order, settings: Settings
) -> dt.datetime | None:
    """An order's time as the analysis takes it: in the order's zone, or None where it lies
    before ``order_time_earliest_year`` (stored before that rule: the year 1 is no fact about a
    shipment, and reckoning with it overflowed, so every attempt failed; a review)."""
    if moment is None or _utc(moment) < dt.datetime(
        settings.order_time_earliest_year, 1, 1, tzinfo=dt.UTC
    ):
        return None
    return in_order_zone(moment, order)


def create_order(
    store: Store,
    actor: Actor,
    merchant_id: str,
    external_id: str,
    sku_id: str,
    buyer_id: str,
    amount: float,
    currency: str,
    shipped_at: dt.datetime | None,
    delivered_at: dt.datetime | None,
    buyer_pii: bytes | None,
    settings: Settings | None = None,
    open_pii: Callable[[bytes], Any] | None = None,
) -> Order:
    """Register an order, or answer the one registered under ``external_id``
    (:func:`_same_order`). ``buyer_pii`` is the buyer's contact, sealed; ``open_pii`` unseals
    one, so that a contact sent again can be compared with the one on file (sealing the same
    contact twice never gives the same bytes)."""
    sku = store.catalogue.sku(sku_id)
    if sku is None or sku.merchant_id != merchant_id:
        raise NotFound("sku", sku_id)
    settings = settings or Settings()
    for name, moment in (("shipped_at", shipped_at), ("delivered_at", delivered_at)):
        if moment is not None and moment.tzinfo is None:
            # Read as UTC, "08:00" sent from Beijing was eight hours off, while the CLI read the
            # same text at +08:00 (an integrator's walkthrough). Neither guess is safe for the
            # time that decides "taken before delivery".
            raise RefundlensError(
                "order.time_without_offset",
                f"{name} ({moment.isoformat()}) has no UTC offset: send it with one, as "
                "RFC 3339 asks (2026-11-01T08:00:00+08:00, or ...Z for UTC).",
                facts={"field": name},
            )
    check_order_times(shipped_at, delivered_at, settings)
    sent = Order(
        id=new_id("ord"),
        merchant_id=merchant_id,
        external_id=external_id,
        sku_id=sku_id,
        buyer_id=buyer_id,
        amount=amount,
        currency=currency,
        shipped_at=shipped_at,
        delivered_at=delivered_at,
        utc_offset_minutes=_offset_minutes(shipped_at or delivered_at),
        buyer_pii=buyer_pii,
    )
    store.audit.lock()  # an order synced twice at once must not be created twice
    existing = store.catalogue.order_by_external_id(merchant_id, external_id)
    if existing is not None:
        return _same_order(store, actor, existing, sent, open_pii)
    store.catalogue.add_order(sent)
    store.audit.append(actor.id, "order.saved", details={"order": sent.id, "sku": sku_id})
    return sent


def check_order_times(
    shipped_at: dt.datetime | None, delivered_at: dt.datetime | None, settings: Settings
) -> None:
    """Refuse an order's shipment and delivery times as the API does: delivered before shipped
    (``order.bad_dates``), in the future (``order.time_ahead``), before
    ``order_time_earliest_year`` (``order.time_too_early``). The command line checks its
    ``--shipped-at`` and ``--delivered-at`` with it too."""
    _check_dates(shipped_at, delivered_at)
    _check_not_ahead(
        shipped_at, delivered_at, dt.timedelta(minutes=settings.order_time_max_ahead_minutes)
    )
    _check_not_too_early(shipped_at, delivered_at, settings.order_time_earliest_year)


def _check_dates(shipped_at: dt.datetime | None, delivered_at: dt.datetime | None) -> None:
    # The delivery time decides whether a photo was taken before the goods arrived.
    if (
        shipped_at is not None
        and delivered_at is not None
        and _utc(delivered_at) < _utc(shipped_at)
    ):
        raise RefundlensError(
            "order.bad_dates",
            f"delivered_at ({delivered_at.isoformat()}) is before shipped_at "
            f"({shipped_at.isoformat()}).",
        )


def _check_not_ahead(
    shipped_at: dt.datetime | None, delivered_at: dt.datetime | None, ahead: dt.timedelta
) -> None:
    # A shipment or delivery is a fact of the past. A time in the future made every honest
    # photo read as taken before the goods were shipped (``capture.before_shipment``).
    latest = utcnow() + ahead
    for name, moment in (("shipped_at", shipped_at), ("delivered_at", delivered_at)):
        if moment is not None and _utc(moment) > latest:
            raise RefundlensError(
                "order.time_ahead",
                f"{name} ({moment.isoformat()}) is in the future: send an order's times once "
                "they have happened, with their UTC offset (a time without one is not read in "
                "your zone; order_time_max_ahead_minutes allows for clocks apart).",
            )


def _check_not_too_early(
    shipped_at: dt.datetime | None, delivered_at: dt.datetime | None, year: int
) -> None:
    # The year 1 at +08:00 lies before the first instant a datetime holds in UTC: stored, it
    # overflowed on every page that showed it in the order's zone (a security review).
    earliest = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    for name, moment in (("shipped_at", shipped_at), ("delivered_at", delivered_at)):
        if moment is not None and _utc(moment) < earliest:
            raise RefundlensError(
                "order.time_too_early",
                f"{name} ({moment.isoformat()}) is before {year} "
                "(order_time_earliest_year): send the time the goods were shipped or delivered.",
                facts={"field": name},
            )


def _same_order(
    store: Store,
    actor: Actor,
    order: Order,
    sent: Order,
    open_pii: Callable[[bytes], Any] | None = None,
) -> Order:
    """An order sent again under its external id (``sent``, never stored): a retry (the same
    order, answered as it is), or the times it lacked now known (a shop syncs an order when it
    ships and again when it is delivered), filled in while no claim was filed on it. Anything
    else is ``order.conflict``: a correction sent this way was dropped without a word, and an
    order's buyer, item, amount and times are what its claims are judged by. The buyer's
    contact is no such thing: a corrected one replaces the one on file, at any time, on the
    record (``order.contact_updated``, without the contact); one left out keeps it."""
    differs = [
        name for name in ("sku_id", "buyer_id") if getattr(order, name) != getattr(sent, name)
    ]
    # A code in any case is the same code ("cny" was stored as sent before the API upper-cased
    # it; migration 0017 upper-cases what is on file).
    if order.currency.upper() != sent.currency.upper():
        differs.append("currency")
    if abs(order.amount - sent.amount) >= 0.005:  # in cents; no round(): inf from an old 1e308
        differs.append("amount")
    filled: dict[str, dt.datetime] = {}
    for name in ("shipped_at", "delivered_at"):
        old_time, new_time = getattr(order, name), getattr(sent, name)
        if new_time is None or (old_time is not None and _utc(old_time) == _utc(new_time)):
            continue
        if old_time is None and not store.claims.open_on_order(order.id, ()):
            filled[name] = new_time
        else:
            differs.append(name)
    if differs:
        raise RefundlensError(
            "order.conflict",
            f"Order {order.external_id!r} exists ({order.id}) with another "
            f"{', '.join(differs)}: an order is created once, and a time it lacks can be "
            "added only before a claim is filed on it.",
            {"order": order.id, "fields": differs},
        )
    if sent.buyer_pii is not None and (
        order.buyer_pii is None
        or (open_pii is not None and open_pii(order.buyer_pii) != open_pii(sent.buyer_pii))
    ):
        order.buyer_pii = sent.buyer_pii
        store.audit.append(actor.id, "order.contact_updated", details={"order": order.id})
    if filled:
        shipped = filled.get("shipped_at", order.shipped_at)
        delivered = filled.get("delivered_at", order.delivered_at)
        _check_dates(shipped, delivered)
        for name, value in filled.items():
            setattr(order, name, value)
        if order.utc_offset_minutes is None:
            order.utc_offset_minutes = _offset_minutes(shipped or delivered)
        store.audit.append(
            actor.id, "order.updated", details={"order": order.id, "filled": sorted(filled)}
        )
    return order


def packing_video_room(
    store: Store, order: Order, video_sha256: str, settings: Settings
) -> PackingVideo | None:
    """The order's packing video with these bytes, where it was sent before and did not fail
    (answered as it is: decoded once, however often it is sent); else None when another may be
    taken. Each video holds the shared task runner up to ``video_max_decode_seconds`` and adds up
    to ``video_key_frames`` references to every claim on the order: an order takes at most
    ``max_packing_videos_per_order``, and a shop at most ``max_pending_packing_videos_per_shop``
    waiting at once (one shop's uploads delayed every shop's claims by minutes)."""
    # Failed videos count for nothing: a video a busy worker timed out on can be sent again.
    videos = [v for v in store.catalogue.packing_videos_of(order.id) if v.status != "failed"]
    for video in videos:
        if video.video_sha256 == video_sha256:
            return video
    if len(videos) >= settings.max_packing_videos_per_order:
        raise RefundlensError(
            "order.too_many_videos",
            f"This order has {len(videos)} packing videos (max_packing_videos_per_order); "
            "send a claim's later evidence to the claim instead.",
        )
    waiting = store.catalogue.pending_packing_videos_of_shop(order.merchant_id)
    if waiting >= settings.max_pending_packing_videos_per_shop:
        raise RefundlensError(
            "order.videos_pending",
            f"{waiting} of this shop's packing videos are still being processed "
            "(max_pending_packing_videos_per_shop); send this one once they are done.",
        )
    return None


def register_packing_video(
    store: Store,
    actor: Actor,
    order: Order,
    name: str,
    video_sha256: str,
    header: Any,
    settings: Settings | None = None,
) -> PackingVideo:
    """Record the merchant's packing video (already checked from its header by
    :func:`refundlens.media.video.probe_video` and stored) as waiting for the task runner, which
    keeps its sharp, distinct frames as references for this order (:func:`packing_video_frames`,
    then :func:`finish_packing_video`): a claim photo made from a packing frame is then caught
    like one made from a listing photo. Returns the ``PackingVideo`` row, ``pending``."""
    if settings is not None:
        store.audit.lock()  # two posts at once: the checks and the insert are one step
    if settings is not None and packing_video_room(store, order, video_sha256, settings):
        raise RefundlensError(  # sent twice at once: the first one stands
            "order.video_sent_twice", "This video is already on this order."
        )
    row = PackingVideo(
        id=new_id("pvd"),
        order_id=order.id,
        video_sha256=video_sha256,
        name=name,
        submitted_by=actor.id,
        status="pending",
        error="",
    )
    store.catalogue.add_packing_video(row)
    shipped = aware(order.shipped_at)
    store.audit.append(
        actor.id,
        "order.packing_video",
        details={
            "order": order.id,
            "video": row.id,
            "video_sha256": video_sha256,
            "seconds": round(float(header.duration_s), 1),
            "size": f"{header.width}x{header.height}",
            "registered_before_shipment": shipped is None or utcnow() <= shipped,
        },
    )
    return row


def packing_video_frames(
    blobs: BlobStore, settings: Settings, name: str, data: bytes
) -> tuple[list[tuple[str, float]], float]:
    """Decode the video (frames shrunk, bounded), keep its key frames as JPEG blobs with their
    reference features computed: the slow part, done by the task runner outside any database
    transaction. Returns ([(frame sha256, seconds)], the video's duration in seconds)."""
    import io

    from PIL import Image

    from ..detectors.reference import prepare_reference
    from ..media import video as video_module

    video = video_module.read_video(data, settings)
    kept = []
    for frame in video_module.key_frames(video, keep=settings.video_key_frames):
        buffer = io.BytesIO()
        Image.fromarray(frame.rgb).save(buffer, "JPEG", quality=95)
        prepare_reference(
            media_from_bytes(buffer.getvalue(), name, settings),
            feature_files(settings.reference_feature_dir),
        )
        kept.append((blobs.put(buffer.getvalue()), frame.seconds))
    return kept, video.duration_s


def finish_packing_video(
    store: Store, video_id: str, frames: Sequence[tuple[str, float]]
) -> PackingVideo | None:
    """Make the processed video's key frames the order's references; None if already done."""
    row = store.catalogue.packing_video(video_id, for_update=True)
    if row is None or row.status != "pending":
        return None  # another delivery of the same task finished first
    for sha, seconds in frames:
        store.catalogue.add_order_reference(
            OrderReference(
                id=new_id("oref"),
                order_id=row.order_id,
                sha256=sha,
                name=f"{row.name}@{seconds:.1f}s",
                video_sha256=row.video_sha256,
                seconds=seconds,
            )
        )
    row.status, row.frames_kept, row.finished_at = "done", [sha for sha, _ in frames], utcnow()
    order = store.catalogue.order(row.order_id)
    store.audit.append(
        SYSTEM.id,
        "order.packing_video_processed",
        details={"order": row.order_id, "video": row.id, "frames_kept": row.frames_kept},
    )
    if order is not None:
        notify(
            store,
            order.merchant_id,
            "packing_video.processed",
            None,
            {"order": row.order_id, "video": {"id": row.id, "frames_kept": len(frames)}},
        )
    return row


def fail_packing_video(store: Store, video_id: str, code: str, message: str) -> None:
    """The video could not be used (it decodes to nothing usable): recorded, and the merchant
    told, with the error's code."""
    row = store.catalogue.packing_video(video_id, for_update=True)
    if row is None or row.status != "pending":
        return
    row.status, row.error, row.finished_at = "failed", f"{code}: {message}"[:500], utcnow()
    store.audit.append(
        SYSTEM.id,
        "order.packing_video_failed",
        details={"order": row.order_id, "video": row.id, "error": row.error},
    )
    order = store.catalogue.order(row.order_id)
    if order is not None:
        notify(
            store,
            order.merchant_id,
            "packing_video.failed",
            None,
            {"order": row.order_id, "video": {"id": row.id, "error": {"code": code}}},
        )


def packing_videos_to_queue(
    store: Store, settings: Settings, now: dt.datetime | None = None
) -> list[str]:
    """The packing videos' outbox: ``pending`` and never handed to the queue, or handed over
    ``analysis_requeue_seconds`` ago (the message or its worker was lost)."""
    now = now or utcnow()
    limit = now - dt.timedelta(seconds=settings.analysis_requeue_seconds)
    rows = store.catalogue.pending_packing_videos()
    return [vid for vid, queued in rows if queued is None or (aware(queued) or now) < limit]


def mark_packing_videos_queued(store: Store, video_ids: Sequence[str]) -> None:
    store.catalogue.mark_packing_videos_queued(video_ids, utcnow())
