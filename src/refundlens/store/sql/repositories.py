"""The store interface (:mod:`refundlens.store.interface`) over one SQLAlchemy session.

A :class:`SqlStore` wraps the caller's session and commits nothing: the caller's transaction
(``Database.session()``) holds the change, its audit entry and its notification together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit
from .db import Database
from .models import (
    REFUSING_OUTCOMES,
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
    Lease,
    Order,
    OrderReference,
    PackingVideo,
    ReferencePhoto,
    ReviewerAssignment,
    Sku,
    Tenant,
    UnprintedVideo,
    VideoFingerprint,
    WebhookEvent,
    granted_amount,
)
from .queries import latest_assessment

__all__ = ["SqlStore", "sql_stores"]


class _Catalogue:
    def __init__(self, session: Session) -> None:
        self.session = session

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.session.get(Tenant, tenant_id)

    def platform_webhooks(self) -> list[Tenant]:
        return list(
            self.session.execute(
                select(Tenant)
                .where(Tenant.kind == "platform", Tenant.webhook_url.is_not(None))
                .order_by(Tenant.id)
            ).scalars()
        )

    def sku(self, sku_id: str) -> Sku | None:
        return self.session.get(Sku, sku_id)

    def sku_by_external_id(self, merchant_id: str, external_id: str) -> Sku | None:
        return self.session.execute(
            select(Sku).where(Sku.merchant_id == merchant_id, Sku.external_id == external_id)
        ).scalar_one_or_none()

    def add_sku(self, sku: Sku) -> None:
        self.session.add(sku)
        self.session.flush()

    def add_reference(self, sku: Sku, photo: ReferencePhoto) -> None:
        self.session.add(photo)

    def reference_files(
        self, sku_id: str, before: dt.datetime | None = None
    ) -> list[tuple[str, str]]:
        query = select(ReferencePhoto.sha256, ReferencePhoto.name).where(
            ReferencePhoto.sku_id == sku_id
        )
        if before is not None:
            query = query.where(ReferencePhoto.created_at <= before)
        rows = self.session.execute(query.order_by(ReferencePhoto.created_at)).all()
        return [(sha, name) for sha, name in rows]

    def order(self, order_id: str) -> Order | None:
        return self.session.get(Order, order_id)

    def order_by_external_id(self, merchant_id: str, external_id: str) -> Order | None:
        return self.session.execute(
            select(Order).where(Order.merchant_id == merchant_id, Order.external_id == external_id)
        ).scalar_one_or_none()

    def add_order(self, order: Order) -> None:
        self.session.add(order)
        self.session.flush()

    def order_reference_files(
        self, order_id: str, before: dt.datetime | None = None
    ) -> list[tuple[str, str]]:
        query = select(OrderReference.sha256, OrderReference.name).where(
            OrderReference.order_id == order_id
        )
        if before is not None:
            # A frame is as old as the upload of its video (the worker may keep it later);
            # frames of a video with no upload row (older data) by when they were kept.
            video = select(PackingVideo.id).where(
                PackingVideo.order_id == OrderReference.order_id,
                PackingVideo.video_sha256 == OrderReference.video_sha256,
            )
            query = query.where(
                or_(
                    video.where(PackingVideo.created_at <= before).exists(),
                    and_(~video.exists(), OrderReference.created_at <= before),
                )
            )
        rows = self.session.execute(query.order_by(OrderReference.seconds)).all()
        return [(sha, name) for sha, name in rows]

    def add_order_reference(self, row: OrderReference) -> None:
        self.session.add(row)

    def packing_video(self, video_id: str, *, for_update: bool = False) -> PackingVideo | None:
        return self.session.get(PackingVideo, video_id, with_for_update=for_update)

    def add_packing_video(self, row: PackingVideo) -> None:
        self.session.add(row)

    def pending_packing_videos(self) -> list[tuple[str, dt.datetime | None]]:
        rows = self.session.execute(
            select(PackingVideo.id, PackingVideo.queued_at)
            .where(PackingVideo.status == "pending")
            .order_by(PackingVideo.created_at)
        ).all()
        return [(vid, queued) for vid, queued in rows]

    def mark_packing_videos_queued(self, video_ids: Sequence[str], at: dt.datetime) -> None:
        if video_ids:
            self.session.execute(
                update(PackingVideo).where(PackingVideo.id.in_(video_ids)).values(queued_at=at)
            )

    def packing_videos_of(self, order_id: str) -> list[PackingVideo]:
        return list(
            self.session.execute(
                select(PackingVideo)
                .where(PackingVideo.order_id == order_id)
                .order_by(PackingVideo.created_at, PackingVideo.id)
            ).scalars()
        )

    def pending_packing_videos_of_shop(self, merchant_id: str) -> int:
        return int(
            self.session.execute(
                select(func.count())
                .select_from(PackingVideo)
                .join(Order, Order.id == PackingVideo.order_id)
                .where(PackingVideo.status == "pending", Order.merchant_id == merchant_id)
            ).scalar_one()
        )


class _Access:
    def __init__(self, session: Session) -> None:
        self.session = session

    def api_key(self, key_id: str) -> ApiKey | None:
        return self.session.get(ApiKey, key_id)

    def reviewer_assigned(self, key_id: str, tenant_id: str) -> bool:
        return self.session.get(ReviewerAssignment, (key_id, tenant_id)) is not None


_CLOSED_PER_TICK = 500
"""Claims one tick makes final at most: the first tick after an upgrade finds every claim ever
decided; the rest wait for the next ticks (one transaction stays short)."""


class _Claims:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, claim_id: str, *, for_update: bool = False) -> Claim | None:
        return self.session.get(Claim, claim_id, with_for_update=for_update)

    def next_seq(self) -> int:
        return int(self.session.execute(select(func.max(Claim.seq))).scalar() or 0) + 1

    def add(self, claim: Claim) -> None:
        self.session.add(claim)
        self.session.flush()

    def add_photo(self, claim: Claim, photo: ClaimPhoto) -> None:
        claim.photos.append(photo)  # cascades into the session

    def unchanged_since(self, states: Sequence[str], before: dt.datetime) -> list[Claim]:
        return list(
            self.session.execute(
                select(Claim)
                .where(Claim.state.in_(list(states)), Claim.updated_at <= before)
                .order_by(Claim.updated_at, Claim.seq)
                .limit(_CLOSED_PER_TICK)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )

    def waiting_with_deadline(self, states: Sequence[str]) -> list[Claim]:
        return list(
            self.session.execute(
                select(Claim)
                .where(Claim.state.in_(list(states)), Claim.deadline_at.is_not(None))
                # A claim someone is acting on right now is left for the next tick.
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )

    def in_state(self, state: str) -> list[Claim]:
        return list(self.session.execute(select(Claim).where(Claim.state == state)).scalars())

    def open_on_order(self, order_id: str, closed_states: Sequence[str]) -> int:
        return int(
            self.session.execute(
                select(func.count())
                .select_from(Claim)
                .where(Claim.order_id == order_id, Claim.state.not_in(list(closed_states)))
            ).scalar_one()
        )

    def first_claimed_on_order(self, order_id: str) -> dt.datetime | None:
        first: dt.datetime | None = self.session.execute(
            select(func.min(Claim.created_at)).where(Claim.order_id == order_id)
        ).scalar_one()
        return first

    def decisions_of(self, claim_id: str) -> list[Decision]:
        return list(
            self.session.execute(
                select(Decision)
                .where(Decision.claim_id == claim_id)
                .order_by(Decision.created_at, Decision.id)
            ).scalars()
        )

    def claimed_on_order(self, order_id: str, besides: str | None = None) -> float:
        total = 0.0
        for claim in self.session.execute(
            select(Claim).where(Claim.order_id == order_id)
        ).scalars():
            if claim.id == besides:
                continue
            decided = self.decisions_of(claim.id)
            total += granted_amount(claim, decided[-1] if decided else None)
        return total

    def filed_by_buyer(
        self, buyer_id: str, since: dt.datetime, filed_before: int
    ) -> dict[str, tuple[int, float]]:
        rows = self.session.execute(
            select(Order.currency, func.count(Claim.id), func.sum(Claim.amount))
            .join(Order, Order.id == Claim.order_id)
            .where(
                Claim.buyer_id == buyer_id,
                Claim.seq < filed_before,
                Claim.created_at >= since,
            )
            .group_by(Order.currency)
        ).all()
        return {currency: (int(count), float(total or 0.0)) for currency, count, total in rows}

    def rejected_on_order(self, order_id: str, besides: str | None = None) -> list[tuple[str, str]]:
        out = []
        for claim in self.session.execute(
            select(Claim)
            .where(Claim.order_id == order_id, Claim.state.in_(("decided", "final")))
            .order_by(Claim.seq)
        ).scalars():
            decided = self.decisions_of(claim.id)
            if claim.id != besides and decided and decided[-1].outcome in REFUSING_OUTCOMES:
                out.append((claim.id, claim.claim_type))
        return out

    def submitted_queue(self) -> list[tuple[str, dt.datetime | None]]:
        rows = self.session.execute(
            select(Claim.id, Claim.queued_at).where(Claim.state == "submitted").order_by(Claim.seq)
        ).all()
        return [(cid, queued) for cid, queued in rows]

    def mark_queued(self, claim_ids: Sequence[str], at: dt.datetime) -> None:
        if claim_ids:
            self.session.execute(
                update(Claim)
                .where(Claim.id.in_(claim_ids))
                .values(queued_at=at, updated_at=Claim.updated_at)  # as beat(): not a change
            )

    def clear_heartbeats(self, claim_ids: Sequence[str]) -> None:
        if claim_ids:
            self.session.execute(
                update(Claim)
                .where(Claim.id.in_(claim_ids), Claim.state == "analysing")
                .values(heartbeat_at=None, updated_at=Claim.updated_at)  # as beat(): not a change
            )

    def beat(self, claim_id: str, attempt: int, at: dt.datetime) -> bool:
        done = self.session.execute(
            update(Claim)
            .where(
                Claim.id == claim_id,
                Claim.state == "analysing",
                Claim.analysis_attempts == attempt,
            )
            # Bookkeeping, not a change of the claim: updated_at (what a platform's sync asks
            # for) stays, or every claim under analysis was "changed" every 5 s (a review).
            .values(heartbeat_at=at, updated_at=Claim.updated_at)
        )
        return bool(getattr(done, "rowcount", 0))

    def add_decision(self, decision: Decision) -> None:
        self.session.add(decision)

    def capture_token(self, token_id: str, *, for_update: bool = False) -> CaptureToken | None:
        return self.session.get(CaptureToken, token_id, with_for_update=for_update)

    def capture_tokens_of(self, claim_id: str) -> list[CaptureToken]:
        return list(
            self.session.execute(select(CaptureToken).where(CaptureToken.claim_id == claim_id))
            .scalars()
            .all()
        )

    def add_capture_token(self, token: CaptureToken) -> None:
        self.session.add(token)


class _Assessments:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, assessment: Assessment) -> None:
        self.session.add(assessment)

    def latest(self, claim_id: str) -> Assessment | None:
        return latest_assessment(self.session, claim_id)

    def last_attempt(self, claim_id: str) -> int | None:
        last = self.session.execute(
            select(func.max(Assessment.attempt)).where(Assessment.claim_id == claim_id)
        ).scalar()
        return None if last is None else int(last)


class _Evidence:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, item: Evidence) -> None:
        self.session.add(item)
        self.session.flush()

    def of_kind(self, claim_id: str, kind: str) -> list[Evidence]:
        return list(
            self.session.execute(
                select(Evidence)
                .where(Evidence.claim_id == claim_id, Evidence.kind == kind)
                .order_by(Evidence.created_at)
            ).scalars()
        )

    def count_by(self, claim_id: str, submitted_by: str, kinds: Collection[str]) -> int:
        return int(
            self.session.execute(
                select(func.count())
                .select_from(Evidence)
                .where(
                    Evidence.claim_id == claim_id,
                    Evidence.submitted_by == submitted_by,
                    Evidence.kind.in_(sorted(kinds)),
                )
            ).scalar_one()
        )


class _Fingerprints:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add_photo_print(self, row: ClaimFingerprint) -> None:
        self.session.add(row)

    def photo_prints(self, claim_id: str) -> list[ClaimFingerprint]:
        return list(
            self.session.execute(
                select(ClaimFingerprint)
                .where(ClaimFingerprint.claim_id == claim_id)
                .order_by(ClaimFingerprint.id)
            ).scalars()
        )

    def photo_prints_since(
        self, moment: dt.datetime, min_quality: int = 0
    ) -> list[ClaimFingerprint]:
        return list(
            self.session.execute(
                select(ClaimFingerprint)
                .where(
                    ClaimFingerprint.created_at >= moment,
                    ClaimFingerprint.quality >= min_quality,
                )
                .order_by(ClaimFingerprint.id)
            ).scalars()
        )

    def printed_videos(self, claim_id: str) -> set[str]:
        return set(
            self.session.execute(
                select(VideoFingerprint.video_sha256).where(VideoFingerprint.claim_id == claim_id)
            ).scalars()
        )

    def unprinted_videos_before(
        self, filed_before: int, since: dt.datetime, states: Collection[str], limit: int
    ) -> list[UnprintedVideo]:
        printed = (
            select(VideoFingerprint.id)
            .where(
                VideoFingerprint.claim_id == Evidence.claim_id,
                VideoFingerprint.video_sha256 == Evidence.sha256,
            )
            .exists()
        )
        rows = self.session.execute(
            select(
                Claim.id,
                Claim.order_id,
                Claim.buyer_id,
                Claim.merchant_id,
                Evidence.sha256,
                Evidence.name,
            )
            .join(Evidence, Evidence.claim_id == Claim.id)
            .where(
                Claim.seq < filed_before,
                Claim.created_at >= since,
                Claim.state.in_(sorted(states)),
                Evidence.kind == "unboxing_video",
                Evidence.sha256.is_not(None),
                ~printed,
            )
            .order_by(Claim.seq.desc(), Evidence.created_at)
            .limit(max(0, limit))
        ).all()
        return [UnprintedVideo(*(str(value) for value in row)) for row in rows]

    def add_video_prints(self, rows: Iterable[VideoFingerprint]) -> None:
        self.session.add_all(rows)


class _Bank:
    def __init__(self, session: Session) -> None:
        self.session = session

    def holds(self, bank: str, pdq: str) -> bool:
        return (
            self.session.execute(
                select(BankEntry.id).where(BankEntry.bank == bank, BankEntry.pdq == pdq)
            ).first()
            is not None
        )

    def add(self, entry: BankEntry) -> None:
        self.session.add(entry)

    def withdraw(self, bank: str, claim_id: str) -> int:
        rows = list(
            self.session.execute(
                select(BankEntry).where(BankEntry.bank == bank, BankEntry.claim_id == claim_id)
            ).scalars()
        )
        for row in rows:
            self.session.delete(row)
        return len(rows)


class _Outbox:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, event: WebhookEvent) -> None:
        self.session.add(event)


class _Leases:
    def __init__(self, session: Session) -> None:
        self.session = session

    def take(self, name: str, holder: str, now: dt.datetime, until: dt.datetime) -> bool:
        # One statement decides between two takers: on PostgreSQL the second waits for the
        # first's row lock, then reads its new ``until`` and changes nothing.
        moved = self.session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.until <= now, Lease.holder == holder))
            .values(holder=holder, until=until)
        )
        if moved.rowcount:  # type: ignore[attr-defined]
            return True
        if self.session.get(Lease, name) is not None:
            return False
        try:  # the first lease of this name: the primary key lets one insert through
            with self.session.begin_nested():
                self.session.add(Lease(name=name, holder=holder, until=until))
        except IntegrityError:
            return False
        return True

    def release(self, name: str, holder: str, now: dt.datetime) -> None:
        self.session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(until=now)
        )


class _AuditLog:
    def __init__(self, session: Session) -> None:
        self.session = session

    def lock(self) -> None:
        audit.lock(self.session)

    def count(self, claim_id: str, action: str) -> int:
        return int(
            self.session.execute(
                select(func.count())
                .select_from(AuditEntry)
                .where(AuditEntry.claim_id == claim_id, AuditEntry.action == action)
            ).scalar_one()
        )

    def details_of(self, claim_id: str, action: str) -> list[dict[str, Any]]:
        rows = self.session.execute(
            select(AuditEntry.details)
            .where(AuditEntry.claim_id == claim_id, AuditEntry.action == action)
            .order_by(AuditEntry.seq)
        ).scalars()
        return [dict(details or {}) for details in rows]

    def append(
        self,
        actor: str,
        action: str,
        *,
        claim_id: str | None = None,
        assessment_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        return audit.append(
            self.session,
            actor,
            action,
            claim_id=claim_id,
            assessment_id=assessment_id,
            details=details,
        )

    def verify(self) -> tuple[int, audit.AuditProblem | None]:
        return audit.verify(self.session)


class SqlStore:
    """Every repository of the interface over ``session`` (which the caller commits)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.catalogue = _Catalogue(session)
        self.access = _Access(session)
        self.claims = _Claims(session)
        self.assessments = _Assessments(session)
        self.evidence = _Evidence(session)
        self.fingerprints = _Fingerprints(session)
        self.bank = _Bank(session)
        self.outbox = _Outbox(session)
        self.audit = _AuditLog(session)
        self.leases = _Leases(session)


def sql_stores(database: Database) -> Callable[[], AbstractContextManager[SqlStore]]:
    """Open one :class:`SqlStore` per transaction: committed on success, rolled back on error."""

    @contextmanager
    def opened() -> Iterator[SqlStore]:
        with database.session() as session:
            yield SqlStore(session)

    return opened
