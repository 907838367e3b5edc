"""Tenants: the platform and its merchants (an admin saves them; a shop and its reviewers
read their own)."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import Select, select

from ...errors import NotFound, RefundlensError
from ...store.sql import audit
from ...store.sql.models import Tenant
from ...workers.webhooks import MIN_SECRET
from ..auth import Principal
from ..deps import Admin, SessionDep, Who, require
from ..fields import FieldError
from ..schemas import TenantIn, TenantOut, TenantPageOut

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
    if tenant.kind != body.kind:
        # A shop does not become the platform: its keys, claims and reviewers are a shop's. The
        # change was answered 201 and ignored (an integrator's walkthrough).
        raise FieldError(
            "kind",
            f"tenant {body.id!r} is a {tenant.kind} tenant; a tenant's kind does not change "
            "(send its kind, or save another id)",
        )
    # Saving a tenant again updates what it sends: without webhook_url (or its secret) keeps
    # the one on file, "" removes the webhook. Leaving it out once removed it, and the shop's
    # events went to the log unseen (an integrator's walkthrough renamed a shop so).
    url = tenant.webhook_url if body.webhook_url is None else (body.webhook_url or None)
    secret = body.webhook_secret if body.webhook_secret is not None else tenant.webhook_secret
    if url is None:
        # A webhook removed takes its secret along: kept, it signed the events of the next
        # receiver set without one, which removing the URL first let through (a walkthrough).
        secret = None
    if url is not None and not _sendable(url):
        raise FieldError(
            "webhook_url",
            "a webhook_url is an http:// or https:// URL with a host name the client can resolve "
            "(it could not be parsed, or its host is not a valid name)",
        )
    if (
        url is not None
        and body.webhook_secret is None
        and tenant.webhook_url
        and _origin(url) != _origin(tenant.webhook_url)
    ):
        # The secret on file is the old receiver's: it could sign events to the new one (a
        # review). A receiver elsewhere gets a secret of its own.
        raise FieldError(
            "webhook_secret",
            "a webhook_url at another scheme, host or port needs a webhook_secret of its own "
            "(the one on file is the previous receiver's)",
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
    return tenant_out(tenant, p)


def tenant_out(tenant: Tenant, reader: Principal) -> TenantOut:
    """The tenant as ``reader`` may read it: the webhook URL whole for an admin (who set it);
    for a shop or a reviewer only where it goes (:func:`_without_secrets`)."""
    url = tenant.webhook_url
    if url and reader.role != "admin":
        url = _without_secrets(url)
    return TenantOut(
        id=tenant.id,
        kind=tenant.kind,
        name=tenant.name,
        webhook_url=url,
        webhook_secret_set=bool(tenant.webhook_secret),
    )


def _origin(url: str) -> str:
    """Where ``url`` posts to: its scheme, host and port."""
    import httpx

    try:
        parsed = httpx.URL(url)
        return f"{parsed.scheme}://{parsed.host}:{parsed.port}"
    except Exception:
        return url


def _without_secrets(url: str) -> str:
    """The scheme, host and port alone: a user and password, a query and a fragment may carry a
    secret, and so may the path (Slack, Teams and Discord put their token there: a security
    review read one as a shop's reviewer)."""
    import httpx

    try:
        parsed = httpx.URL(url)
        port = f":{parsed.port}" if parsed.port is not None else ""
        host = parsed.raw_host.decode("ascii")
        host = f"[{host}]" if ":" in host else host  # an IPv6 address keeps its brackets
        return f"{parsed.scheme}://{host}{port}/"
    except Exception:  # saved URLs parse (create_tenant checks): never answer one that does not
        return ""


_TENANT_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,39}")


def _visible(p: Principal) -> Select[Tenant]:
    """The tenants ``p`` may read: every one for an admin, a shop's own, a reviewer's assigned
    shops; none for a buyer (refused before this)."""
    query = select(Tenant)
    if p.role == "merchant":
        return query.where(Tenant.id == p.tenant_id)
    if p.role == "reviewer":
        return query.where(Tenant.id.in_(sorted(p.tenants)))
    return query


@router.get("/v1/tenants", response_model=TenantPageOut)
def list_tenants(
    s: SessionDep,
    p: Who,
    cursor: Annotated[
        str | None, Query(max_length=40, description="The next_cursor of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TenantPageOut:
    """The tenants this key may read, by id: every one for an admin, its own for a shop, the
    shops a reviewer is assigned. A webhook's secret is never answered, only whether one is
    on file."""
    require(p, "admin", "merchant", "reviewer")
    query = _visible(p).order_by(Tenant.id)
    if cursor:
        if not _TENANT_ID.fullmatch(cursor):
            raise RefundlensError("request.bad_cursor", "The cursor is not one this API returned.")
        query = query.where(Tenant.id > cursor)
    rows = s.execute(query.limit(limit + 1)).scalars().all()
    page = rows[:limit]
    return TenantPageOut(
        items=[tenant_out(t, p) for t in page],
        next_cursor=page[-1].id if len(rows) > limit else None,
    )


@router.get("/v1/tenants/{tenant_id}", response_model=TenantOut)
def get_tenant(tenant_id: Annotated[str, Path(max_length=40)], s: SessionDep, p: Who) -> TenantOut:
    """One tenant, as the list answers it; another shop's reads as none at all."""
    require(p, "admin", "merchant", "reviewer")
    tenant = (
        s.execute(_visible(p).where(Tenant.id == tenant_id)).scalar_one_or_none()
        if _TENANT_ID.fullmatch(tenant_id)
        else None
    )
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant_out(tenant, p)
