"""The buyer's live-capture page, opened from the link of a one-time capture token.

No login: the token in the path is the buyer's capability (whoever holds the link may take the
photos, once, within the window), as with a password-reset link. The page opens the phone's
camera and sends two or three frames at once (``static/capture.js``), with a short clip where
the browser has MediaRecorder and the buyer records one; where the browser has no camera API it
falls back to a file field that asks for the camera. The POST checks the token
before it reads a byte of the body, must come from this site, and goes through the same checks
as the app's capture (``service/live_capture.py``): a photo that repeats the claim's own photo,
the shop's or any picture on file (another claim's, a bank entry) is refused and recorded;
nothing of the analysis is shown.

First the page asks the buyer to draw a box around the damage on the photos the claim was filed
with (served here as the analysis copy, a JPEG, only while the link may be used): the views are
compared there, and only a marked box lets views that agree confirm the damage itself.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from ... import cases
from ...cases.buyer import buyer_deadline
from ...config import Settings
from ...errors import RefundlensError
from ...metrics import metrics
from ...rendering.i18n import translations
from ...store.sql.repositories import SqlStore
from .. import upload_memory
from ..live_capture import capture_slot, take_capture
from ..rate_limit import accept_credential
from .common import analysis_jpeg, file_name, hours_left, lang, page, runtime_of, same_site

__all__ = ["TOKEN_PATH", "router"]

router = APIRouter(include_in_schema=False)

TOKEN_PATH = re.compile(r"^cap_[0-9a-f]{20}\.[A-Za-z0-9_-]{16,64}$")
"""What a capture token looks like (``cases.issue_capture_token``): anything else is not looked up."""


Filed = list[tuple[str, list[float] | None]]
"""(name, the buyer's box on file or None) of each photo the claim was filed with."""


@dataclass(frozen=True)
class Opened:
    """What the page shows of a capture link that may be used now."""

    claim_id: str
    deadline: dt.datetime | None
    zone: dt.tzinfo
    """The zone the shop's times were sent in: the deadline is written as a clock time there."""
    filed: Filed
    ask: str | None
    """What the person who asked wrote the buyer should photograph."""
    product: str
    """What was bought (the SKU's title, else the shop's id for it): a buyer who opens the link
    from a message knows its claim by that, not by claim id (a walkthrough)."""
    shop: str
    tries_left: int | None = None
    """Refused captures this link still takes before it is spent, once one was refused (None:
    none refused yet, or no limit set)."""


def _open(request: Request, token: str) -> Opened | None:
    """The claim behind ``token`` if the token may be used now, else None."""
    if not TOKEN_PATH.match(token):
        return None
    try:
        with runtime_of(request).db.session() as s:
            store = SqlStore(s)
            claim = cases.capture_claim(store, token, lock=False)
            accept_credential(request, "capture")
            order = store.catalogue.order(claim.order_id)
            sku = store.catalogue.sku(order.sku_id) if order is not None else None
            tenant = store.catalogue.tenant(claim.merchant_id)
            return Opened(
                claim_id=claim.id,
                # To the minute, as the buyer's page shows it (cases/buyer.py).
                deadline=buyer_deadline(claim.state, cases.aware(claim.deadline_at)),
                zone=cases.order_time_zone(order) if order is not None else dt.UTC,
                filed=[
                    (p.name, [float(v) for v in p.damage_box] if p.damage_box else None)
                    for p in cases.filed_photos(claim)
                ],
                ask=claim.capture_request_note,
                product=(sku.title or sku.external_id) if sku is not None else "",
                shop=tenant.name if tenant is not None and tenant.name else claim.merchant_id,
                tries_left=_tries_left_once_refused(store, token, runtime_of(request).settings),
            )
    except RefundlensError:
        return None


def _tries_left_once_refused(store: SqlStore, token: str, settings: Settings) -> int | None:
    left = cases.capture_tries_left(store, token, settings)
    return left if left is not None and left < settings.capture_max_refusals else None


def _form(
    request: Request, token: str, opened: Opened, status: int = 200, **more: object
) -> Response:
    settings = runtime_of(request).settings
    return page(
        request,
        "capture.html",
        status=status,
        token=token,
        claim_id=opened.claim_id,
        deadline=opened.deadline,
        tz=opened.zone,
        hours_left=max(0.0, hours_left(opened.deadline) or 0.0),
        filed=opened.filed,
        ask=opened.ask,
        product=opened.product,
        shop=opened.shop,
        min_side=settings.damage_box_min_side,
        most=settings.capture_max_photos,
        least=1,
        clip_seconds=settings.capture_clip_seconds,
        clip_bytes=settings.capture_clip_max_bytes,
        **more,
    )


@router.get("/capture/{token}")
def capture_page(request: Request, token: str) -> Response:
    opened = _open(request, token)
    if opened is None:
        return page(request, "capture.html", status=404, closed=True)
    if not cases.page_captures_allowed(runtime_of(request).settings):
        return page(request, "capture.html", status=403, app_only=True)
    return _form(request, token, opened)


@router.get("/capture/{token}/photo/{index}")
def filed_photo(request: Request, token: str, index: str) -> Response:
    """The ``index``-th photo the claim was filed with, as the JPEG the buyer marks the damage
    on: the analysis copy (EXIF orientation applied, at most ``analysis_side`` px, no
    metadata), so that the box's fractions are those of the photo the analysis sees. Only while
    the link may be used; a bare 404 otherwise, whatever was wrong."""
    runtime = runtime_of(request)
    if (
        not TOKEN_PATH.match(token)
        or not (index.isascii() and index.isdigit() and len(index) <= 3)
        or not cases.page_captures_allowed(runtime.settings)
    ):
        return Response(status_code=404)
    try:
        with runtime.db.session() as s:
            filed = cases.filed_photos(cases.capture_claim(SqlStore(s), token, lock=False))
            accept_credential(request, "capture")
            if int(index) >= len(filed):
                return Response(status_code=404)
            sha256, name = filed[int(index)].sha256, filed[int(index)].name
        data = analysis_jpeg(request, sha256, name)
    except RefundlensError as exc:
        if exc.code != "service.busy":
            return Response(status_code=404)
        retry = str(runtime.settings.busy_retry_after_seconds)
        return Response(status_code=503, headers={"Retry-After": retry})
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


def _message(request: Request, exc: RefundlensError, still: Opened | None = None) -> str:
    """The refusal in the buyer's language: one sentence of what to do (the page sets the code
    beside it, small: in bold red it read as the buyer's fault, a walkthrough), and where the
    link has been refused before, how many refusals it still takes: a buyer who does not know
    the link closes after a few refused photos learns it when it does."""
    hint = _hint(request, exc)
    if still is not None and still.tries_left is not None:
        words = translations(lang(request)).gettext
        hint += " " + words("Tries left on this link: {n}.").format(n=still.tries_left)
    return hint


def _hint(request: Request, exc: RefundlensError) -> str:
    words = translations(lang(request)).gettext
    hint: str | None
    if exc.code == "capture.clip_too_large":
        hint = words("The clip is too large. Record a shorter one, or send the photos without it.")
    elif exc.code.startswith(("capture.clip_", "capture.bad_clip")):
        hint = words(
            "The clip could not be used. Record it again, or send the photos without a clip."
        )
    else:
        hint = {
            "capture.replayed": words(
                "This is not a new photo. Take new photos of the item with the camera now."
            ),
            "capture.not_live": words(
                "These photos were not taken just now. Take new photos with the camera now."
            ),
            "capture.too_many_photos": words("Too many photos: send at most the number shown."),
            "capture.duplicate_photo": words(
                "The same photo came twice. Take each photo anew with the camera."
            ),
            "claim.bad_damage_box": words(
                "The box around the damage could not be read. Draw it again."
            ),
            "service.busy": words("The service is busy: send the photos again in a few seconds."),
            "request.foreign_origin": words(
                "This form was not sent from a page of this site, or the page was too old. "
                "Open the page again and resend."
            ),
            "capture.app_required": words(
                "This platform takes live photos only in its own app. Open the claim there."
            ),
            "capture.in_progress": words(
                "The photos you sent are still being checked: wait for that answer."
            ),
            "media.too_small": words(
                "A photo is too small to show the damage. Take it again with the camera at its "
                "normal size."
            ),
        }.get(exc.code)
        if hint is None and exc.code in _TOO_BIG:
            # A phone's 108 MP mode, or a photo saved at full size: the fix is in the buyer's
            # hands, and the general sentence said none (a walkthrough).
            hint = words(
                "A photo is too large. Set the camera to a normal resolution (12 MP or less) "
                "and take it again."
            )
        elif hint is None:
            hint = words("The photos could not be used.")
    return hint


_TOO_BIG = frozenset({"media.too_large", "media.too_many_pixels", "media.decompression_bomb"})


@router.post("/capture/{token}")
async def capture_upload(request: Request, token: str) -> Response:
    runtime = runtime_of(request)
    settings = runtime.settings
    if not same_site(request):
        if _script_asks(request):
            return _answer(request, 403, "refused", _FOREIGN)
        return page(request, "error.html", status=403, user=None, message="csrf")
    # The token first: a body is read only for a link that may be used now.
    opened = await run_in_threadpool(_open, request, token)
    if opened is None:
        if _script_asks(request):
            return _answer(request, 404, "closed", None)
        return page(request, "capture.html", status=404, closed=True)
    if not cases.page_captures_allowed(settings):
        metrics().errors.labels("capture.app_required").inc()
        if _script_asks(request):
            return _answer(request, 403, "closed", _APP_ONLY)
        return page(request, "capture.html", status=403, app_only=True)
    # One file more than the photos allowed (to say "too many"), and the clip.
    form = await request.form(max_files=settings.capture_max_photos + 2, max_fields=10)
    files = [f for f in form.getlist("photos") if isinstance(f, UploadFile) and f.filename]
    clips = [f for f in form.getlist("clip") if isinstance(f, UploadFile) and f.filename]
    boxes = form.get("damage_boxes")
    damage_boxes = boxes if isinstance(boxes, str) else ""
    photos = []
    clip = None
    try:
        with capture_slot(runtime, token):  # nothing read or decoded without one
            if not files:
                raise RefundlensError("capture.no_photo", "Send at least one photo.")
            if len(files) > settings.capture_max_photos:
                raise RefundlensError(
                    "capture.too_many_photos",
                    f"At most {settings.capture_max_photos} photos per live capture.",
                )
            # Every file of the capture at once, as the API's uploads are (upload_memory_bytes).
            await upload_memory.reserve(sum(f.size or 0 for f in [*files, *clips]))
            for upload in files:
                data = await upload.read(settings.max_file_bytes + 1)
                if len(data) > settings.max_file_bytes:
                    raise RefundlensError(
                        "media.too_large",
                        f"A photo is over the limit of {settings.max_file_bytes} bytes.",
                    )
                photos.append((file_name(upload.filename or "live.jpg"), data))
            if len(clips) > 1:
                raise RefundlensError("capture.bad_clip", "Send at most one clip per live capture.")
            if clips:
                data = await clips[0].read(settings.capture_clip_max_bytes + 1)
                if len(data) > settings.capture_clip_max_bytes:
                    raise RefundlensError(
                        "capture.clip_too_large",
                        f"The clip is over the limit of {settings.capture_clip_max_bytes} bytes (capture_clip_max_bytes).",
                    )
                clip = (file_name(clips[0].filename or "clip.webm"), data)
            actor = cases.Actor(f"capture:{token.partition('.')[0]}", "buyer")
            claim_id = await run_in_threadpool(
                take_capture,
                runtime,
                actor,
                lambda s: cases.capture_claim(SqlStore(s), token),
                token,
                photos,
                None,
                "page",
                clip,
                damage_boxes,
            )
    except RefundlensError as exc:
        metrics().errors.labels(exc.code).inc()
        still = await run_in_threadpool(_open, request, token)
        status = {"service.busy": 503, "capture.in_progress": 409}.get(exc.code, 400)
        if _script_asks(request):
            answer: Response = _answer(
                request, status, "closed" if still is None else "refused", exc, still
            )
        elif still is None:
            answer = page(
                request,
                "capture.html",
                status=400,
                closed=True,
                error=True,
                error_message=_message(request, exc),
                error_code=exc.code,
            )
        else:
            answer = _form(
                request,
                token,
                still,
                status,
                error=True,
                error_message=_message(request, exc, still),
                error_code=exc.code,
            )
        if exc.code == "service.busy":
            answer.headers["Retry-After"] = str(settings.busy_retry_after_seconds)
        return answer
    await run_in_threadpool(request.app.state.dispatcher.submit, claim_id)
    if _script_asks(request):
        return _answer(request, 201, "received", None)
    return page(request, "capture.html", status=201, received=True, claim_id=claim_id)


_FOREIGN = RefundlensError(
    "request.foreign_origin", "The photos were not sent from a page of this site."
)
_APP_ONLY = RefundlensError(
    "capture.app_required", "This platform takes live photos only in its own app."
)

_KEEP_PHOTOS = frozenset(
    {"service.busy", "capture.in_progress", "claim.bad_damage_box", "request.foreign_origin"}
)
"""Refusals that say nothing against the photos: the page keeps them to send again (a buyer
whose photos vanished after "busy, send again" had to take them anew: a walkthrough)."""


def _script_asks(request: Request) -> bool:
    """The page's script sent the photos (to show the upload's progress and keep the photos
    and the box on a refusal) and reads the answer as JSON; a form sent without the script
    gets the page back."""
    return request.headers.get("accept", "").startswith("application/json")


def _answer(
    request: Request,
    status: int,
    outcome: str,
    exc: RefundlensError | None,
    still: Opened | None = None,
) -> Response:
    """The answer the page's script shows: ``outcome`` (received, refused, closed), the
    sentence in the buyer's language, the code, and which of what it holds to keep."""
    code = exc.code if exc is not None else None
    clip_refused = code is not None and code.startswith(("capture.clip_", "capture.bad_clip"))
    return JSONResponse(
        {
            "outcome": outcome,
            "message": _message(request, exc, still) if exc is not None else None,
            "code": code,
            "keep_photos": code in _KEEP_PHOTOS or clip_refused,
            "keep_clip": code in _KEEP_PHOTOS and not clip_refused,
        },
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
