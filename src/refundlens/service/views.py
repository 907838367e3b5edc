"""A claim as each principal may see it, as the response models of ``schemas``."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..cases.buyer import buyer_deadline, buyer_status
from ..rendering.i18n import reworded, routing_reason
from ..report import report_for_shop
from ..store.sql.models import AuditEntry, Claim, Decision, Evidence, Order
from ..store.sql.queries import latest_assessment
from .auth import Principal
from .schemas import (
    AppealOut,
    BuyerClaimItemOut,
    BuyerClaimOut,
    BuyerDecisionOut,
    BuyerStatusOut,
    ClaimItemOut,
    ClaimOut,
    DecisionOut,
    EvidenceOut,
    PhotoOut,
)

__all__ = ["claim_item", "claim_items", "claim_view", "iso"]


def iso(moment: dt.datetime | None) -> str | None:
    """A stored time as the API writes it: ISO 8601, UTC where the database kept no zone."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def currencies(s: Session, claims: list[Claim]) -> dict[str, str]:
    """Each claim's order's currency, by order id, in one query."""
    ids = sorted({c.order_id for c in claims})
    if not ids:
        return {}
    rows = s.execute(select(Order.id, Order.currency).where(Order.id.in_(ids)))
    return {order_id: currency for order_id, currency in rows}


def outcomes(s: Session, claims: list[Claim]) -> dict[str, tuple[str, float]]:
    """(outcome, refund) of each claim that stands decided, by claim id, in one query: the last
    decision of a claim decided or final; an approved claim (the analysis approved it) pays
    what it claimed. A platform summing its refunds read every claim one by one (a walkthrough)."""
    out: dict[str, tuple[str, float]] = {}
    decided = {c.id: c for c in claims if c.state in ("decided", "final")}
    if decided:
        rows = s.execute(
            select(Decision)
            .where(Decision.claim_id.in_(sorted(decided)))
            .order_by(Decision.created_at, Decision.id)
        ).scalars()
        for d in rows:  # the last of each claim's wins
            claim = decided[d.claim_id]
            refund = {"approved": claim.amount, "partial": d.amount or 0.0}.get(d.outcome, 0.0)
            out[d.claim_id] = (d.outcome, float(refund))
    for c in claims:
        if c.state == "approved":
            out[c.id] = ("approved", float(c.amount))
    return out


def _common(claim: Claim, currency: str) -> dict[str, object]:
    """What every principal who may see the claim is told of it."""
    return {
        "id": claim.id,
        "order_id": claim.order_id,
        "merchant_id": claim.merchant_id,
        "buyer_id": claim.buyer_id,
        "type": claim.claim_type,
        "reason": claim.reason,
        "amount": claim.amount,
        "currency": currency,
        "state": claim.state,
        "deadline_at": iso(claim.deadline_at),
        "created_at": iso(claim.created_at),
        "photos": [
            PhotoOut(
                name=ph.name,
                sha256=ph.sha256,
                live_capture=ph.live_capture,
                damage_box=ph.damage_box,
            )
            for ph in claim.photos
        ],
    }


def _buyer_view(s: Session, claim: Claim) -> BuyerClaimOut:
    """What a buyer sees of its claim (cases/buyer.py): no finding, fact, risk or picture."""
    decision = s.execute(
        select(Decision)
        .where(Decision.claim_id == claim.id)
        .order_by(Decision.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    told = buyer_status(claim.state, decision.outcome if decision else None)
    return BuyerClaimOut.model_validate(
        _common(claim, currencies(s, [claim]).get(claim.order_id, ""))
        | {
            "deadline_at": iso(buyer_deadline(claim.state, claim.deadline_at)),
            "status": BuyerStatusOut.model_validate(told.as_dict()),
            "capture_ask": claim.capture_request_note
            if claim.state == "awaiting_capture"
            else None,
            "decision": None
            if decision is None
            else BuyerDecisionOut.model_validate(
                {
                    "outcome": decision.outcome,
                    "amount": decision.amount,
                    "note": decision.buyer_note,
                    "reviewed_again": claim.state not in ("decided", "final"),
                }
            ),
        }
    )


def claim_view(s: Session, claim: Claim, p: Principal) -> ClaimOut | BuyerClaimOut:
    """The claim as ``p`` may see it (``p`` may see it: deps.visible_claim)."""
    if p.role == "buyer":
        return _buyer_view(s, claim)
    latest = latest_assessment(s, claim.id)
    evidence = [
        EvidenceOut.model_validate(
            {
                "id": e.id,
                "kind": e.kind,
                "by": e.submitted_by,
                "sha256": e.sha256,
                "name": e.name,
                "statement": e.statement,
                "at": iso(e.created_at),
            }
        )
        for e in s.execute(
            select(Evidence)
            .where(Evidence.claim_id == claim.id)
            .order_by(Evidence.created_at, Evidence.id)
        ).scalars()
    ]
    decisions = [
        DecisionOut.model_validate(
            {
                "outcome": d.outcome,
                "amount": d.amount,
                "reason": d.reason,
                "forgery": bool(d.forgery),
                "buyer_note": d.buyer_note,
                "by": d.decided_by,
                "at": iso(d.created_at),
            }
        )
        for d in s.execute(select(Decision).where(Decision.claim_id == claim.id)).scalars()
    ]
    appeals = [
        AppealOut.model_validate(
            {
                "reason": str((a.details or {}).get("reason", "")),
                "by_role": (a.details or {}).get("by"),
                "by": a.actor,
                "at": iso(a.at),
            }
        )
        for a in s.execute(
            select(AuditEntry)
            .where(AuditEntry.claim_id == claim.id, AuditEntry.action == "claim.appealed")
            .order_by(AuditEntry.seq)
        ).scalars()
    ]
    outcome, refund = outcomes(s, [claim]).get(claim.id, (None, None))
    return ClaimOut.model_validate(
        _common(claim, currencies(s, [claim]).get(claim.order_id, ""))
        | {
            "risk": claim.risk,
            "action": claim.action,
            "outcome": outcome,
            "refund": refund,
            "routing_reason": reworded(claim.routing_reason),
            "routing_reason_zh": routing_reason(claim.routing_reason, "zh_CN"),
            "assigned_to": claim.assigned_to,
            "updated_at": iso(claim.updated_at),
            "assessment_id": latest.id if latest is not None else None,
            "assessment": None
            if latest is None
            # A shop reads the buyer's claims at other shops as counted, not told.
            else report_for_shop(latest.report)
            if p.role == "merchant"
            else latest.report,
            "evidence": evidence,
            "decisions": decisions,
            "appeals": appeals,
        }
    )


def claim_items(
    s: Session, claims: list[Claim], p: Principal
) -> list[ClaimItemOut | BuyerClaimItemOut]:
    """Claims as the lines of a list (each order's currency and each outcome read at once)."""
    money = currencies(s, claims)
    ended = outcomes(s, claims) if p.role != "buyer" else {}
    return [claim_item(c, p, money.get(c.order_id, ""), ended.get(c.id)) for c in claims]


def claim_item(
    claim: Claim, p: Principal, currency: str, ended: tuple[str, float] | None = None
) -> ClaimItemOut | BuyerClaimItemOut:
    """A claim as one line of a list; ``ended`` its (outcome, refund) where it stands decided."""
    common = {
        "id": claim.id,
        "order_id": claim.order_id,
        "type": claim.claim_type,
        "state": claim.state,
        "amount": claim.amount,
        "currency": currency,
        "merchant_id": claim.merchant_id,
        "deadline_at": iso(claim.deadline_at),
        "created_at": iso(claim.created_at),
    }
    # A buyer is never shown the risk or the machine's action (cases/buyer.py).
    if p.role == "buyer":
        deadline = buyer_deadline(claim.state, claim.deadline_at)
        return BuyerClaimItemOut.model_validate(common | {"deadline_at": iso(deadline)})
    outcome, refund = ended or (None, None)
    return ClaimItemOut.model_validate(
        common
        | {
            "risk": claim.risk,
            "action": claim.action,
            "outcome": outcome,
            "refund": refund,
            "updated_at": iso(claim.updated_at),
        }
    )
