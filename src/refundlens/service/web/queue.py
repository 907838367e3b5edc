"""The claims list: a reviewer's queue, a merchant's or a buyer's own claims, with filters."""

from __future__ import annotations

import datetime as dt
import math

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from ...store.sql.models import Claim
from ...store.sql.queries import latest_assessment
from ..fields import MAX_ID, FieldError, check_text
from .common import Viewer, hours_left, page, refused, runtime_of

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
    with runtime_of(request).db.session() as session:
        query = select(Claim)
        if user.role == "merchant":
            query = query.where(Claim.merchant_id == user.tenant_id)
        elif user.role == "buyer":
            query = query.where(Claim.buyer_id == user.subject)
        elif user.role == "reviewer":
            query = query.where(Claim.merchant_id.in_(sorted(user.tenants)))
        counts: dict[str, int] = {}
        rows = list(session.execute(query).scalars())
        for row in rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        if state:
            rows = [r for r in rows if r.state == state]
        elif user.role in ("reviewer", "admin"):
            rows = [r for r in rows if r.state in QUEUE_STATES]
        if merchant:
            rows = [r for r in rows if r.merchant_id == merchant]
        if mine:
            rows = [r for r in rows if r.assigned_to == user.key_id]
        if action:
            rows = [r for r in rows if r.action == action]
        if amount_floor is not None:
            rows = [r for r in rows if r.amount >= amount_floor]
        if risk_floor is not None:
            # In percent on the page, as the risk bars show it.
            rows = [r for r in rows if r.risk is not None and 100 * r.risk >= risk_floor]
        if code:
            keep = []
            for r in rows:
                latest = latest_assessment(session, r.id)
                codes = {
                    f["code"]
                    for image in (latest.report["images"] if latest else [])
                    for f in image["findings"]
                }
                if code in codes:
                    keep.append(r)
            rows = keep
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        rows.sort(
            key=lambda r: (
                r.deadline_at.replace(tzinfo=dt.UTC)
                if r.deadline_at and r.deadline_at.tzinfo is None
                else (r.deadline_at or far)
            )
        )
        hide = user.role == "buyer"  # never the risk or the machine's action (cases/buyer.py)
        items = [
            {
                "id": r.id,
                "state": r.state,
                "risk": None if hide else r.risk,
                "action": None if hide else r.action,
                "amount": r.amount,
                "merchant": r.merchant_id,
                "type": r.claim_type,
                "hours_left": hours_left(r.deadline_at),
                "assigned": r.assigned_to,
            }
            for r in rows
        ]
    return page(
        request,
        "queue.html",
        user=user,
        items=items,
        counts=counts,
        filters={
            "state": state or "",
            "merchant": merchant or "",
            "action": action or "",
            "code": code or "",
            "min_amount": "" if amount_floor is None else f"{amount_floor:g}",
            "min_risk": "" if risk_floor is None else f"{risk_floor:g}",
            "mine": bool(mine),
        },
    )
