"""Claims: filed (idempotently, with their photos and videos), read, listed."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Query, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ... import cases
from ...cases.states import ClaimState
from ...errors import RefundlensError
from ...fusion import ACTIONS
from ...store.sql.models import Claim, IdempotencyKey, Order
from ...store.sql.repositories import SqlStore
from .. import fields
from ..deps import (
    ClaimFiler,
    DispatcherDep,
    KnownFields,
    RuntimeDep,
    SeenClaim,
    SessionDep,
    Who,
    actor,
    decode_slot,
    read_upload,
)
from ..schemas import ClaimAnswer, ClaimPageOut
from ..views import claim_items, claim_view

__all__ = ["router"]

_CURSOR = re.compile(r"clm_[0-9a-f]{20}")  # a claim id, as new_id("clm") makes them

router = APIRouter()


@router.post(
    "/v1/claims",
    status_code=201,
    response_model=ClaimAnswer,
    responses={
        200: {
            "model": ClaimAnswer,
            "description": "A retry with the same Idempotency-Key: the claim it filed.",
        }
    },
)
async def create_claim(
    response: Response,
    filer: ClaimFiler,
    runtime: RuntimeDep,
    dispatch: DispatcherDep,
    order_id: Annotated[fields.Id, Form()],
    claim_type: Annotated[fields.Word, Form(alias="type")],
    amount: Annotated[fields.Finite, Form()],
    reason: Annotated[fields.Reason, Form()] = "",
    photos: Annotated[list[UploadFile] | None, File()] = None,
    videos: Annotated[
        list[UploadFile] | None,
        File(description="Unboxing videos: their frames are compared with the photos."),
    ] = None,
    damage_boxes: Annotated[
        str,
        Form(
            max_length=4000,
            description="The buyer's box around the damage on each photo, in the photos' "
            "order: a JSON array of null (not marked) or [left, top, right, bottom], fractions "
            "(0 to 1) of the photo's width and height as shown. Live views are compared there, "
            "and only a marked box lets agreeing views confirm the damage itself.",
        ),
    ] = "",
    idempotency_key: Annotated[str | None, Header()] = None,
    *,
    _fields: KnownFields,
) -> ClaimAnswer:
    settings = runtime.settings
    # Before a byte of the photos is read.
    boxes = cases.parse_damage_boxes(damage_boxes, len(photos or []), settings)
    cases.check_file_counts(len(photos or []), len(videos or []), settings)
    files = [
        await read_upload(settings, f, field="photos", index=i) for i, f in enumerate(photos or [])
    ]
    clips = [
        await read_upload(settings, v, video=True, field="videos", index=i)
        for i, v in enumerate(videos or [])
    ]
    key = (
        hashlib.sha256(f"{filer.key_id}:{idempotency_key}".encode()).hexdigest()
        if idempotency_key
        else None
    )
    # What this request says: a retry says the same; another claim under the same key
    # does not, and is refused rather than answered with the first claim (Stripe's rule).
    fingerprint = hashlib.sha256(
        repr(
            (
                order_id,
                claim_type,
                repr(amount),
                reason,
                [(n, hashlib.sha256(d).hexdigest()) for n, d in files],
                [(n, hashlib.sha256(d).hexdigest()) for n, d in clips],
                boxes,
            )
        ).encode("utf-8", "surrogatepass")
    ).hexdigest()

    unqueued: list[str] = []  # a replayed claim still in the outbox: queue it now

    def replayed(s: Session) -> ClaimAnswer | None:
        seen = s.get(IdempotencyKey, key) if key is not None else None
        if seen is None:
            return None
        if seen.request_sha256 not in (None, fingerprint):
            raise RefundlensError(
                "idempotency.key_reused",
                "This Idempotency-Key was used for another request; use a new key for "
                "each new claim.",
            )
        existing = s.get(Claim, seen.claim_id)
        assert existing is not None
        if existing.state == "submitted" and existing.queued_at is None:
            unqueued.append(existing.id)
        return claim_view(s, existing, filer)

    def visible_order(s: Session) -> Order:
        order = s.get(Order, order_id)
        if order is None or (filer.role == "buyer" and order.buyer_id != filer.subject):
            raise cases.NotFound("order", order_id)
        return order

    def work() -> tuple[ClaimAnswer, int, str | None]:
        with runtime.db.session() as s:  # short: a replay, or a claim on no visible order
            view = replayed(s)
            if view is not None:
                return view, 200, None
            # Refused before its files are stored: a refused claim leaves no blob behind.
            cases.check_claim_request(
                visible_order(s), claim_type, amount, store=SqlStore(s), settings=settings
            )
        # Decoding and storing the files needs no transaction: none is held open over it.
        try:
            with decode_slot(runtime):
                prepared = cases.prepare_claim_files(
                    runtime.blobs, settings, claim_type, files, clips
                )
        except RefundlensError as refused:
            if refused.facts:  # still refused; what its metadata said goes on record
                with runtime.db.session() as s:
                    cases.record_refused_file(SqlStore(s), actor(filer), order_id, refused)
            raise
        try:
            with runtime.db.session() as s:
                view = replayed(s)
                if view is not None:
                    return view, 200, None
                order = visible_order(s)
                claim = cases.create_claim(
                    SqlStore(s),
                    runtime.blobs,
                    settings,
                    actor(filer),
                    order,
                    claim_type,
                    reason,
                    amount,
                    prepared,
                    damage_boxes=boxes,
                )
                if key is not None:
                    s.add(IdempotencyKey(key=key, claim_id=claim.id, request_sha256=fingerprint))
                s.flush()
                return claim_view(s, claim, filer), 201, claim.id
        except IntegrityError:
            # A retry that arrived while the first request was still saving: both did the
            # slow work, the first committed its key, this one's insert of the same key
            # failed and rolled back. Answer with the first one's claim.
            if key is None:
                raise
            with runtime.db.session() as s:
                view = replayed(s)
            if view is None:
                raise
            return view, 200, None

    view, status, created = await run_in_threadpool(work)
    for claim_id in dict.fromkeys([*([created] if created else []), *unqueued]):
        # After the commit (a worker must find the claim). The claim is saved whatever
        # happens here: a broker that is down leaves it in the outbox (queued_at NULL) and
        # the tick queues it once the broker is back ("queued later"), so the answer is
        # still 201, never a 500 for a claim that exists.
        await run_in_threadpool(dispatch.submit, claim_id)
    response.status_code = status
    return view


@router.get("/v1/claims/{claim_id}", response_model=ClaimAnswer)
def get_claim(claim: SeenClaim, s: SessionDep, p: Who) -> ClaimAnswer:
    return claim_view(s, claim, p)


def _moment(name: str, text: str) -> dt.datetime:
    """A query's time in UTC: RFC 3339 with its offset. A "+" sent unencoded arrives as a
    space, and is read as the "+" it was; each refusal says what was wrong."""
    import re

    text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text.strip())
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise RefundlensError(
            "request.bad_field",
            f"query.{name}: not an RFC 3339 time (2026-11-01T08:00:00%2B08:00, or ...Z).",
        ) from None
    if moment.tzinfo is None:
        raise RefundlensError(
            "request.bad_field",
            f"query.{name}: the time has no UTC offset (add +08:00, percent-encoded as %2B08:00, "
            "or Z).",
        )
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # the year 1 at +01:00
        raise RefundlensError(
            "request.bad_field", f"query.{name}: the time is out of range in UTC."
        ) from None


@router.get("/v1/claims", response_model=ClaimPageOut)
def list_claims(
    s: SessionDep,
    p: Who,
    state: Annotated[fields.Word | None, Query()] = None,
    merchant_id: Annotated[fields.Id | None, Query()] = None,
    action: Annotated[fields.Word | None, Query()] = None,
    min_amount: Annotated[fields.Finite | None, Query()] = None,
    updated_since: Annotated[
        str | None,
        Query(
            max_length=40,
            description="Only claims that changed at or after this time (RFC 3339 with its "
            "offset, percent-encoded; an unencoded + read as a space is taken as +): a "
            "platform's sync. Oldest change first; the next page: the last item's updated_at "
            "with ?cursor=next_cursor. Start each sync a minute before the last time seen, "
            "since a change is visible once committed. Not for a buyer.",
        ),
    ] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=24, description="The next_cursor of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ClaimPageOut:
    if p.role == "buyer" and (action or updated_since):
        # Which claims a filter by the machine's action keeps would tell a buyer what it never
        # reads in an answer (cases/buyer.py): a buyer filters by state only, as on the page.
        # So with the time a claim changed: it says how long its analysis took.
        raise RefundlensError("auth.forbidden", "A buyer filters its claims by state only.")
    since = None if updated_since is None else _moment("updated_since", updated_since)
    # A misspelt filter answered an empty page, which reads as "no such claims".
    for name, value, known in (
        ("state", state, tuple(ClaimState)),
        ("action", action, ACTIONS),
    ):
        if value and value not in known:
            raise RefundlensError(
                "request.bad_field", f"query.{name}: expected one of {', '.join(known)}."
            )
    query = select(Claim).order_by(Claim.seq.desc())
    if p.role == "merchant":
        query = query.where(Claim.merchant_id == p.tenant_id)
    elif p.role == "buyer":
        query = query.where(Claim.buyer_id == p.subject)
    elif p.role == "reviewer":
        query = query.where(Claim.merchant_id.in_(sorted(p.tenants)))
    scoped = query  # what this principal may see, before the filters
    if state:
        query = query.where(Claim.state == state)
    if merchant_id:
        query = query.where(Claim.merchant_id == merchant_id)
    if action:
        query = query.where(Claim.action == action)
    if min_amount is not None:
        query = query.where(Claim.amount >= min_amount)
    if since is not None:
        # Oldest change first, so that asking again from the last item's updated_at misses
        # nothing: newest claim first, a claim on page 1 that changed while page 2 was read
        # fell behind the time the client asked from next (a review).
        query = query.where(Claim.updated_at >= since).order_by(None)
        query = query.order_by(Claim.updated_at, Claim.seq)
    if cursor and since is not None:
        # The next page of a sync: after (updated_at, seq) of the last item read. Its number,
        # not its time now: a claim that changed since it was read is still ahead, and the
        # claims of the same time behind it are not asked for again (a page of one ending on a
        # repeated time came back for ever: an integrator's walkthrough).
        last = (
            s.execute(scoped.where(Claim.id == cursor)).scalar_one_or_none()
            if _CURSOR.fullmatch(cursor)
            else None
        )
        if last is None:
            raise RefundlensError("request.bad_cursor", "The cursor is not one this API returned.")
        query = query.where(
            or_(Claim.updated_at > since, and_(Claim.updated_at == since, Claim.seq > last.seq))
        )
    elif cursor:
        # The last claim of the previous page, one this principal may see. It was the claim's
        # platform-wide number, which told any shop or buyer how many claims the platform had.
        after = (
            s.execute(scoped.where(Claim.id == cursor)).scalar_one_or_none()
            if _CURSOR.fullmatch(cursor)
            else None
        )
        if after is None:
            raise RefundlensError("request.bad_cursor", "The cursor is not one this API returned.")
        query = query.where(Claim.seq < after.seq)
    rows = s.execute(query.limit(limit + 1)).scalars().all()
    page = rows[:limit]
    return ClaimPageOut(
        items=claim_items(s, list(page), p),
        next_cursor=page[-1].id if len(rows) > limit else None,
    )
