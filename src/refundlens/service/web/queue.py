"""The claims list: a reviewer's queue, a merchant's or a buyer's own claims, with filters."""

from __future__ import annotations

import functools
import math
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from ...cases.buyer import buyer_deadline
from ...cases.states import DEADLINE_FOR, ClaimState
from ...detectors import all_detector_classes
from ...store.sql.models import Claim, Decision, Order, Sku, Tenant
from ...store.sql.queries import latest_assessment
from ..fields import MAX_ID, FieldError, check_text
from .common import Viewer, hours_left, key_labels, page, refused, runtime_of

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

QUEUE_STATES = ("under_review", "awaiting_merchant", "awaiting_capture", "appealed")


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is None or math.isfinite(value) else None


@router.get("/queue", response_class=HTMLResponse)
def queue(
    request: Request,
    user: Viewer,
    state: str | None = None,
    merchant: str | None = None,
    action: str | None = None,
    code: str | None = None,
    min_amount: str | None = None,
    min_risk: str | None = None,
    mine: str | None = None,
    offset: str | None = None,
) -> Response:
    # An empty field of the filter form means "any"; a number that does not parse, too.
    amount_floor = _number(min_amount)
    risk_floor = _number(min_risk)
    if user.role == "buyer":
        # Filtering by a finding code, the action or the risk would tell a buyer what the
        # analysis saw in its own claim: a buyer filters by state only.
        action = code = None
        risk_floor = None
    try:
        for name, value in (("state", state), ("merchant", merchant), ("action", action)):
            check_text(name, value or "", MAX_ID)
        check_text("code", code or "", 200)
    except FieldError as exc:
        return refused(request, user, exc.code, 422)
    settings = runtime_of(request).settings
    size = max(1, settings.web_queue_page_size)
    # Offset paging (?offset=, a multiple of the page size from the "next page" link): one
    # page loads at most web_queue_page_size claims, and reads as many assessments for ?code=.
    # At most 18 digits: Python refuses to read an integer of over 4,300 (a 500: a security
    # review), and no queue has a quintillion claims.
    digits = offset and offset.isascii() and offset.isdigit() and len(offset) <= 18
    skip = int(offset) if digits and offset else 0
    with runtime_of(request).db.session() as session:
        scope = []
        if user.role == "merchant":
            scope.append(Claim.merchant_id == user.tenant_id)
        elif user.role == "buyer":
            scope.append(Claim.buyer_id == user.subject)
        elif user.role == "reviewer":
            scope.append(Claim.merchant_id.in_(sorted(user.tenants)))
        counts: dict[str, int] = {
            str(name): int(n)
            for name, n in session.execute(
                select(Claim.state, func.count()).where(*scope).group_by(Claim.state)
            )
        }
        query = select(Claim).where(*scope)
        if state:
            query = query.where(Claim.state == state)
        elif user.role in ("reviewer", "admin"):
            query = query.where(Claim.state.in_(QUEUE_STATES))
        if merchant:
            query = query.where(Claim.merchant_id == merchant)
        if mine:
            query = query.where(Claim.assigned_to == user.key_id)
        if action:
            query = query.where(Claim.action == action)
        if amount_floor is not None:
            query = query.where(Claim.amount >= amount_floor)
        if risk_floor is not None:
            # In percent on the page, as the risk bars show it.
            query = query.where(Claim.risk.is_not(None), Claim.risk * 100 >= risk_floor)
        if user.role == "buyer":
            # A buyer sees only its own deadline (to send a live capture): those claims first,
            # nearest first, then the newest. Sorted by the deadlines it cannot see, its list
            # read as unsorted (a buyer's walkthrough).
            waiting = Claim.state == ClaimState.AWAITING_CAPTURE.value
            query = query.order_by(~waiting, case((waiting, Claim.deadline_at)), Claim.seq.desc())
        else:
            # Nearest deadline first, claims with none last; the claim number keeps pages stable.
            query = query.order_by(Claim.deadline_at.is_(None), Claim.deadline_at, Claim.seq)
        rows = list(session.execute(query.offset(skip).limit(size + 1)).scalars())
        more = len(rows) > size
        rows = rows[:size]
        wanted = (code or "").strip().lower()
        if wanted:
            # A finding code is in the reports, not a column: it filters this page's claims
            # only (a page may show fewer; the next page goes on after them).
            keep = []
            for r in rows:
                latest = latest_assessment(session, r.id)
                codes = {
                    f["code"]
                    for image in (latest.report["images"] if latest else [])
                    for f in image["findings"]
                }
                # Part of a code finds it too ("derived": reference.derived), as a person
                # types it; a "Nothing here" for a code's last word helped no one.
                if any(wanted in c for c in codes):
                    keep.append(r)
            rows = keep
        hide = user.role == "buyer"  # never the risk or the machine's action (cases/buyer.py)
        products, shops = _products_and_shops(session, rows)
        outcomes = _outcomes(session, [r.id for r in rows if r.state in ("decided", "final")])
        # Appealed claims this person decided before: another person decides them
        # (appeal_decided_by_another); with one reviewer they sat at the top of its queue with
        # nothing to say it could not act (a walkthrough).
        open_ids = [r.id for r in rows if r.state not in ("approved", "decided", "final")]
        recused = (
            set(
                session.execute(
                    select(Decision.claim_id).where(
                        Decision.claim_id.in_(open_ids), Decision.decided_by == user.key_id
                    )
                ).scalars()
            )
            if open_ids
            and user.role in ("reviewer", "admin")
            and settings.appeal_decided_by_another
            else set()
        )
        items = [
            {
                "id": r.id,
                "state": r.state,
                "outcome": outcomes.get(r.id),
                "risk": None if hide else r.risk,
                "action": None if hide else r.action,
                # Why it is here, beside the action (a reviewer's walkthrough could not tell
                # from the queue); never a buyer's to read: it may name what the analysis saw.
                "why": None if hide or r.state in ("decided", "final") else r.routing_reason,
                "amount": r.amount,
                "merchant": r.merchant_id,
                "shop": shops.get(r.merchant_id) or r.merchant_id,
                "product": products.get(r.order_id, ("", "", ""))[0],
                "order": products.get(r.order_id, ("", "", ""))[1],
                "currency": products.get(r.order_id, ("", "", ""))[2],
                "type": r.claim_type,
                "deadline_for": DEADLINE_FOR.get(r.state),
                "hours_left": hours_left(
                    buyer_deadline(r.state, r.deadline_at) if hide else r.deadline_at
                ),
                "assigned": r.assigned_to,
                "recused": r.id in recused,
            }
            for r in rows
        ]
        names = key_labels(session, user, {r.assigned_to for r in rows})
    filters = {
        "state": state or "",
        "merchant": merchant or "",
        "action": action or "",
        "code": code or "",
        "min_amount": "" if amount_floor is None else f"{amount_floor:g}",
        "min_risk": "" if risk_floor is None else f"{risk_floor:g}",
        "mine": bool(mine),
    }
    kept = {k: ("1" if k == "mine" else v) for k, v in filters.items() if v}
    # What was typed and not used is said, not dropped: "abc" as an amount filtered nothing
    # without a word, and a code no finding has read as "nothing here" (a new user's
    # walkthrough).
    unread = [
        name
        for name, typed, read in (
            ("min_amount", min_amount, amount_floor),
            ("min_risk", min_risk if user.role != "buyer" else None, risk_floor),
        )
        if typed and typed.strip() and read is None
    ]
    asked = (code or "").strip().lower()
    unknown_code = bool(asked) and not any(asked in known for known in finding_codes())
    return page(
        request,
        "queue.html",
        codes=finding_codes(),
        user=user,
        items=items,
        names=names,
        counts=counts,
        filters=filters,
        unread=unread,
        unknown_code=unknown_code,
        next_page="/web/queue?" + urlencode({**kept, "offset": skip + size}) if more else None,
        first_page="/web/queue?" + urlencode(kept) if skip else None,
    )


def _products_and_shops(
    session: Session, rows: list[Claim]
) -> tuple[dict[str, tuple[str, str, str]], dict[str, str]]:
    """Each listed claim's order by order id: (product: the SKU's title, else the shop's own id
    for it; the order's number at the shop; its currency), and each shop's name by tenant id:
    a buyer knows its claims by what it bought, where and on which order, not by claim id (a
    walkthrough). Two queries a page."""
    orders = {r.order_id for r in rows}
    products = {
        order_id: (title or sku_external_id, order_external_id, currency)
        for order_id, title, sku_external_id, order_external_id, currency in session.execute(
            select(Order.id, Sku.title, Sku.external_id, Order.external_id, Order.currency)
            .join(Sku, Sku.id == Order.sku_id)
            .where(Order.id.in_(orders))
        )
    }
    shops = {
        tenant_id: name
        for tenant_id, name in session.execute(
            select(Tenant.id, Tenant.name).where(Tenant.id.in_({r.merchant_id for r in rows}))
        )
    }
    return products, shops


def _outcomes(session: Session, claim_ids: list[str]) -> dict[str, str]:
    """The latest decision's outcome of each decided claim: "decided" alone told a buyer
    nothing of what was decided (a walkthrough)."""
    latest: dict[str, str] = {}
    for claim_id, outcome in session.execute(
        select(Decision.claim_id, Decision.outcome)
        .where(Decision.claim_id.in_(claim_ids))
        .order_by(Decision.created_at)
    ):
        latest[claim_id] = outcome
    return latest


@functools.cache
def finding_codes() -> tuple[str, ...]:
    """Every finding code the detectors give, offered to the queue's code filter."""
    return tuple(sorted({code for cls in all_detector_classes() for code in cls.codes}))
