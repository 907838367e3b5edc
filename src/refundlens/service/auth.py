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

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import RefundlensError
from ..store.sql import audit
from ..store.sql.models import (
    ApiKey,
    Claim,
    ReviewerAssignment,
    SignInLink,
    WebSession,
    new_id,
    utcnow,
)
from .fields import MAX_NAME, check_id, check_text

__all__ = [
    "LINK_TOKEN",
    "ROLES",
    "Principal",
    "authenticate",
    "can_see_claim",
    "close_web_session",
    "create_key",
    "issue_sign_in_link",
    "open_web_session",
    "redeem_sign_in_link",
    "sign_in_link_usable",
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
    *,
    by: str | None = None,
) -> str:
    """Store a new key and return its full token (shown once; only a hash is kept). ``by``
    names who made it in the audit log (``key.created``): a key that can decide claims or read
    buyers' data must not appear without trace. None for a key whose making is recorded by its
    caller under another action."""
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
    if by is not None:
        details: dict[str, object] = {"key": key_id, "role": role}
        details.update({"tenant": tenant_id} if tenant_id else {})
        details.update({"subject": subject} if subject else {})
        details.update({"assign": sorted(assign)} if assign else {})
        details.update({"label": label} if label else {})
        audit.append(session, by, "key.created", details=details)
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


# --- one-time sign-in links: the platform's app logs a buyer into the web page ---

LINK_KEY_LABEL = "web sign-in links"
"""The label of the key a buyer's sign-in links open sessions for (``keys list`` shows it)."""

LINK_TOKEN = re.compile(r"sil_[0-9a-f]{20}\.[A-Za-z0-9_-]{32}")
"""What ``issue_sign_in_link`` makes: anything else is never looked up."""


def _link_key(session: Session, buyer_id: str, by: str) -> str:
    """The id of the buyer key that ``buyer_id``'s links log in with: made on the first link, its
    secret never shown (links are its only way in). Revoking it (``keys revoke``) ends the
    buyer's sessions and refuses new links; a new key with the same label (``keys create --role
    buyer --subject ID --label "web sign-in links"``) lets the buyer in again."""
    audit.lock(session)  # two first links at once must not make two keys
    rows = (
        session.execute(
            select(ApiKey)
            .where(
                ApiKey.role == "buyer",
                ApiKey.subject == buyer_id,
                ApiKey.label == LINK_KEY_LABEL,
            )
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
        .scalars()
        .all()
    )
    live = [row for row in rows if not row.revoked]
    if live:
        return live[0].id
    if rows:
        raise AuthError(
            "auth.buyer_revoked",
            "This buyer's sign-in key is revoked: no link is made for it (a new key with the "
            "label 'web sign-in links' lets it in again).",
        )
    return create_key(session, "buyer", subject=buyer_id, label=LINK_KEY_LABEL, by=by).split(".")[0]


def issue_sign_in_link(
    session: Session, buyer_id: str, minutes: float, by: str = "system"
) -> tuple[str, dt.datetime]:
    """A new one-time link token for ``buyer_id`` and when it ends. Only its secret's SHA-256 is
    stored; expired links are deleted as new ones are made."""
    check_id("buyer_id", buyer_id)
    key_id = _link_key(session, buyer_id, by)
    now = utcnow()
    session.query(SignInLink).filter(SignInLink.expires_at < now).delete()
    link_id, secret = new_id("sil"), secrets.token_urlsafe(24)
    expires = now + dt.timedelta(minutes=minutes)
    session.add(
        SignInLink(
            id=link_id,
            key_id=key_id,
            secret_hash=_digest(secret),
            created_at=now,
            expires_at=expires,
        )
    )
    return f"{link_id}.{secret}", expires


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def sign_in_link_usable(session: Session, token: str) -> dt.datetime | None:
    """When the link ``token`` ends, if it may be used now (well formed, known, its secret right,
    unused, not expired, its key not revoked); else None. Changes nothing."""
    match = LINK_TOKEN.fullmatch(token)
    row = session.get(SignInLink, token.split(".")[0]) if match else None
    if (
        row is None
        or not hmac.compare_digest(row.secret_hash, _digest(token.split(".")[1]))
        or row.used_at is not None
        or _aware(row.expires_at) <= utcnow()
    ):
        return None
    key = session.get(ApiKey, row.key_id)
    return None if key is None or key.revoked else _aware(row.expires_at)


def redeem_sign_in_link(session: Session, token: str, hours: float) -> tuple[str, str] | None:
    """Spend the link ``token`` and open a web session for its buyer: (cookie token, CSRF token),
    or None where the link may not be used. Two redemptions at once: one wins (the link is
    marked used by a conditional update, which one transaction alone can make)."""
    if sign_in_link_usable(session, token) is None:
        return None
    link_id = token.split(".")[0]
    now = utcnow()
    spent = session.execute(
        update(SignInLink)
        .where(SignInLink.id == link_id, SignInLink.used_at.is_(None))
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.get(SignInLink, link_id)
    key = session.get(ApiKey, row.key_id) if row is not None else None
    if key is None:
        return None
    audit.append(session, key.id, "buyer.signed_in", details={"link": link_id})
    return open_web_session(session, _principal(session, key), hours)
