"""A claim's page (the reviewer's and the merchant's, or the buyer's), its files, its report."""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import logging
import re
import secrets
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ... import cases
from ...cases.buyer import buyer_deadline, buyer_status
from ...errors import RefundlensError
from ...rendering.i18n import translations
from ...report.evidence import (
    CaseFile,
    gather,
    weight_of,
)
from ...report.pictures import file_extension, image_mime
from ...runtime import Runtime
from ...store.sql.models import Claim, Order, Tenant
from ...store.sql.repositories import SqlStore
from .. import claim_files
from ..auth import Principal
from ..claim_files import REPORT_FORMATS, file_roles, shop_of
from .common import (
    MaybeUser,
    SeenClaim,
    Viewer,
    analysis_jpeg,
    heavy_work,
    hours_left,
    key_labels,
    lang,
    page,
    refused,
    runtime_of,
    said_here,
    visible,
)
from .refusals import refusal

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# What ?done= and ?error= may say on the claim page: a known word, or a code's shape. Anything
# else is dropped, so a link cannot make the page say what refundlens did not.
DONE = frozenset({"evidence", "assigned", "appealed", *cases.DECISIONS})
_CODE = re.compile(r"[a-z_]{1,40}\.[a-z_]{1,60}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def refusal_of(request: Request, error: str | None) -> str:
    """The sentence the page shows for a refused form's code (none for no code)."""
    if not error or not _CODE.fullmatch(error):
        return ""
    return refusal(translations(lang(request)).gettext, error)


@router.get("/claims/{claim_id}", response_class=HTMLResponse)
def claim_page(
    request: Request,
    user: Viewer,
    claim_id: SeenClaim,
    done: str | None = None,
    error: str | None = None,
    said: str = "",
) -> Response:
    runtime = runtime_of(request)
    # What a form of this session said, never what a link says (forms._back tags it). A form
    # says one thing: done or refused, never both.
    query = f"done={done}" if done is not None else f"error={error}"
    if (done is not None and error is not None) or not hmac.compare_digest(
        said.encode(), said_here(request, claim_id, query).encode()
    ):
        done = error = None
    if user.role == "buyer":
        return _buyer_page(request, claim_id, user, done, error)
    claim_files.warm_file_facts_of(runtime, claim_id)
    with runtime.db.session() as session:
        case = _case_as_seen(session, runtime, claim_id, user)
        # As the report shows it: a shop reads no other shop's claim in it (report.evidence).
        audit = [
            {
                "seq": a.seq,
                # In the order's zone, like the timeline, to the second, the zone written out.
                "at": a.at.astimezone(cases.order_time_zone(case.order)).isoformat(
                    sep=" ", timespec="seconds"
                ),
                "actor": a.actor,
                "action": a.action,
                "details": a.details,
                "hash": a.entry_hash,
                "withheld": a.withheld,
            }
            for a in case.audit
        ]
        # With each claim's currency: amounts in yen read as yuan beside them (a review).
        others = (
            select(Claim, Order.currency)
            .join(Order, Order.id == Claim.order_id)
            .where(Claim.buyer_id == case.claim.buyer_id, Claim.id != claim_id)
        )
        # The buyer's other claims that this viewer may see, as on the API: a merchant sees
        # those with its own shop, a reviewer those of its tenants.
        if user.role == "merchant":
            others = others.where(Claim.merchant_id == user.tenant_id)
        elif user.role == "reviewer":
            others = others.where(Claim.merchant_id.in_(sorted(user.tenants)))
        history = [
            {"id": c.id, "state": c.state, "amount": c.amount, "currency": currency}
            for c, currency in session.execute(others.order_by(Claim.seq.desc()).limit(20))
        ]
        timeline = _timeline(case)
        acted = {a["actor"] for a in audit} | {d.decided_by for d in case.decisions}
        names = key_labels(session, user, acted | {case.claim.assigned_to})
        # A reviewer whose decision the claim's appeal contests neither takes nor decides it.
        recused = cases.recused(
            SqlStore(session), cases.Actor(user.key_id, user.role), case.claim, runtime.settings
        )
    # Findings by how much they moved the risk, either way (a copy: the stored report is kept).
    if case.report:
        case.report = {
            **case.report,
            "images": [
                {**image, "findings": sorted(image["findings"], key=lambda f: -abs(weight_of(f)))}
                for image in case.report.get("images", [])
            ],
        }
    return page(
        request,
        "claim.html",
        user=user,
        case=case,
        audit=audit,
        history=history,
        timeline=timeline,
        hours_left=hours_left(case.claim.deadline_at),
        deadline_owners=cases.DEADLINE_FOR,
        tz=cases.order_time_zone(case.order),
        done=done if done in DONE else None,
        error=error if error and _CODE.fullmatch(error) else None,
        refusal=refusal_of(request, error),
        lang_code=lang(request),
        names=names,
        allowed=() if recused else cases.allowed_decisions(case.claim.state),
        recused=recused,
        may_appeal=cases.may_appeal(
            user.role, case.claim.state, case.decision.outcome if case.decision else None
        )
        and not cases.appeal_window_closed(case.claim, runtime.settings),
        appeal_closed=cases.appeal_window_closed(case.claim, runtime.settings),
        blocks=_picture_blocks(case),
        once=secrets.token_urlsafe(16),
        assessment_id=case.assessment_id,
    )


def _picture_blocks(case: Any) -> list[dict[str, Any]]:
    """The analysis' pictures, one block per analysed photo (in the report's order, which is
    the photos' order), each with that photo's hash for the compare slider."""
    blocks: list[dict[str, Any]] = []
    for index, image in enumerate((case.report or {}).get("images", [])):
        names = image.get("pictures") or {}
        pictures = [p for p in case.pictures if p["sha256"] in names.values()]
        if not pictures:
            continue
        photo = case.photos[index]["sha256"] if index < len(case.photos) else None
        blocks.append({"path": image.get("path", ""), "pictures": pictures, "photo": photo})
    return blocks


def _case_as_seen(session: Session, runtime: Runtime, claim_id: str, user: Principal) -> CaseFile:
    """The claim's case as ``user`` may read it (a shop: no other shop's claim), its pictures
    by hash, not inline."""
    return gather(
        session,
        runtime.blobs,
        claim_id,
        inline=False,
        shop=shop_of(user),
        settings=runtime.settings,
    )


def _buyer_page(
    request: Request, claim_id: str, user: Principal, done: str | None, error: str | None
) -> HTMLResponse:
    """The buyer's page: no finding, number, risk or picture of the analysis (cases/buyer.py)."""
    runtime = runtime_of(request)
    with runtime.db.session() as session:  # the buyer's page shows no file facts
        case = gather(session, runtime.blobs, claim_id, inline=False, with_file_facts=False)
        shop = session.get(Tenant, case.claim.merchant_id)
    latest = case.decisions[-1].outcome if case.decisions else None
    return page(
        request,
        "claim_buyer.html",
        user=user,
        case=case,
        told=buyer_status(case.claim.state, latest),
        shop=shop.name if shop is not None and shop.name else case.claim.merchant_id,
        # The deadline is the buyer's only while a live capture is asked of it: a clock time
        # in the shop's zone, to the minute (cases/buyer.py), with the hours left beside it.
        deadline=(
            deadline := buyer_deadline(case.claim.state, cases.aware(case.claim.deadline_at))
        ),
        hours_left=hours_left(deadline),  # from the minute shown, never the exact time
        tz=cases.order_time_zone(case.order),
        # What the buyer wrote when it appealed (its own words, kept in the audit log).
        appeals=[
            str(line.details.get("reason", ""))
            for line in case.audit
            if line.action == "claim.appealed" and line.details.get("by") == "buyer"
        ],
        may_appeal=cases.may_appeal(user.role, case.claim.state, latest)
        and not cases.appeal_window_closed(case.claim, runtime.settings),
        once=secrets.token_urlsafe(16),
        done=done if done in DONE else None,
        error=error if error and _CODE.fullmatch(error) else None,
        refusal=refusal_of(request, error),
        capture_page=cases.page_captures_allowed(runtime_of(request).settings),
    )


def _timeline(case: Any) -> list[dict[str, Any]]:
    """Order events on one axis, as fractions of the span, for the drawn timeline."""
    events: list[tuple[str, dt.datetime]] = []
    for label, moment in (
        ("shipped", case.order.shipped_at),
        ("delivered", case.order.delivered_at),
        ("claimed", case.claim.created_at),
    ):
        if moment is not None:
            events.append((label, moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)))
    # The report's images are the claim's photos in order; a live capture's time is told apart
    # from a filed photo's (both read "taken", and a reader took the live photo's for the
    # filed one's: a walkthrough).
    live = [bool(p.get("live")) for p in case.photos]
    for index, image in enumerate((case.report or {}).get("images", [])):
        taken_label = "live_photo_taken" if index < len(live) and live[index] else "taken"
        for finding in image.get("findings", []):
            taken = finding.get("facts", {}).get("captured_at")
            if finding["code"] == "capture.clock_not_set":
                break  # a camera's unset clock, not a moment of the order
            if finding["code"].startswith("capture.") and taken:
                # A buyer's EXIF time, so anything: the year 1 a day ahead of UTC overflowed in
                # the zone conversion below and answered 500 to every staff reader (a security
                # review); an analysis stored before capture.clock_not_set may still hold one.
                with contextlib.suppress(ValueError, OverflowError):
                    moment = dt.datetime.fromisoformat(str(taken).replace(" ", "T"))
                    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
                    moment.astimezone(cases.order_time_zone(case.order))
                    events.append((taken_label, moment))
                break
    if not events:
        return []
    # Shown in the zone the merchant's times were sent in, with the zone written out.
    lo = min(m for _, m in events)
    hi = max(m for _, m in events)
    span = max((hi - lo).total_seconds(), 1.0)
    events.sort(key=lambda e: e[1])
    xs = spread([5 + 90 * (moment - lo).total_seconds() / span for _, moment in events])
    return [
        {
            "label": label,
            # In UTC where the order's zone cannot hold it (the year 1, stored before
            # order_time_earliest_year: the conversion answered 500 on every staff page).
            "at": (cases.in_order_zone(moment, case.order) or moment).isoformat(timespec="minutes"),
            "x": round(x, 1),
            # Labels at the ends grow inwards: centred on 5 or 95 they ran off the picture.
            "anchor": "start" if x < 17 else "end" if x > 83 else "middle",
        }
        for (label, moment), x in zip(events, xs, strict=True)
    ]


def spread(xs: list[float], lo: float = 5.0, hi: float = 95.0, gap: float = 20.0) -> list[float]:
    """Sorted positions on [lo, hi] moved apart to at least ``gap`` (less where they cannot
    all fit), as little as it takes: a photo taken years before the order put shipment,
    delivery and claim on one spot, their labels printed over each other (a merchant's
    walkthrough). The axis is then no longer to scale; the list beside it gives the times."""
    if len(xs) < 2:
        return list(xs)
    gap = min(gap, (hi - lo) / (len(xs) - 1))
    out = list(xs)
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    out[-1] = min(out[-1], hi)
    for i in range(len(out) - 2, -1, -1):
        out[i] = min(out[i], out[i + 1] - gap)
    return out


@router.get("/claims/{claim_id}/blob/{sha256}")
def claim_blob(
    request: Request, user: MaybeUser, claim_id: str, sha256: str, view: str | None = None
) -> Response:
    """A photo or picture of this claim (only blobs the claim refers to). A bare 403, not a
    page: an image that is not the user's is refused, not redirected to a login. With
    ``view=preview``, a claim photo or reference comes as its analysis copy (JPEG, at most
    ``analysis_side`` px): what the buyer's page shows on a phone."""
    if user is None or visible(request, claim_id, user) is None:
        return Response(status_code=403)
    if not _SHA256.fullmatch(sha256):
        return Response(status_code=404)
    runtime = runtime_of(request)
    with runtime.db.session() as session:
        case = gather(session, runtime.blobs, claim_id, inline=False, with_file_facts=False)
    # The analysis' pictures and the shop's photos are not the buyer's; evidence files: the
    # person deciding and the merchant see every one, a buyer its own.
    roles = file_roles(case, user)
    allowed = roles.photos | roles.references | roles.pictures
    if sha256 not in roles.all():
        return Response(status_code=404)
    data = runtime.blobs.get(sha256)
    media = image_mime(data)
    photo = sha256 in roles.photos | roles.references
    if view == "preview" and photo:
        media = "application/octet-stream"  # served below as the analysis copy
    if media == "application/octet-stream" and sha256 not in allowed:
        # An evidence file no browser shows as a picture (a packing video, a PDF): a download
        # under a name of ours, never rendered from this site (the bytes are the sender's).
        return Response(
            data,
            media_type="application/octet-stream",
            headers={
                "Cache-Control": "private, no-store",
                "Content-Disposition": (
                    f'attachment; filename="evidence-{sha256[:12]}.{file_extension(data)}"'
                ),
            },
        )
    if media == "application/octet-stream":
        # No browser shows an iPhone's HEIC, and a phone on a slow network should not load the
        # file sent: the photo's analysis copy, as JPEG, is what the page shows (the file
        # itself stays in the evidence report's hashes and the API). Decoded once per photo
        # while cached, each decode in one of the upload decode slots (waiting a little for
        # one, since a page asks for all its photos at once; 503 past that): a page reloaded
        # in a loop costs no more than the slots allow.
        try:
            data = analysis_jpeg(request, sha256, roles.names.get(sha256, sha256))
        except RefundlensError as exc:
            if exc.code != "service.busy":
                return Response(status_code=404)
            retry = str(runtime.settings.busy_retry_after_seconds)
            return Response(status_code=503, headers={"Retry-After": retry})
        media = "image/jpeg"
    return Response(data, media_type=media, headers={"Cache-Control": "private, no-store"})


@router.get("/claims/{claim_id}/report.{fmt}")
def report(request: Request, user: Viewer, claim_id: SeenClaim, fmt: str) -> Response:
    if fmt not in REPORT_FORMATS:
        return Response(status_code=404)
    try:
        made = claim_files.report(
            runtime_of(request),
            user,
            claim_id,
            fmt,
            lambda: heavy_work(request, user),
            lang(request),
        )
    except RefundlensError as exc:
        status = claim_files.REPORT_STATUS.get(exc.code, 400)
        return refused(request, user, exc.code, status)
    return Response(made.data, media_type=made.media_type, headers=made.headers)
