"""Tenants: the platform and its merchants (an admin's work)."""

from __future__ import annotations

from fastapi import APIRouter

from ...store.sql import audit
from ...store.sql.models import Tenant
from ..deps import Admin, SessionDep
from ..schemas import TenantIn, TenantOut

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/tenants", status_code=201, response_model=TenantOut)
def create_tenant(body: TenantIn, s: SessionDep, p: Admin) -> TenantOut:
    tenant = s.get(Tenant, body.id) or Tenant(id=body.id, kind=body.kind, name=body.name)
    tenant.name, tenant.webhook_url, tenant.webhook_secret = (
        body.name,
        body.webhook_url,
        body.webhook_secret,
    )
    s.add(tenant)
    audit.append(s, p.key_id, "tenant.saved", details={"tenant": body.id})
    return TenantOut(id=tenant.id, kind=tenant.kind, name=tenant.name)
