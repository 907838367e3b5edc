"""API keys (``Authorization: Bearer rlk_<id>.<secret>``), stored as a SHA-256 of the secret.

Roles: ``admin`` (the platform: everything), ``reviewer`` (the tenants it is assigned),
``merchant`` (its own SKUs, orders and claims), ``buyer`` (its own claims).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import RefundlensError
from ..store.sql.models import ApiKey, Claim, ReviewerAssignment, WebSession, new_id, utcnow
from .fields import MAX_NAME, check_id, check_text

__all__ = [
    "ROLES",
    "Principal",
    "authenticate",
    "can_see_claim",
    "close_web_session",
    "create_key",
    "open_web_session",
    "web_session",
]

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
    # The same rules as the API's ids: a buyer id the API could never send would make a key
    # that matches no order, and a tenant id of any text would reach pages and audit entries.
    for field, value in (("tenant", tenant_id), ("subject", subject)):
        if value is not None:
            check_id(field, value)
    for tenant in assign or []:
        check_id("assign", tenant)
    check_text("label", label, MAX_NAME)
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


# What create_key makes: rlk_ and hex, a dot, a urlsafe secret. Anything else is refused before
# it reaches the database (a NUL byte in a key once made PostgreSQL answer a 500 at login).
_TOKEN = re.compile(r"(rlk_[0-9a-f]{1,36})\.([A-Za-z0-9_-]{1,100})")


def authenticate(session: Session, header: str | None) -> Principal:
    if not header or not header.startswith("Bearer "):
        raise AuthError("auth.missing", "Send an API key as 'Authorization: Bearer <key>'.")
    match = _TOKEN.fullmatch(header[len("Bearer ") :].strip())
    row = session.get(ApiKey, match[1]) if match else None
    if (
        match is None
        or row is None
        or row.revoked
        or not hmac.compare_digest(row.secret_hash, _digest(match[2]))
    ):
        raise AuthError("auth.invalid", "The API key is unknown or revoked.")
    return _principal(session, row)


def _principal(session: Session, row: ApiKey) -> Principal:
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


# --- web sessions: the page's cookie carries a random token, never the API key itself ---


def open_web_session(session: Session, principal: Principal, hours: float) -> tuple[str, str]:
    """A new login for ``principal``, valid ``hours``. Returns (cookie token, CSRF token); the
    table keeps only the cookie token's SHA-256, so a copy of the database opens no session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    # Expired logins are deleted as new ones open: the table holds only live sessions.
    session.query(WebSession).filter(WebSession.expires_at < now).delete()
    session.add(
        WebSession(
            id=_digest(token),
            key_id=principal.key_id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + dt.timedelta(hours=hours),
        )
    )
    return token, csrf


def web_session(session: Session, token: str | None) -> tuple[Principal, str] | None:
    """(principal, CSRF token) of a live session, or None (unknown, expired, logged out, or its
    API key revoked since)."""
    if not token or len(token) > 100:
        return None
    row = session.get(WebSession, _digest(token))
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=dt.UTC)
    key = session.get(ApiKey, row.key_id)
    if expires <= utcnow() or key is None or key.revoked:
        return None
    return _principal(session, key), row.csrf_token


def close_web_session(session: Session, token: str | None) -> None:
    """Log out: the session's row is deleted, so its cookie opens nothing any more."""
    if token and len(token) <= 100:
        row = session.get(WebSession, _digest(token))
        if row is not None:
            session.delete(row)
