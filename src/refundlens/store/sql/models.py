"""Tables of the claims service (SQLAlchemy 2). Migrations: ``store/migrations`` (Alembic)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiKey",
    "Assessment",
    "AuditEntry",
    "AuditHead",
    "BankEntry",
    "Base",
    "CaptureToken",
    "Claim",
    "ClaimFingerprint",
    "ClaimPhoto",
    "Decision",
    "Evidence",
    "IdempotencyKey",
    "Lease",
    "Order",
    "OrderReference",
    "PackingVideo",
    "ReferencePhoto",
    "ReviewerAssignment",
    "Sku",
    "Tenant",
    "UtcDateTime",
    "VideoFingerprint",
    "WebSession",
    "WebhookEvent",
    "granted_amount",
    "new_id",
    "utcnow",
]


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


NAME_LENGTH = 300
"""The longest file name a row keeps (photos, references, videos, evidence): the service cuts
uploaded names to it, and names made from them leave room for what they add."""


class UtcDateTime(TypeDecorator[dt.datetime]):
    """An instant, stored in UTC and read back aware (UTC), on SQLite and PostgreSQL alike.

    SQLite has no time zones: SQLAlchemy's DATETIME there dropped the offset of an aware value
    without converting it, so ``08:00+08:00`` came back as ``08:00`` UTC, eight hours late. Here
    every value is converted to UTC before it is stored, and every value read is UTC-aware. A
    naive value is taken as UTC (the service itself only makes aware ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UtcDateTime}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # platform | merchant
    name: Mapped[str] = mapped_column(String(200))
    webhook_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    webhook_secret: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))  # admin | reviewer | merchant | buyer
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(100), nullable=True)  # buyer id for buyers
    label: Mapped[str] = mapped_column(String(200), default="")
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ReviewerAssignment(Base):
    __tablename__ = "reviewer_assignments"
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)


class Sku(Base):
    __tablename__ = "skus"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    title: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    references: Mapped[list[ReferencePhoto]] = relationship(
        back_populates="sku", order_by="ReferencePhoto.created_at"
    )
    __table_args__ = (UniqueConstraint("merchant_id", "external_id"),)


class ReferencePhoto(Base):
    __tablename__ = "reference_photos"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sku_id: Mapped[str] = mapped_column(ForeignKey("skus.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    pdq: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sku: Mapped[Sku] = relationship(back_populates="references")


class OrderReference(Base):
    """A frame of the merchant's packing video, kept as a reference for this order."""

    __tablename__ = "order_references"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    video_sha256: Mapped[str] = mapped_column(String(64))
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class PackingVideo(Base):
    """A merchant's packing video, stored at upload and worked on by the task runner: its key
    frames become the order's references (``order_references``) when ``status`` is ``done``.
    ``queued_at`` is its outbox mark, as for claims."""

    __tablename__ = "packing_videos"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    video_sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    submitted_by: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending | done | failed
    error: Mapped[str] = mapped_column(Text, default="")
    frames_kept: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    queued_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(100))
    sku_id: Mapped[str] = mapped_column(ForeignKey("skus.id"))
    buyer_id: Mapped[str] = mapped_column(String(100), index=True)
    buyer_pii: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # Fernet token
    amount: Mapped[float] = mapped_column(Float)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    shipped_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    utc_offset_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The UTC offset the merchant's times were sent in (shipped, else delivered): the analysis
    states the order's times in it, as the merchant wrote them."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("merchant_id", "external_id"),)


class Claim(Base):
    __tablename__ = "claims"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)  # cursor order
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    buyer_id: Mapped[str] = mapped_column(String(100), index=True)
    claim_type: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")
    amount: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(24), index=True)
    risk: Mapped[float | None] = mapped_column(Float, nullable=True)
    action: Mapped[str | None] = mapped_column(String(24), nullable=True)
    routing_reason: Mapped[str] = mapped_column(Text, default="")
    deadline_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    capture_request_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    """What the person who asked for a live capture wrote for the buyer (what to photograph);
    shown to the buyer while the capture is asked."""
    assigned_to: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    """The reviewer's API key id that took the claim."""
    analysing_since: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    analysis_attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    """When the claim's analysis was last handed to the queue; None = not yet (the outbox: a
    claim saved while the broker was down is queued by the tick once it is back)."""
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    """Last sign of life of the analysis running now; a dead one stops beating."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    """When the claim's row last changed (state, action, deadline, reviewer): what a platform's
    sync asks for (``GET /v1/claims?updated_since=``)."""
    photos: Mapped[list[ClaimPhoto]] = relationship(
        back_populates="claim", order_by="ClaimPhoto.position"
    )
    __table_args__ = (Index("ix_claims_state_deadline", "state", "deadline_at"),)


class ClaimPhoto(Base):
    __tablename__ = "claim_photos"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    live_capture: Mapped[bool] = mapped_column(Boolean, default=False)
    damage_box: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    """The buyer's box around the damage on this photo: [left, top, right, bottom] as fractions
    of its width and height (None: not marked)."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claim: Mapped[Claim] = relationship(back_populates="photos")


class CaptureToken(Base):
    """A one-time permission to upload a live capture for one claim, valid until ``expires_at``."""

    __tablename__ = "capture_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column()
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    refusals: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Captures refused on this token; at ``capture_max_refusals`` it is spent (``used_at``)."""


class Assessment(Base):
    """One analysis of a claim: the CLI's JSON (schema 1.x) as stored, exactly once per run."""

    __tablename__ = "assessments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    risk: Mapped[float] = mapped_column(Float)
    action: Mapped[str] = mapped_column(String(24))
    report: Mapped[dict] = mapped_column(JSON)  # type: ignore[type-arg]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("claim_id", "attempt"),)


class Evidence(Base):
    __tablename__ = "evidence"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    kind: Mapped[str] = mapped_column(
        String(24)
    )  # packing_video | reference_photo | statement | other | unboxing_video | capture_clip
    submitted_by: Mapped[str] = mapped_column(String(20))  # merchant | buyer | reviewer
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), default="")
    statement: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Decision(Base):
    __tablename__ = "decisions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    outcome: Mapped[str] = mapped_column(String(16))  # approved | rejected | partial
    amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(40))
    forgery: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """A rejection whose person found the evidence forged: its photos join the forgery bank and
    it counts in the buyer's record. A claim rejected for another reason (not eligible, the
    buyer's own doing) is not a forgery."""
    buyer_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    """What the person deciding wrote for the buyer (``reason`` is for the platform and the
    merchant and may name findings, which a buyer never reads); None where nothing was written."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


REFUSING_OUTCOMES = frozenset({"rejected", "partial"})
"""Decisions that refuse the buyer what it claimed, in whole or in part: while one stands, a
claim of the same type on the order is an appeal in disguise, and one of another type goes to a
person. A partial refund left out, a buyer filed the rest again and it was approved
automatically (a security review: 150 of 150 paid where a person granted 30)."""


def granted_amount(claim: Claim, latest: Decision | None) -> float:
    """What ``claim`` holds on its order: all of its amount while it is open (an appeal reopens
    a rejected claim) or approved (automatically, with no decision); once a person's decision
    closed it (``decided``, ``final``), the latest decision's: all, the decided part of a
    partial refund, nothing when rejected."""
    if claim.state not in ("decided", "final") or latest is None or latest.outcome == "approved":
        return claim.amount
    if latest.outcome == "partial":
        return float(latest.amount or 0.0)
    return 0.0


class AuditEntry(Base):
    """Append-only, hash-chained: ``entry_hash = sha256(prev_hash + canonical JSON of the row)``."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    claim_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    assessment_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    details: Mapped[dict] = mapped_column(JSON)  # type: ignore[type-arg]
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the last audit sequence number and hash. Updating it first serialises appends."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    entry_hash: Mapped[str] = mapped_column(String(64))


class ClaimFingerprint(Base):
    """One claim photo's PDQ hash, for reuse across claims (the index is rebuilt from these)."""

    __tablename__ = "claim_fingerprints"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(40))
    buyer_id: Mapped[str] = mapped_column(String(100), index=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    photo_sha256: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(8), default="full")  # full | c95 | c90 | c80
    pdq: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int] = mapped_column(Integer)
    local_print: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The photo's local print (``reuse.prints``, ``orb1:...``) on its whole-photo row (None on
    the crops' rows, and on rows filed before migration 0020): a confirmed forgery's bank entry
    carries it, so that a cropped copy is still recognised."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


@dataclasses.dataclass(frozen=True, slots=True)
class UnprintedVideo:
    """An unboxing video whose frames are not fingerprinted yet, with its claim's owners."""

    claim_id: str
    order_id: str
    buyer_id: str
    merchant_id: str
    sha256: str
    name: str


class VideoFingerprint(Base):
    """One sampled frame of a buyer's video (vPDQ-style frame PDQ), for reuse across claims: the
    same unboxing video sent again, or a claim photo taken from an earlier claim's video."""

    __tablename__ = "video_fingerprints"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    order_id: Mapped[str] = mapped_column(String(40))
    buyer_id: Mapped[str] = mapped_column(String(100), index=True)
    merchant_id: Mapped[str] = mapped_column(String(40))
    video_sha256: Mapped[str] = mapped_column(String(64), index=True)
    seconds: Mapped[float] = mapped_column(Float)
    pdq: Mapped[str] = mapped_column(String(64))
    quality: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BankEntry(Base):
    """A confirmed forgery's fingerprint: ours (``bank`` = this platform) or imported, signed."""

    __tablename__ = "bank_entries"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    bank: Mapped[str] = mapped_column(String(100), index=True)
    signer: Mapped[str] = mapped_column(String(100))
    pdq: Mapped[str] = mapped_column(String(64))
    codes: Mapped[list] = mapped_column(JSON)  # type: ignore[type-arg]
    confirmed_at: Mapped[dt.datetime] = mapped_column()
    buyer_hmac: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # local entries only
    imported_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    local_print: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The photo's local print as a bank file carries it (``orb1:...``, ``reuse.prints``), so
    that a cropped copy still matches; None for format-1 imports and for this platform's own
    entries (``bank export`` computes theirs from the kept photo)."""
    # Ids are never reused (SQLite's AUTOINCREMENT; PostgreSQL's sequence): the services' index
    # caches read new entries by rising id (reuse.history.IndexCache).
    __table_args__ = (
        UniqueConstraint("bank", "pdq", "buyer_hmac"),
        {"sqlite_autoincrement": True},
    )


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # api key id + header value
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"))
    request_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """What the request said (fields and files): the same key with another request is refused."""
    evidence_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    """The evidence a request under this key added (``POST /v1/claims/{id}/evidence``); none for
    a claim filed."""
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Lease(Base):
    """A named lease: one holder at a time runs what it guards, until ``until`` at the latest
    (a holder that died lets go then). The tick's queueing part takes ``tick.queue``: several
    workers may run Celery's beat, and two ticks at once handed the same claim to the queue
    twice."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    until: Mapped[dt.datetime] = mapped_column()


class WebSession(Base):
    """A login on the web page: the cookie carries a random token, the table its hash, the
    key it stands for, its CSRF token and when it ends. Logging out deletes the row."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's token
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


class SignInLink(Base):
    """A one-time link that logs a buyer into the web page (``POST /v1/buyers/{id}/sign-in-link``,
    sent by the platform's app): the table keeps the secret's SHA-256, the buyer key it opens a
    session for, when it ends and when it was used."""

    __tablename__ = "sign_in_links"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class WebhookEvent(Base):
    """Outbox of notifications: delivered at least once, de-duplicated by ``id`` at the receiver."""

    __tablename__ = "webhook_events"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    claim_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    body: Mapped[dict] = mapped_column(JSON)  # type: ignore[type-arg]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending | delivered | failed | logged
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
