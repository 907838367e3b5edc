"""The audit log's hash chain, recomputed on request (an admin's check)."""

from __future__ import annotations

from fastapi import APIRouter

from ...store.sql import audit
from ..deps import Admin, SessionDep
from ..schemas import AuditProblemOut, AuditVerifyOut

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/audit/verify", response_model=AuditVerifyOut)
def verify_audit(s: SessionDep, _admin: Admin) -> AuditVerifyOut:
    checked, problem = audit.verify(s)
    return AuditVerifyOut(
        checked=checked,
        ok=problem is None,
        problem=None
        if problem is None
        else AuditProblemOut(seq=problem.seq, problem=problem.problem),
    )
