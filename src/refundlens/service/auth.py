"""API keys (``Authorization: Bearer rlk_<id>.<secret>``), stored as a SHA-256 of the secret.

Roles: ``admin`` (the platform: everything), ``reviewer`` (the tenants it is assigned),
``merchant`` (its own SKUs, orders and claims), ``buyer`` (its own claims).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import RefundlensError
from ..store.models import ApiKey, Claim, ReviewerAssignment, new_id

__all__ = ["ROLES", "Principal", "authenticate", "can_see_claim", "create_key"]

ROLES = ("admin", "reviewer", "merchant", "buyer")


class AuthError(RefundlensError):
    pass


@dataclasses.dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    tenant_id: str | None
    subject: str | None
    tenants: frozenset[str] = frozenset()
    """For reviewers: the merchant tenants they are assigned."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session,
    role: str,
    tenant_id: str | None = None,
    subject: str | None = None,
    label: str = "",
    assign: list[str] | None = None,
) -> str:
    """Store a new key and return its full token (shown once; only a hash is kept)."""
    if role not in ROLES:
        raise AuthError("auth.bad_role", f"Role must be one of {', '.join(ROLES)}.")
    if role in ("merchant",) and not tenant_id:
        raise AuthError("auth.tenant_required", "A merchant key needs --tenant.")
    if role == "buyer" and not subject:
        raise AuthError("auth.subject_required", "A buyer key needs --subject (the buyer id).")
    key_id = new_id("rlk")
    secret = secrets.token_urlsafe(24)
    session.add(
        ApiKey(
            id=key_id,
            secret_hash=_digest(secret),
            role=role,
            tenant_id=tenant_id,
            subject=subject,
            label=label,
        )
    )
    session.flush()
    for tenant in assign or []:
        session.add(ReviewerAssignment(key_id=key_id, tenant_id=tenant))
    return f"{key_id}.{secret}"


def authenticate(session: Session, header: str | None) -> Principal:
    if not header or not header.startswith("Bearer "):
        raise AuthError("auth.missing", "Send an API key as 'Authorization: Bearer <key>'.")
    token = header[len("Bearer ") :].strip()
    key_id, _, secret = token.partition(".")
    row = session.get(ApiKey, key_id) if key_id and secret else None
    if row is None or row.revoked or not hmac.compare_digest(row.secret_hash, _digest(secret)):
        raise AuthError("auth.invalid", "The API key is unknown or revoked.")
    tenants: frozenset[str] = frozenset()
    if row.role == "reviewer":
        tenants = frozenset(
            session.execute(
                select(ReviewerAssignment.tenant_id).where(ReviewerAssignment.key_id == row.id)
            ).scalars()
        )
    return Principal(row.id, row.role, row.tenant_id, row.subject, tenants)


def can_see_claim(principal: Principal, claim: Claim) -> bool:
    if principal.role == "admin":
        return True
    if principal.role == "merchant":
        return claim.merchant_id == principal.tenant_id
    if principal.role == "buyer":
        return claim.buyer_id == principal.subject
    if principal.role == "reviewer":
        return claim.merchant_id in principal.tenants
    return False
