"""The storage boundary of the case workflow: what ``cases`` may ask of the store, and nothing else.

In the manner of HMA's storage interfaces (python-threatexchange): narrow protocols, one per
subject, gathered in one :class:`Store` that stands for one transaction (a unit of work). Two
implementations keep the same contract, checked by one test suite (``tests/test_store_contract.py``):

- :class:`refundlens.store.memory.MemoryStore`, dictionaries in one process: the workflow's own
  tests and examples, with no database;
- :class:`refundlens.store.sql.repositories.SqlStore`, over a SQLAlchemy session on SQLite or
  PostgreSQL: what the API, the CLI and the workers use.

The records are the service's mapped classes (:mod:`refundlens.store.sql.models`), which the
workflow only ever reads and sets as plain attributes; the memory store keeps them without a
session. Every ``add`` joins the caller's transaction: with SQL, the change, its audit entry and
its notification commit together or not at all. The memory store has no rollback (it serves
tests and examples, never a service).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Protocol

from .sql.audit import AuditProblem
from .sql.models import (
    NAME_LENGTH,
    ApiKey,
    Assessment,
    AuditEntry,
    BankEntry,
    CaptureToken,
    Claim,
    ClaimFingerprint,
    ClaimPhoto,
    Decision,
    Evidence,
    Order,
    OrderReference,
    PackingVideo,
    ReferencePhoto,
    Sku,
    Tenant,
    UnprintedVideo,
    VideoFingerprint,
    WebhookEvent,
    new_id,
    utcnow,
)

__all__ = [
    "NAME_LENGTH",
    "Access",
    "ApiKey",
    "Assessment",
    "Assessments",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "Bank",
    "BankEntry",
    "CaptureToken",
    "Catalogue",
    "Claim",
    "ClaimFingerprint",
    "ClaimPhoto",
    "Claims",
    "Decision",
    "Evidence",
    "EvidenceFiles",
    "FileRef",
    "Fingerprints",
    "Order",
    "OrderReference",
    "Outbox",
    "PackingVideo",
    "ReferencePhoto",
    "Sku",
    "Store",
    "Tenant",
    "UnprintedVideo",
    "VideoFingerprint",
    "WebhookEvent",
    "new_id",
    "utcnow",
]

FileRef = tuple[str, str]
"""A stored file as (sha256 in the blob store, the name it was sent with)."""


class Catalogue(Protocol):
    """Merchants' SKUs with their reference photos, orders, and packing videos."""

    def tenant(self, tenant_id: str) -> Tenant | None: ...

    def platform_webhooks(self) -> list[Tenant]:
        """The platform tenants with a webhook URL: each gets a copy of every event."""
        ...

    def sku(self, sku_id: str) -> Sku | None: ...

    def sku_by_external_id(self, merchant_id: str, external_id: str) -> Sku | None: ...

    def add_sku(self, sku: Sku) -> None: ...

    def add_reference(self, sku: Sku, photo: ReferencePhoto) -> None: ...

    def reference_files(self, sku_id: str, before: dt.datetime | None = None) -> list[FileRef]:
        """The SKU's reference photos, oldest first (only those added at or before ``before``)."""
        ...

    def order(self, order_id: str) -> Order | None: ...

    def order_by_external_id(self, merchant_id: str, external_id: str) -> Order | None: ...

    def add_order(self, order: Order) -> None: ...

    def order_reference_files(
        self, order_id: str, before: dt.datetime | None = None
    ) -> list[FileRef]:
        """Frames kept from the order's packing videos, in video time order (only those kept at
        or before ``before``)."""
        ...

    def add_order_reference(self, row: OrderReference) -> None: ...

    def packing_video(self, video_id: str, *, for_update: bool = False) -> PackingVideo | None: ...

    def add_packing_video(self, row: PackingVideo) -> None: ...

    def pending_packing_videos(self) -> list[tuple[str, dt.datetime | None]]:
        """(id, when last handed to the queue) of videos not yet processed, oldest first."""
        ...

    def packing_videos_of(self, order_id: str) -> list[PackingVideo]:
        """The order's packing videos, oldest first."""
        ...

    def pending_packing_videos_of_shop(self, merchant_id: str) -> int:
        """How many of the shop's packing videos wait for the task runner."""
        ...

    def mark_packing_videos_queued(self, video_ids: Sequence[str], at: dt.datetime) -> None: ...


class Access(Protocol):
    """Who may act: API keys and which merchants a reviewer works for."""

    def api_key(self, key_id: str) -> ApiKey | None: ...

    def reviewer_assigned(self, key_id: str, tenant_id: str) -> bool: ...


class Claims(Protocol):
    """Claims, their photos, decisions and live-capture tokens."""

    def get(self, claim_id: str, *, for_update: bool = False) -> Claim | None:
        """``for_update`` locks the row until the transaction ends (where the store can)."""
        ...

    def next_seq(self) -> int:
        """The next claim number (call with the audit lock held)."""
        ...

    def add(self, claim: Claim) -> None: ...

    def add_photo(self, claim: Claim, photo: ClaimPhoto) -> None:
        """Append to ``claim.photos`` (the claim's loaded photos stay in step)."""
        ...

    def waiting_with_deadline(self, states: Sequence[str]) -> list[Claim]:
        """Claims in ``states`` with a deadline; rows another transaction holds are skipped."""
        ...

    def unchanged_since(self, states: Sequence[str], before: dt.datetime) -> list[Claim]:
        """Claims in ``states`` not changed since ``before`` (``updated_at``), oldest change
        first; rows another transaction holds are skipped."""
        ...

    def in_state(self, state: str) -> list[Claim]: ...

    def open_on_order(self, order_id: str, closed_states: Sequence[str]) -> int:
        """How many of the order's claims are in none of ``closed_states``."""
        ...

    def first_claimed_on_order(self, order_id: str) -> dt.datetime | None:
        """When the order's first claim was filed (None: it has none)."""
        ...

    def claimed_on_order(self, order_id: str, besides: str | None = None) -> float:
        """What the order's claims (all but ``besides``) ask for or were granted
        (:func:`refundlens.store.sql.models.granted_amount` for each)."""
        ...

    def filed_by_buyer(
        self, buyer_id: str, since: dt.datetime, filed_before: int
    ) -> dict[str, tuple[int, float]]:
        """The buyer's claims, at any shop, filed at or after ``since`` and before the claim
        numbered ``filed_before`` (``Claim.seq``): per currency of their orders, how many and
        the amount they asked for."""
        ...

    def rejected_on_order(self, order_id: str, besides: str | None = None) -> list[tuple[str, str]]:
        """(id, type) of the order's claims (all but ``besides``) whose rejection stands: closed
        (``decided``, ``final``) with a rejection or a partial refund (a rejection of the rest)
        as their latest decision (:data:`refundlens.store.sql.models.REFUSING_OUTCOMES`)."""
        ...

    def submitted_queue(self) -> list[tuple[str, dt.datetime | None]]:
        """(id, when last handed to the queue) of ``submitted`` claims, in claim order."""
        ...

    def mark_queued(self, claim_ids: Sequence[str], at: dt.datetime) -> None: ...

    def clear_heartbeats(self, claim_ids: Sequence[str]) -> None:
        """Forget the heartbeat of those claims still ``analysing``."""
        ...

    def beat(self, claim_id: str, attempt: int, at: dt.datetime) -> bool:
        """Record a heartbeat if ``attempt`` is the claim's running analysis; False otherwise."""
        ...

    def add_decision(self, decision: Decision) -> None: ...

    def decisions_of(self, claim_id: str) -> list[Decision]:
        """The claim's decisions, oldest first."""
        ...

    def capture_token(self, token_id: str, *, for_update: bool = False) -> CaptureToken | None: ...

    def add_capture_token(self, token: CaptureToken) -> None: ...

    def capture_tokens_of(self, claim_id: str) -> list[CaptureToken]:
        """The claim's capture tokens, used, expired or live."""
        ...


class Assessments(Protocol):
    """The analyses of claims, one per attempt that finished."""

    def add(self, assessment: Assessment) -> None: ...

    def latest(self, claim_id: str) -> Assessment | None:
        """The claim's most recent analysis (highest attempt), or None before the first."""
        ...

    def last_attempt(self, claim_id: str) -> int | None: ...


class EvidenceFiles(Protocol):
    """What the merchant, the buyer or a reviewer sent to support or contest a claim."""

    def add(self, item: Evidence) -> None: ...

    def of_kind(self, claim_id: str, kind: str) -> list[Evidence]: ...

    def count_by(self, claim_id: str, submitted_by: str, kinds: Collection[str]) -> int:
        """How many items of ``kinds`` one party (a role) has added to the claim."""
        ...


class Fingerprints(Protocol):
    """Perceptual hashes of claim photos and video frames, for reuse across claims."""

    def add_photo_print(self, row: ClaimFingerprint) -> None: ...

    def photo_prints(self, claim_id: str) -> list[ClaimFingerprint]: ...

    def photo_prints_since(
        self, moment: dt.datetime, min_quality: int = 0
    ) -> list[ClaimFingerprint]:
        """Every claim's photo prints added at or after ``moment`` whose PDQ quality is at
        least ``min_quality``, oldest first."""
        ...

    def printed_videos(self, claim_id: str) -> set[str]:
        """The sha256 of the claim's videos whose frames are already fingerprinted."""
        ...

    def unprinted_videos_before(
        self, filed_before: int, since: dt.datetime, states: Collection[str], limit: int
    ) -> list[UnprintedVideo]:
        """Unboxing videos not fingerprinted yet of claims filed at or after ``since`` and
        before the claim numbered ``filed_before``, in ``states`` (those whose analysis has not
        finished): the latest ``limit``, latest first."""
        ...

    def add_video_prints(self, rows: Iterable[VideoFingerprint]) -> None: ...


class Bank(Protocol):
    """Confirmed forgeries' fingerprints: this platform's and imported banks'."""

    def holds(self, bank: str, pdq: str) -> bool: ...

    def add(self, entry: BankEntry) -> None: ...

    def withdraw(self, bank: str, claim_id: str) -> int:
        """Remove ``bank``'s entries made from ``claim_id`` (a person no longer holds the claim
        forged); how many were removed."""
        ...


class Outbox(Protocol):
    """Notifications waiting for delivery (same transaction as the change they report)."""

    def add(self, event: WebhookEvent) -> None: ...


class Leases(Protocol):
    """Named leases, for work that one holder at a time may run (the tick's queueing, when
    several workers run Celery's beat)."""

    def take(self, name: str, holder: str, now: dt.datetime, until: dt.datetime) -> bool:
        """Hold ``name`` until ``until`` if no one else holds it at ``now`` (its holder extends
        it); whether it was taken. With SQL, commit at once: the lease holds from then."""
        ...

    def release(self, name: str, holder: str, now: dt.datetime) -> None:
        """Let go of ``name`` at ``now`` if ``holder`` still holds it."""
        ...


class AuditLog(Protocol):
    """The tamper-evident log (:mod:`refundlens.store.sql.audit` for the chain's rule)."""

    def lock(self) -> None:
        """Take the log's write lock until the transaction ends: a writer that reads before it
        writes (the next claim number, an existing SKU) takes it first."""
        ...

    def append(
        self,
        actor: str,
        action: str,
        *,
        claim_id: str | None = None,
        assessment_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry: ...

    def verify(self) -> tuple[int, AuditProblem | None]:
        """Recompute the chain: (entries checked, the first problem or None)."""
        ...

    def count(self, claim_id: str, action: str) -> int:
        """How many entries about ``claim_id`` record ``action``."""
        ...

    def details_of(self, claim_id: str, action: str) -> list[dict[str, Any]]:
        """The details of each entry about ``claim_id`` that records ``action``, oldest first."""
        ...


class Store(Protocol):
    """One unit of work over every subject the workflow touches."""

    @property
    def catalogue(self) -> Catalogue: ...

    @property
    def access(self) -> Access: ...

    @property
    def claims(self) -> Claims: ...

    @property
    def assessments(self) -> Assessments: ...

    @property
    def evidence(self) -> EvidenceFiles: ...

    @property
    def fingerprints(self) -> Fingerprints: ...

    @property
    def bank(self) -> Bank: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def leases(self) -> Leases: ...
