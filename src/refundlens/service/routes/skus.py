"""SKUs: a merchant's product and its reference (listing) photos."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Select, select

from ... import cases
from ...errors import RefundlensError
from ...store.sql.models import Sku
from ...store.sql.repositories import SqlStore
from .. import fields
from ..auth import Principal
from ..deps import (
    KnownFields,
    RuntimeDep,
    SessionDep,
    Who,
    actor,
    decode_slot,
    merchant_of,
    read_upload,
)
from ..schemas import ReferenceOut, SkuOut, SkuPageOut

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/skus", status_code=201, response_model=SkuOut)
async def create_sku(
    p: Who,
    runtime: RuntimeDep,
    external_id: Annotated[fields.ExternalId, Form()],
    photos: Annotated[
        list[UploadFile] | None,
        File(description="Reference photos (listing photos): at least one (sku.no_reference)."),
    ] = None,
    title: Annotated[fields.Title, Form()] = "",
    merchant_id: Annotated[fields.Id | None, Form()] = None,
    *,
    _fields: KnownFields,
) -> SkuOut:
    merchant = merchant_of(p, merchant_id)
    files = [
        await read_upload(runtime.settings, f, field="photos", index=i)
        for i, f in enumerate(photos or [])
    ]

    def work() -> SkuOut:
        settings = runtime.settings
        with runtime.db.session() as s:  # short: which photos are new, within the limit
            fresh = cases.new_sku_photos(SqlStore(s), settings, merchant, external_id, files)
        # Decoded, their features computed and stored with no transaction open (on SQLite one
        # holds the write lock), in one of the process's decode slots.
        with decode_slot(runtime):
            prepared = cases.prepare_references(runtime.blobs, settings, fresh)
        with runtime.db.session() as s:
            sku = cases.create_sku(
                SqlStore(s),
                runtime.blobs,
                settings,
                actor(p),
                merchant,
                external_id,
                title,
                prepared,
            )
            s.flush()
            s.refresh(sku)
            return sku_out(sku)

    return await run_in_threadpool(work)


_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,40}")


def sku_out(sku: Sku) -> SkuOut:
    return SkuOut(
        id=sku.id,
        external_id=sku.external_id,
        merchant_id=sku.merchant_id,
        title=sku.title,
        references=[ReferenceOut(sha256=r.sha256, name=r.name, pdq=r.pdq) for r in sku.references],
    )


def _visible(p: Principal) -> Select[Sku]:
    """The SKUs ``p`` may read: a shop its own, a reviewer its shops', an admin every shop's.
    A buyer reads none (the shop's catalogue and its listing photos are the shop's)."""
    query = select(Sku)
    if p.role == "merchant":
        return query.where(Sku.merchant_id == p.tenant_id)
    if p.role == "reviewer":
        return query.where(Sku.merchant_id.in_(sorted(p.tenants)))
    if p.role == "admin":
        return query
    raise RefundlensError("auth.forbidden", "A buyer reads no shop's SKUs.")


@router.get("/v1/skus", response_model=SkuPageOut)
def list_skus(
    s: SessionDep,
    p: Who,
    merchant_id: Annotated[fields.Id | None, Query()] = None,
    external_id: Annotated[fields.ExternalId | None, Query()] = None,
    cursor: Annotated[
        str | None, Query(max_length=40, description="The next_cursor of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SkuPageOut:
    """The SKUs this key may read, by id; a shop finds one by its own ``external_id``."""
    query = _visible(p).order_by(Sku.id)
    if merchant_id:
        query = query.where(Sku.merchant_id == merchant_id)
    if external_id:
        query = query.where(Sku.external_id == external_id)
    if cursor:
        # The last SKU of the previous page, one this key may read (as the claim list's).
        after = (
            s.execute(_visible(p).where(Sku.id == cursor)).scalar_one_or_none()
            if _CURSOR.fullmatch(cursor)
            else None
        )
        if after is None:
            raise RefundlensError("request.bad_cursor", "The cursor is not one this API returned.")
        query = query.where(Sku.id > after.id)
    rows = s.execute(query.limit(limit + 1)).scalars().all()
    page = rows[:limit]
    return SkuPageOut(
        items=[sku_out(sku) for sku in page],
        next_cursor=page[-1].id if len(rows) > limit else None,
    )


@router.get("/v1/skus/{sku_id}", response_model=SkuOut)
def get_sku(sku_id: Annotated[fields.Id, Path()], s: SessionDep, p: Who) -> SkuOut:
    sku = s.execute(_visible(p).where(Sku.id == sku_id)).scalar_one_or_none()
    if sku is None:  # another shop's reads as none at all
        raise cases.NotFound("sku", sku_id)
    return sku_out(sku)
