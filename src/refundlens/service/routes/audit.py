"""The audit log's hash chain, recomputed on request (an admin's check)."""

from __future__ import annotations

from fastapi import APIRouter

from ...errors import RefundlensError
from ...store.sql import audit
from ..deps import Admin, RuntimeDep, SessionDep
from ..schemas import AuditProblemOut, AuditVerifyOut

__all__ = ["router"]

router = APIRouter()


@router.get("/v1/audit/verify", response_model=AuditVerifyOut)
def verify_audit(s: SessionDep, _admin: Admin, runtime: RuntimeDep) -> AuditVerifyOut:
    try:
        points = audit.configured_checkpoints(s, runtime.settings.audit_checkpoint_path)
    except RefundlensError as exc:  # the evidence itself is damaged: not a pass
        return AuditVerifyOut(
            checked=0, ok=False, problem=AuditProblemOut(seq=0, problem=exc.message)
        )
    checked, problem = audit.verify(s, checkpoints=points)
    return AuditVerifyOut(
        checked=checked,
        ok=problem is None,
        checkpoints=len(points),
        problem=None
        if problem is None
        else AuditProblemOut(seq=problem.seq, problem=problem.problem),
    )
