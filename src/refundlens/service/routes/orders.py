"""Orders, and the packing video a merchant keeps as evidence of what it shipped."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Path, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from ... import cases
from ...errors import RefundlensError
from ...store.sql.models import Order, PackingVideo
from ...store.sql.repositories import SqlStore
from .. import fields
from ..deps import (
    CipherDep,
    DispatcherDep,
    KnownFields,
    MerchantOrAdmin,
    RuntimeDep,
    SessionDep,
    Who,
    actor,
    merchant_of,
    read_upload,
    upload_slot,
)
from ..schemas import OrderDetailOut, OrderIn, OrderOut, PackingVideoOut, PackingVideoStateOut
from ..views import iso

__all__ = ["router"]

router = APIRouter()


def _in_zone(moment: dt.datetime | None, order: Order) -> dt.datetime | None:
    return cases.in_order_zone(moment, order)


@router.post("/v1/orders", status_code=201, response_model=OrderOut)
def create_order(
    body: OrderIn, s: SessionDep, p: Who, cipher: CipherDep, runtime: RuntimeDep
) -> OrderOut:
    merchant = merchant_of(p, body.merchant_id)
    sealed = cipher.seal(body.buyer) if body.buyer else None
    order = cases.create_order(
        SqlStore(s),
        actor(p),
        merchant,
        body.external_id,
        body.sku_id,
        body.buyer_id,
        body.amount,
        body.currency,
        body.shipped_at,
        body.delivered_at,
        sealed,
        runtime.settings,
        cipher.open,
    )
    return OrderOut(
        id=order.id,
        external_id=order.external_id,
        merchant_id=order.merchant_id,
        buyer_id=order.buyer_id,
    )


@router.get("/v1/orders/{order_id}", response_model=OrderDetailOut)
def get_order(order_id: Annotated[fields.Id, Path()], s: SessionDep, p: Who) -> OrderDetailOut:
    """An order as its shop registered it, with its packing videos and what became of each
    (the ``packing_video.processed`` event says the same, for those without a webhook)."""
    if p.role == "buyer":
        raise RefundlensError("auth.forbidden", "A buyer reads its claims, not the shop's orders.")
    order = s.get(Order, order_id)
    if order is None or not (
        p.role == "admin"
        or (p.role == "merchant" and order.merchant_id == p.tenant_id)
        or (p.role == "reviewer" and order.merchant_id in p.tenants)
    ):
        raise cases.NotFound("order", order_id)
    videos = s.execute(
        select(PackingVideo)
        .where(PackingVideo.order_id == order.id)
        .order_by(PackingVideo.created_at, PackingVideo.id)
    ).scalars()
    return OrderDetailOut(
        id=order.id,
        external_id=order.external_id,
        merchant_id=order.merchant_id,
        buyer_id=order.buyer_id,
        sku_id=order.sku_id,
        amount=order.amount,
        currency=order.currency,
        # In the zone the shop sent them in, as the pages show them (they came back in UTC,
        # though the order keeps its offset: an integrator's walkthrough).
        shipped_at=iso(_in_zone(order.shipped_at, order)),
        delivered_at=iso(_in_zone(order.delivered_at, order)),
        packing_videos=[
            PackingVideoStateOut(
                video_id=v.id,
                video_sha256=v.video_sha256,
                name=v.name,
                status=v.status,  # type: ignore[arg-type]
                error=v.error or "",
                frames_kept=len(v.frames_kept or ()),
                created_at=iso(v.created_at),
                finished_at=iso(v.finished_at),
            )
            for v in videos
        ],
    )


@router.post("/v1/orders/{order_id}/packing-video", status_code=202, response_model=PackingVideoOut)
async def packing_video(
    order_id: Annotated[fields.Id, Path()],
    p: MerchantOrAdmin,
    runtime: RuntimeDep,
    dispatch: DispatcherDep,
    video: Annotated[UploadFile, File(description="The packing video (mp4, mov, avi, mkv, webm).")],
    *,
    _fields: KnownFields,
) -> PackingVideoOut:
    """Accepted (202): the video is checked from its header and stored now; the task runner
    decodes it and its key frames become the order's references when it finishes
    (``packing_video.processed`` event)."""
    _, data = await read_upload(runtime.settings, video, video=True)
    name = fields.file_name(video.filename, "packing")  # cut and cleaned, as every upload's

    def visible_order(s: Session) -> Order:
        order = s.get(Order, order_id)
        if order is None or (p.role == "merchant" and order.merchant_id != p.tenant_id):
            raise cases.NotFound("order", order_id)
        return order

    sha = hashlib.sha256(data).hexdigest()

    def work() -> tuple[PackingVideoOut, bool]:
        with runtime.db.session() as s:  # short: no such order, or no room, answers at once
            sent = cases.packing_video_room(SqlStore(s), visible_order(s), sha, runtime.settings)
            if sent is not None:  # sent before: answered as it is, decoded once
                return (
                    PackingVideoOut(
                        order_id=order_id,
                        video_id=sent.id,
                        video_sha256=sha,
                        status="done" if sent.status == "done" else "pending",
                    ),
                    False,
                )
        # No transaction is open over the header check and the blob write (on SQLite it
        # would stop every other writer), and no frame is decoded in this process.
        from ...media.video import probe_video

        header = probe_video(data, runtime.settings)
        runtime.blobs.put(data)
        with runtime.db.session() as s:
            row = cases.register_packing_video(
                SqlStore(s), actor(p), visible_order(s), name, sha, header, runtime.settings
            )
            answer = PackingVideoOut(
                order_id=order_id, video_id=row.id, video_sha256=sha, status="pending"
            )
            return answer, True

    answer, new = await run_in_threadpool(upload_slot(runtime, work))
    if new:
        await run_in_threadpool(dispatch.submit_packing_video, answer.video_id)
    return answer
