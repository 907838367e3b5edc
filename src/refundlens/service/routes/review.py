"""What people do to a claim under review: decide, appeal, assign."""

from __future__ import annotations

from fastapi import APIRouter

from ... import cases
from ...store.sql.repositories import SqlStore
from ..deps import Appellant, HeldClaim, RuntimeDep, SessionDep, Who, actor
from ..schemas import AppealIn, AssignIn, ClaimAnswer, DecisionIn
from ..views import claim_view

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/claims/{claim_id}/decision", response_model=ClaimAnswer)
def decide(
    body: DecisionIn, claim: HeldClaim, s: SessionDep, p: Who, runtime: RuntimeDep
) -> ClaimAnswer:
    """A person's decision. The same decision sent again by the same key, word for word, while
    it stands (a retry after a lost answer) is answered with the claim as it is, not refused."""
    store = SqlStore(s)
    said = (body.decision, body.reason, body.amount)
    if cases.repeats_last_decision(
        store, actor(p), claim, *said, forgery=body.forgery, buyer_note=body.buyer_note
    ):
        return claim_view(s, claim, p)
    cases.decide(
        store,
        actor(p),
        claim,
        body.decision,
        body.reason,
        body.amount,
        runtime.settings,
        forgery=body.forgery,
        buyer_note=body.buyer_note,
        seen_assessment=body.assessment_id,
    )
    return claim_view(s, claim, p)


@router.post("/v1/claims/{claim_id}/appeal", response_model=ClaimAnswer)
def appeal(
    body: AppealIn, claim: HeldClaim, s: SessionDep, p: Appellant, runtime: RuntimeDep
) -> ClaimAnswer:
    cases.appeal(SqlStore(s), actor(p), claim, body.reason, settings=runtime.settings)
    return claim_view(s, claim, p)


@router.post("/v1/claims/{claim_id}/assign", response_model=ClaimAnswer)
def assign(
    body: AssignIn, claim: HeldClaim, s: SessionDep, p: Who, runtime: RuntimeDep
) -> ClaimAnswer:
    cases.assign(SqlStore(s), actor(p), claim, body.reviewer, runtime.settings)
    return claim_view(s, claim, p)
