"""The buyer's live capture: a one-time token (and the capture page's link), then the photo
taken in the platform's app (the capture page's own upload is in ``web/capture.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, UploadFile
from fastapi.concurrency import run_in_threadpool

from ... import cases
from ...errors import RefundlensError
from ...store.sql.repositories import SqlStore
from .. import fields
from ..deps import (
    BuyerOrAdmin,
    ClaimId,
    DispatcherDep,
    HeldClaim,
    KnownFields,
    RuntimeDep,
    SessionDep,
    actor,
    read_upload,
    visible_claim,
)
from ..live_capture import capture_slot, take_capture
from ..schemas import CaptureTokenOut, ClaimAnswer
from ..views import claim_view

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/claims/{claim_id}/capture-token", status_code=201, response_model=CaptureTokenOut)
def capture_token(
    claim: HeldClaim, p: BuyerOrAdmin, s: SessionDep, runtime: RuntimeDep
) -> CaptureTokenOut:
    token, expires = cases.issue_capture_token(SqlStore(s), actor(p), claim, runtime.settings)
    url = f"/web/capture/{token}" if cases.page_captures_allowed(runtime.settings) else None
    return CaptureTokenOut(token=token, expires_at=expires.isoformat(), url=url)


@router.post("/v1/claims/{claim_id}/capture", status_code=201, response_model=ClaimAnswer)
async def capture(
    claim_id: ClaimId,
    p: BuyerOrAdmin,
    runtime: RuntimeDep,
    dispatch: DispatcherDep,
    token: Annotated[fields.Id, Form()],
    photo: Annotated[
        UploadFile | None, File(description="The live photo (required; one per request).")
    ] = None,
    x_capture_signature: Annotated[str | None, Header()] = None,
    damage_boxes: Annotated[
        str,
        Form(
            max_length=4000,
            description="The buyer's box around the damage on each photo the claim was filed "
            "with (not its live captures), in order, as in POST /v1/claims: a JSON array of "
            "null or [left, top, right, bottom] fractions. A box replaces the photo's earlier "
            "one; null leaves it; [] removes it.",
        ),
    ] = "",
    *,
    _fields: KnownFields,
) -> ClaimAnswer:
    def work(upload: tuple[str, bytes]) -> ClaimAnswer:
        take_capture(
            runtime,
            actor(p),
            lambda s: visible_claim(s, claim_id, p),
            token,
            [upload],
            x_capture_signature,
            "app",
            damage_boxes=damage_boxes,
        )
        with runtime.db.session() as s:
            return claim_view(s, visible_claim(s, claim_id, p, lock=False), p)

    def usable() -> None:
        # The token first, before a slot is taken or anything read or decoded: a made-up token
        # must cost a lookup, not a decode of the claim's photos.
        with runtime.db.session() as s:
            claim = visible_claim(s, claim_id, p, lock=False)
            if cases.capture_claim(SqlStore(s), token, lock=False).id != claim.id:
                raise RefundlensError(
                    "capture.bad_token", "The capture token is not valid for this claim."
                )

    if photo is None:  # as the capture page answers it (a missing field answered 422)
        raise RefundlensError("capture.no_photo", "Send the live photo in the field photo.")
    await run_in_threadpool(usable)
    with capture_slot(runtime, token):  # nothing read or decoded without one
        view = await run_in_threadpool(
            work, await read_upload(runtime.settings, photo, field="photo")
        )
    await run_in_threadpool(dispatch.submit, claim_id)  # or the tick, once the broker is back
    return view
