"""The claim page's forms: decide, appeal, add evidence, assign. Each answers with a redirect to
the claim page, saying what was done (``?done=``) or the refusal's code (``?error=``)."""

from __future__ import annotations

import math
from collections.abc import Callable

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.exc import IntegrityError

from ... import cases
from ...errors import RefundlensError
from ...store.sql.models import Claim
from ...store.sql.repositories import SqlStore
from .. import idempotency, upload_memory
from ..auth import Principal
from ..deps import upload_slot
from ..fields import EVIDENCE_KINDS, MAX_REASON, MAX_STATEMENT, check_text
from .common import PostedClaim, Poster, file_name, runtime_of, said_here

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Act = Callable[[SqlStore, cases.Actor, Claim], object]


def _back(request: Request, claim_id: str, query: str, form: str = "") -> RedirectResponse:
    """Back to the claim page with what was done or refused (``done=word``, ``error=code``),
    tagged for this session: the page shows only what a form of this session said. ``form``
    names the form refused (``decision``: the page's script puts back what was typed)."""
    said = said_here(request, claim_id, query)
    which = f"&form={form}" if form else ""
    return RedirectResponse(f"/web/claims/{claim_id}?{query}&said={said}{which}", status_code=303)


def _act(
    request: Request, claim_id: str, user: Principal, done: str, act: Act, form: str = ""
) -> Response:
    """Run ``act(store, actor, claim)`` on the claim, its row held; back to its page."""
    try:
        with runtime_of(request).db.session() as session:
            claim = session.get(Claim, claim_id, with_for_update=True, populate_existing=True)
            assert claim is not None
            act(SqlStore(session), cases.Actor(user.key_id, user.role), claim)
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}", form)
    return _back(request, claim_id, f"done={done}")


def _amount(text: str) -> float | None:
    """A decision's amount as typed: empty is none; anything but a finite number is refused."""
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or len(text) > 40:
        raise RefundlensError("decision.bad_amount", "The amount is not a number.")
    return value


@router.post("/claims/{claim_id}/decision")
def decide(
    request: Request,
    user: Poster,
    claim_id: PostedClaim,
    decision: str = Form(""),
    reason: str = Form(""),
    amount: str = Form(""),
    forgery: str = Form(""),
    forgery_asked: str = Form(""),
    buyer_note: str = Form(""),
    assessment: str | None = Form(None),
) -> Response:
    settings = runtime_of(request).settings
    # The form's box "the evidence is forged" (ticked by default) speaks for a rejection only,
    # and only where the form showed it (``forgery_asked``): a form without it (a page from
    # before, a script) gets the API's default, not "no forgery" by omission.
    forged = (forgery == "on") if decision == "reject" and forgery_asked == "1" else None
    try:
        check_text("reason", reason, MAX_REASON)
        check_text("buyer_note", buyer_note, MAX_REASON)
        value = _amount(amount)
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}", "decision")
    return _act(
        request,
        claim_id,
        user,
        decision,
        lambda store, actor, claim: cases.decide(
            store,
            actor,
            claim,
            decision,
            reason,
            value,
            settings,
            forgery=forged,
            buyer_note=buyer_note,
            # The analysis the page showed, "none" where it showed none (an empty field reads as
            # absent); a page from before this field: not checked.
            seen_assessment="" if assessment == "none" else assessment,
        ),
        "decision",
    )


@router.post("/claims/{claim_id}/appeal")
def appeal(
    request: Request, user: Poster, claim_id: PostedClaim, reason: str = Form("")
) -> Response:
    """The buyer or the merchant contests a decision or an automatic approval, as in the API."""
    settings = runtime_of(request).settings
    try:
        check_text("reason", reason, MAX_REASON)
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}")
    return _act(
        request,
        claim_id,
        user,
        "appealed",
        lambda store, actor, claim: cases.appeal(store, actor, claim, reason, settings=settings),
    )


@router.post("/claims/{claim_id}/assign")
def assign_to_me(
    request: Request, user: Poster, claim_id: PostedClaim, release: str = Form("")
) -> Response:
    return _act(
        request,
        claim_id,
        user,
        "assigned",
        lambda store, actor, claim: cases.assign(
            store, actor, claim, None if release else user.key_id, runtime_of(request).settings
        ),
    )


@router.post("/claims/{claim_id}/evidence")
async def evidence(
    request: Request,
    user: Poster,
    claim_id: PostedClaim,
    kind: str = Form(""),
    statement: str = Form(""),
    file: UploadFile | None = None,
    once: str = Form("", max_length=64),
) -> Response:
    runtime = runtime_of(request)
    try:
        # The API's rules, word for word: a kind from its list (the API's pattern is built from
        # the same EVIDENCE_KINDS), a statement within its length.
        if kind not in EVIDENCE_KINDS:
            raise RefundlensError("evidence.bad_kind", "Unknown evidence kind.")
        check_text("statement", statement, MAX_STATEMENT)
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}")

    try:  # a kind this party may not send is refused before its file is read
        cases.check_evidence_kind(cases.Actor(user.key_id, user.role), kind)
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}")

    def room() -> None:  # a party at its limit makes the server decode nothing
        with runtime.db.session() as session:
            claim = session.get(Claim, claim_id)
            if claim is not None:
                cases.check_evidence_room(
                    SqlStore(session),
                    cases.Actor(user.key_id, user.role),
                    claim,
                    runtime.settings,
                )

    upload = None
    if file is not None and file.filename:
        limit = (
            runtime.settings.video_max_bytes
            if kind == "packing_video"
            else runtime.settings.max_file_bytes
        )
        if file.size is not None and file.size > limit:
            return _back(request, claim_id, "error=media.too_large")
        try:
            await upload_memory.reserve(limit + 1 if file.size is None else file.size)
        except RefundlensError as exc:
            return _back(request, claim_id, f"error={exc.code}")
        data = await file.read(limit + 1)
        if len(data) > limit:
            return _back(request, claim_id, "error=media.too_large")
        upload = (file_name(file.filename), data)

    # The form's one-time value, with what it says, is its Idempotency-Key: the same form sent
    # twice adds its evidence once, and the second is answered as the first was, even where the
    # first brought the party to its limit (a review: it read "too many"); the page restored by
    # "back" and sent with other words or another file is another request, not a reused key.
    fingerprint = idempotency.evidence_fingerprint(claim_id, kind, statement, upload)
    key = idempotency.key_for(user.key_id, f"web:{once}:{fingerprint}" if once else None)

    def sent_before() -> bool:
        with runtime.db.session() as session:
            return idempotency.replayed_evidence(session, key, fingerprint) is not None

    try:
        if key is not None and await run_in_threadpool(sent_before):
            return _back(request, claim_id, "done=evidence")
        await run_in_threadpool(room)
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}")
    if upload is not None:
        checked = upload
        try:
            await run_in_threadpool(
                upload_slot(
                    runtime,
                    lambda: cases.check_evidence(
                        cases.Actor(user.key_id, user.role), kind, checked, runtime.settings
                    ),
                )
            )
        except RefundlensError as exc:
            return _back(request, claim_id, f"error={exc.code}")

    def add(store: SqlStore, actor: cases.Actor, claim: Claim) -> None:
        if idempotency.replayed_evidence(store.session, key, fingerprint) is not None:
            return
        item = cases.add_evidence(
            store, runtime.blobs, actor, claim, kind, statement, upload, settings=runtime.settings
        )
        idempotency.remember_evidence(store.session, key, item, fingerprint)

    def act() -> Response:
        try:
            return _act(request, claim_id, user, "evidence", add)
        except IntegrityError:  # the same form, sent twice at once: the first one added it
            if key is None:
                raise
            return _back(request, claim_id, "done=evidence")

    try:  # a statement decodes nothing: only a file waits for a decode slot
        return await run_in_threadpool(upload_slot(runtime, act) if upload is not None else act)
    except RefundlensError as exc:  # no slot free in time: nothing was decoded or stored
        return _back(request, claim_id, f"error={exc.code}")


@router.post("/claims/{claim_id}/capture-link")
def capture_link(request: Request, user: Poster, claim_id: PostedClaim) -> Response:
    """The buyer asked for a live capture opens the capture page with a new one-time token."""
    runtime = runtime_of(request)
    if user.role not in ("buyer", "admin"):  # as the API: the buyer takes its own photos
        return _back(request, claim_id, "error=auth.forbidden")
    if not cases.page_captures_allowed(runtime.settings):
        return _back(request, claim_id, "error=capture.app_required")
    try:
        with runtime.db.session() as session:
            claim = session.get(Claim, claim_id, with_for_update=True, populate_existing=True)
            assert claim is not None
            token, _ = cases.issue_capture_token(
                SqlStore(session),
                cases.Actor(user.key_id, user.role),
                claim,
                runtime.settings,
                retire_oldest=True,  # the page's links are never shown: the oldest ends
            )
    except RefundlensError as exc:
        return _back(request, claim_id, f"error={exc.code}")
    return RedirectResponse(f"/web/capture/{token}", status_code=303)
