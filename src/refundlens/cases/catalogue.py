"""The catalogue: merchants' SKUs and their reference photos, orders, and the packing videos
whose frames become an order's references."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ..config import Settings
from ..errors import NotFound, RefundlensError
from ..media import media_from_bytes
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
    "create_order",
    "create_sku",
    "fail_packing_video",
    "finish_packing_video",
    "mark_packing_videos_queued",
    "order_time_zone",
    "packing_video_frames",
    "packing_videos_to_queue",
    "register_packing_video",
]


def create_sku(
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    merchant_id: str,
    external_id: str,
    title: str,
    photos: Sequence[tuple[str, bytes]],
) -> Sku:
    if store.catalogue.tenant(merchant_id) is None:
        raise NotFound("merchant", merchant_id)
    if not photos:
        raise RefundlensError("sku.no_reference", "A SKU needs at least one reference photo.")
    decoded = []
    for index, (name, data) in enumerate(photos):
        try:
            decoded.append((name, data, media_from_bytes(data, name, settings)))
        except RefundlensError as exc:  # which of the photos, as a claim's upload says
            raise exc.about_file(index, name) from None
    from ..detectors.reference import prepare_reference

    stored = []
    for name, data, media in decoded:
        # Features now, once, and before taking the lock below: every claim on this SKU reads
        # them back instead of recomputing.
        prepare_reference(media, feature_files(settings.reference_feature_dir))
        stored.append((name, blobs.put(data), media))
    store.audit.lock()  # the same SKU sent twice at once must not be created twice
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
) -> Order:
    sku = store.catalogue.sku(sku_id)
    if sku is None or sku.merchant_id != merchant_id:
        raise NotFound("sku", sku_id)
    if (
        shipped_at is not None
        and delivered_at is not None
        and _utc(delivered_at) < _utc(shipped_at)
    ):
        # The delivery time decides whether a photo was taken before the goods arrived.
        raise RefundlensError(
            "order.bad_dates",
            f"delivered_at ({delivered_at.isoformat()}) is before shipped_at "
            f"({shipped_at.isoformat()}).",
        )
    store.audit.lock()  # an order synced twice at once must not be created twice
    existing = store.catalogue.order_by_external_id(merchant_id, external_id)
    if existing is not None:
        return existing
    order = Order(
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
    store.catalogue.add_order(order)
    store.audit.append(actor.id, "order.saved", details={"order": order.id, "sku": sku_id})
    return order


def register_packing_video(
    store: Store,
    actor: Actor,
    order: Order,
    name: str,
    video_sha256: str,
    header: Any,
) -> PackingVideo:
    """Record the merchant's packing video (already checked from its header by
    :func:`refundlens.media.video.probe_video` and stored) as waiting for the task runner, which
    keeps its sharp, distinct frames as references for this order (:func:`packing_video_frames`,
    then :func:`finish_packing_video`): a claim photo made from a packing frame is then caught
    like one made from a listing photo. Returns the ``PackingVideo`` row, ``pending``."""
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
