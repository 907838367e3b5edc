"""SKUs: a merchant's product and its reference (listing) photos."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from ... import cases
from ...store.sql.repositories import SqlStore
from .. import fields
from ..deps import RuntimeDep, Who, actor, merchant_of, read_upload
from ..schemas import ReferenceOut, SkuOut

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
) -> SkuOut:
    merchant = merchant_of(p, merchant_id)
    files = [await read_upload(runtime.settings, f) for f in photos or []]

    def work() -> SkuOut:
        with runtime.db.session() as s:
            sku = cases.create_sku(
                SqlStore(s),
                runtime.blobs,
                runtime.settings,
                actor(p),
                merchant,
                external_id,
                title,
                files,
            )
            s.flush()
            s.refresh(sku)
            return SkuOut(
                id=sku.id,
                external_id=sku.external_id,
                references=[
                    ReferenceOut(sha256=r.sha256, name=r.name, pdq=r.pdq) for r in sku.references
                ],
            )

    return await run_in_threadpool(work)
