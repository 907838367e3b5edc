"""Tenants: the platform and its merchants (an admin's work)."""

from __future__ import annotations

from fastapi import APIRouter

from ...store.sql import audit
from ...store.sql.models import Tenant
from ...workers.webhooks import MIN_SECRET
from ..deps import Admin, SessionDep
from ..fields import FieldError
from ..schemas import TenantIn, TenantOut

__all__ = ["router"]

router = APIRouter()


# Events signed with a short (or empty) key could be forged by anyone who guesses it, and a
# receiver would accept a forged ``claim.decided``.
MIN_WEBHOOK_SECRET = MIN_SECRET


def _sendable(url: str) -> bool:
    """Whether the webhook client can post to ``url``: one that fails to parse (``http://[::1``,
    an invalid IDNA label) once made every delivery round raise."""
    import httpx

    try:
        parsed = httpx.URL(url)
        parsed.host.encode("idna")  # a label over 63 characters fails only when connecting
    except Exception:  # InvalidURL, IDNAError, UnicodeError: each is a URL no post can use
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)


@router.post("/v1/tenants", status_code=201, response_model=TenantOut)
def create_tenant(body: TenantIn, s: SessionDep, p: Admin) -> TenantOut:
    tenant = s.get(Tenant, body.id) or Tenant(id=body.id, kind=body.kind, name=body.name)
    # Saving a tenant again without its secret keeps the one on file: never signs with none.
    url = body.webhook_url or None  # "" clears it, as leaving it out does
    secret = body.webhook_secret if body.webhook_secret is not None else tenant.webhook_secret
    if url is not None and not _sendable(url):
        raise FieldError(
            "webhook_url",
            "a webhook_url is an http:// or https:// URL with a host name the client can resolve "
            "(it could not be parsed, or its host is not a valid name)",
        )
    if url is not None and len(secret or "") < MIN_WEBHOOK_SECRET:
        raise FieldError(
            "webhook_secret",
            f"a webhook_url needs a webhook_secret of at least {MIN_WEBHOOK_SECRET} characters "
            "(events are signed with it)",
        )
    tenant.name, tenant.webhook_url, tenant.webhook_secret = body.name, url, secret
    s.add(tenant)
    audit.append(s, p.key_id, "tenant.saved", details={"tenant": body.id})
    return TenantOut(id=tenant.id, kind=tenant.kind, name=tenant.name)
