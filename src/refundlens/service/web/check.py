"""The CLI's check in the browser: a photo against the merchant's listing photos, no case."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from ... import cases
from ...errors import RefundlensError
from ...rendering.i18n import translations
from ...store.sql.models import ReferencePhoto, Sku
from .. import upload_memory
from ..auth import Principal
from ..fields import FieldError, check_id
from .common import (
    Poster,
    Viewer,
    file_name,
    heavy_work,
    lang,
    page,
    refused,
    runtime_of,
    shop_only,
)
from .refusals import refusal

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _skus(request: Request, user: Principal) -> list[dict[str, str]]:
    with runtime_of(request).db.session() as session:
        query = select(Sku).order_by(Sku.created_at.desc())
        if user.role == "merchant":
            query = query.where(Sku.merchant_id == user.tenant_id)
        return [
            {"id": s.id, "label": f"{s.external_id} {s.title}".strip()}
            for s in session.execute(query.limit(500)).scalars()
        ]


@router.get("/check", response_class=HTMLResponse)
def check_form(request: Request, user: Viewer) -> Response:
    shop_only(request, user)
    return page(
        request,
        "check.html",
        user=user,
        skus=_skus(request, user),
        selected="",
        result=None,
        error=None,
        refusal="",
    )


@router.post("/check", response_class=HTMLResponse)
async def check_run(
    request: Request,
    user: Poster,
    sku_id: str = Form(""),
    photo: UploadFile | None = None,
) -> Response:
    shop_only(request, user)
    try:
        check_id("sku_id", sku_id)
    except FieldError as exc:
        return refused(request, user, exc.code, 422)
    runtime = runtime_of(request)
    data = b""
    if photo is not None:
        limit = runtime.settings.max_file_bytes
        try:
            await upload_memory.reserve(
                limit + 1 if photo.size is None else min(photo.size, limit + 1)
            )
        except RefundlensError as exc:
            busy = refused(request, user, exc.code, 503)
            busy.headers["Retry-After"] = str(runtime.settings.busy_retry_after_seconds)
            return busy
        data = await photo.read(limit + 1)

    def work() -> dict[str, Any]:
        import base64

        from ...cases.intake import refuse_too_small
        from ...media import media_from_bytes
        from ...pipeline import analyze
        from ...report import assessment_to_dict, picture_blobs

        with runtime.db.session() as session:  # rows only: nothing is decoded in it
            sku = session.get(Sku, sku_id)
            if sku is None or (user.role == "merchant" and sku.merchant_id != user.tenant_id):
                raise cases.NotFound("sku", sku_id)
            sku_label = f"{sku.external_id} {sku.title}".strip()
            refs = [
                (r.sha256, r.name)
                for r in session.execute(
                    select(ReferencePhoto).where(ReferencePhoto.sku_id == sku.id)
                ).scalars()
            ]
        # Decoded after the session closed, and kept decoded between checks as the workers keep
        # them: on SQLite an open session holds the write lock, and decoding 20 large
        # references in it kept every shop's requests waiting 16 s (a security review).
        _, references = cases.decode_inputs(
            runtime.blobs, runtime.settings, [], refs, runtime.references
        )
        if len(data) > runtime.settings.max_file_bytes:
            raise RefundlensError(
                "media.too_large",
                f"The photo is over max_file_bytes ({runtime.settings.max_file_bytes}).",
            )
        claim = media_from_bytes(
            data,
            file_name(photo.filename) if photo is not None and photo.filename else "photo",
            runtime.settings,
        )
        # As the API refuses it: a 150 px photo was approved here (a review).
        refuse_too_small(claim, runtime.settings)
        assessment = analyze([claim], references, settings=runtime.settings, policy=runtime.policy)
        report = assessment_to_dict(assessment)
        pictures = picture_blobs(assessment.images[0])
        shown = pictures.get("overlay")
        return {
            "report": report,
            "overlay": "data:image/jpeg;base64," + base64.b64encode(shown).decode()
            if shown
            else None,
            # What was checked against what: the page keeps the SKU chosen, and says so.
            "photo": claim.name,
            "sku": sku_label,
            "references": len(references),
        }

    try:
        with heavy_work(request, user):
            result = await run_in_threadpool(work)
        error = None
    except RefundlensError as exc:
        result, error = None, exc.code
    return page(
        request,
        "check.html",
        status=200 if error is None else 422,
        user=user,
        skus=_skus(request, user),
        selected=sku_id,
        result=result,
        error=error,
        refusal=refusal(translations(lang(request)).gettext, error) if error else "",
        capture_when_product_not_shown=runtime.rules.capture_when_product_not_shown,
    )
