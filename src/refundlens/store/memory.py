"""The store interface in dictionaries, for one process: the workflow's tests and examples run
on it with no database (``tests/test_store_contract.py`` holds it to the SQL store's behaviour).

It keeps the same record classes as the SQL store, never attached to a session, and fills in
what a database would: column defaults (``created_at`` and the like) and counters. It has no
transactions: what is added stays, also when the caller then fails. Not for a service.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from .sql.audit import GENESIS, AuditProblem, chained, check_entry
from .sql.models import (
    REFUSING_OUTCOMES,
    ApiKey,
    Assessment,
    AuditEntry,
    BankEntry,
    Base,
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
    granted_amount,
)

__all__ = ["MemoryStore"]


def _with_defaults(record: Base) -> None:
    """Set the columns left unset to their declared defaults, as an INSERT would."""
    for column in type(record).__table__.columns:
        if getattr(record, column.key, None) is not None or column.default is None:
            continue
        default: Any = column.default
        if getattr(default, "is_scalar", False):
            setattr(record, column.key, default.arg)
        elif getattr(default, "is_callable", False):
            setattr(record, column.key, default.arg(None))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class _Tables:
    """The rows, shared by every repository of one :class:`MemoryStore`."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.keys: dict[str, ApiKey] = {}
        self.assignments: set[tuple[str, str]] = set()
        self.skus: dict[str, Sku] = {}
        self.references: list[ReferencePhoto] = []
        self.orders: dict[str, Order] = {}
        self.order_references: list[OrderReference] = []
        self.packing_videos: dict[str, PackingVideo] = {}
        self.claims: dict[str, Claim] = {}
        self.decisions: list[Decision] = []
        self.capture_tokens: dict[str, CaptureToken] = {}
        self.assessments: list[Assessment] = []
        self.evidence: list[Evidence] = []
        self.photo_prints: list[ClaimFingerprint] = []
        self.video_prints: list[VideoFingerprint] = []
        self.bank: list[BankEntry] = []
        self.outbox: list[WebhookEvent] = []
        self.audit: list[AuditEntry] = []
        self.leases: dict[str, tuple[str, dt.datetime]] = {}
        self.serial = itertools.count(1)


class _Catalogue:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.t.tenants.get(tenant_id)

    def platform_webhooks(self) -> list[Tenant]:
        return sorted(
            (t for t in self.t.tenants.values() if t.kind == "platform" and t.webhook_url),
            key=lambda t: t.id,
        )

    def sku(self, sku_id: str) -> Sku | None:
        return self.t.skus.get(sku_id)

    def sku_by_external_id(self, merchant_id: str, external_id: str) -> Sku | None:
        return next(
            (
                s
                for s in self.t.skus.values()
                if (s.merchant_id, s.external_id) == (merchant_id, external_id)
            ),
            None,
        )

    def add_sku(self, sku: Sku) -> None:
        _with_defaults(sku)
        self.t.skus[sku.id] = sku

    def add_reference(self, sku: Sku, photo: ReferencePhoto) -> None:
        _with_defaults(photo)
        self.t.references.append(photo)

    def reference_files(
        self, sku_id: str, before: dt.datetime | None = None
    ) -> list[tuple[str, str]]:
        rows = [
            r
            for r in self.t.references
            if r.sku_id == sku_id and (before is None or _at_or_before(r.created_at, before))
        ]
        return [(r.sha256, r.name) for r in sorted(rows, key=lambda r: r.created_at)]

    def order(self, order_id: str) -> Order | None:
        return self.t.orders.get(order_id)

    def order_by_external_id(self, merchant_id: str, external_id: str) -> Order | None:
        return next(
            (
                o
                for o in self.t.orders.values()
                if (o.merchant_id, o.external_id) == (merchant_id, external_id)
            ),
            None,
        )

    def add_order(self, order: Order) -> None:
        _with_defaults(order)
        self.t.orders[order.id] = order

    def order_reference_files(
        self, order_id: str, before: dt.datetime | None = None
    ) -> list[tuple[str, str]]:
        def uploaded(r: OrderReference) -> dt.datetime:
            # A frame is as old as the upload of its video (see the SQL store).
            videos = [
                v.created_at
                for v in self.t.packing_videos.values()
                if (v.order_id, v.video_sha256) == (r.order_id, r.video_sha256)
            ]
            return min(videos, key=_utc) if videos else r.created_at

        rows = [
            r
            for r in self.t.order_references
            if r.order_id == order_id and (before is None or _at_or_before(uploaded(r), before))
        ]
        return [(r.sha256, r.name) for r in sorted(rows, key=lambda r: r.seconds)]

    def add_order_reference(self, row: OrderReference) -> None:
        _with_defaults(row)
        self.t.order_references.append(row)

    def packing_video(self, video_id: str, *, for_update: bool = False) -> PackingVideo | None:
        return self.t.packing_videos.get(video_id)

    def add_packing_video(self, row: PackingVideo) -> None:
        _with_defaults(row)
        self.t.packing_videos[row.id] = row

    def pending_packing_videos(self) -> list[tuple[str, dt.datetime | None]]:
        rows = [v for v in self.t.packing_videos.values() if v.status == "pending"]
        return [(v.id, v.queued_at) for v in sorted(rows, key=lambda v: v.created_at)]

    def mark_packing_videos_queued(self, video_ids: Sequence[str], at: dt.datetime) -> None:
        for video_id in video_ids:
            if video_id in self.t.packing_videos:
                self.t.packing_videos[video_id].queued_at = at

    def packing_videos_of(self, order_id: str) -> list[PackingVideo]:
        rows = [v for v in self.t.packing_videos.values() if v.order_id == order_id]
        return sorted(rows, key=lambda v: (v.created_at, v.id))

    def pending_packing_videos_of_shop(self, merchant_id: str) -> int:
        return sum(
            1
            for v in self.t.packing_videos.values()
            if v.status == "pending"
            and (order := self.t.orders.get(v.order_id)) is not None
            and order.merchant_id == merchant_id
        )


class _Access:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def api_key(self, key_id: str) -> ApiKey | None:
        return self.t.keys.get(key_id)

    def reviewer_assigned(self, key_id: str, tenant_id: str) -> bool:
        return (key_id, tenant_id) in self.t.assignments


class _Claims:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def get(self, claim_id: str, *, for_update: bool = False) -> Claim | None:
        return self.t.claims.get(claim_id)

    def next_seq(self) -> int:
        return max((c.seq for c in self.t.claims.values()), default=0) + 1

    def add(self, claim: Claim) -> None:
        _with_defaults(claim)
        self.t.claims[claim.id] = claim

    def add_photo(self, claim: Claim, photo: ClaimPhoto) -> None:
        _with_defaults(photo)
        claim.photos.append(photo)

    def waiting_with_deadline(self, states: Sequence[str]) -> list[Claim]:
        return [
            c for c in self.t.claims.values() if c.state in states and c.deadline_at is not None
        ]

    def unchanged_since(self, states: Sequence[str], before: dt.datetime) -> list[Claim]:
        found = [
            c
            for c in self.t.claims.values()
            if c.state in states and c.updated_at is not None and _aware(c.updated_at) <= before
        ]
        return sorted(found, key=lambda c: (_aware(c.updated_at), c.seq))

    def in_state(self, state: str) -> list[Claim]:
        return [c for c in self.t.claims.values() if c.state == state]

    def open_on_order(self, order_id: str, closed_states: Sequence[str]) -> int:
        return sum(
            1
            for c in self.t.claims.values()
            if c.order_id == order_id and c.state not in closed_states
        )

    def decisions_of(self, claim_id: str) -> list[Decision]:
        return [d for d in self.t.decisions if d.claim_id == claim_id]

    def first_claimed_on_order(self, order_id: str) -> dt.datetime | None:
        return min(
            (c.created_at for c in self.t.claims.values() if c.order_id == order_id),
            default=None,
        )

    def claimed_on_order(self, order_id: str, besides: str | None = None) -> float:
        total = 0.0
        for claim in self.t.claims.values():
            if claim.order_id != order_id or claim.id == besides:
                continue
            decided = self.decisions_of(claim.id)
            total += granted_amount(claim, decided[-1] if decided else None)
        return total

    def filed_by_buyer(
        self, buyer_id: str, since: dt.datetime, filed_before: int
    ) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for claim in self.t.claims.values():
            if claim.buyer_id != buyer_id or claim.seq >= filed_before:
                continue
            if _utc(claim.created_at) < _utc(since):
                continue
            order = self.t.orders.get(claim.order_id)
            currency = order.currency if order is not None else ""
            count, amount = out.get(currency, (0, 0.0))
            out[currency] = (count + 1, amount + claim.amount)
        return out

    def rejected_on_order(self, order_id: str, besides: str | None = None) -> list[tuple[str, str]]:
        out = []
        for claim in sorted(self.t.claims.values(), key=lambda c: c.seq):
            if claim.order_id != order_id or claim.id == besides:
                continue
            decided = self.decisions_of(claim.id)
            if (
                claim.state in ("decided", "final")
                and decided
                and decided[-1].outcome in REFUSING_OUTCOMES
            ):
                out.append((claim.id, claim.claim_type))
        return out

    def submitted_queue(self) -> list[tuple[str, dt.datetime | None]]:
        rows = sorted(self.in_state("submitted"), key=lambda c: c.seq)
        return [(c.id, c.queued_at) for c in rows]

    def mark_queued(self, claim_ids: Sequence[str], at: dt.datetime) -> None:
        for claim_id in claim_ids:
            if claim_id in self.t.claims:
                self.t.claims[claim_id].queued_at = at

    def clear_heartbeats(self, claim_ids: Sequence[str]) -> None:
        for claim_id in claim_ids:
            claim = self.t.claims.get(claim_id)
            if claim is not None and claim.state == "analysing":
                claim.heartbeat_at = None

    def beat(self, claim_id: str, attempt: int, at: dt.datetime) -> bool:
        claim = self.t.claims.get(claim_id)
        if claim is None or claim.state != "analysing" or claim.analysis_attempts != attempt:
            return False
        claim.heartbeat_at = at
        return True

    def add_decision(self, decision: Decision) -> None:
        _with_defaults(decision)
        self.t.decisions.append(decision)

    def capture_token(self, token_id: str, *, for_update: bool = False) -> CaptureToken | None:
        return self.t.capture_tokens.get(token_id)

    def capture_tokens_of(self, claim_id: str) -> list[CaptureToken]:
        return [t for t in self.t.capture_tokens.values() if t.claim_id == claim_id]

    def add_capture_token(self, token: CaptureToken) -> None:
        _with_defaults(token)
        self.t.capture_tokens[token.id] = token


class _Assessments:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def add(self, assessment: Assessment) -> None:
        _with_defaults(assessment)
        self.t.assessments.append(assessment)

    def latest(self, claim_id: str) -> Assessment | None:
        rows = [a for a in self.t.assessments if a.claim_id == claim_id]
        return max(rows, key=lambda a: a.attempt, default=None)

    def last_attempt(self, claim_id: str) -> int | None:
        latest = self.latest(claim_id)
        return None if latest is None else latest.attempt


class _Evidence:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def add(self, item: Evidence) -> None:
        _with_defaults(item)
        self.t.evidence.append(item)

    def of_kind(self, claim_id: str, kind: str) -> list[Evidence]:
        return [e for e in self.t.evidence if e.claim_id == claim_id and e.kind == kind]

    def count_by(self, claim_id: str, submitted_by: str, kinds: Collection[str]) -> int:
        return sum(
            1
            for e in self.t.evidence
            if e.claim_id == claim_id and e.submitted_by == submitted_by and e.kind in kinds
        )


class _Fingerprints:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def add_photo_print(self, row: ClaimFingerprint) -> None:
        _with_defaults(row)
        row.id = next(self.t.serial)
        self.t.photo_prints.append(row)

    def photo_prints(self, claim_id: str) -> list[ClaimFingerprint]:
        return [r for r in self.t.photo_prints if r.claim_id == claim_id]

    def photo_prints_since(
        self, moment: dt.datetime, min_quality: int = 0
    ) -> list[ClaimFingerprint]:
        return [
            r
            for r in self.t.photo_prints
            if _utc(r.created_at) >= _utc(moment) and r.quality >= min_quality
        ]

    def printed_videos(self, claim_id: str) -> set[str]:
        return {r.video_sha256 for r in self.t.video_prints if r.claim_id == claim_id}

    def unprinted_videos_before(
        self, filed_before: int, since: dt.datetime, states: Collection[str], limit: int
    ) -> list[UnprintedVideo]:
        printed = {(r.claim_id, r.video_sha256) for r in self.t.video_prints}
        claims = sorted(
            (
                c
                for c in self.t.claims.values()
                if c.seq < filed_before and c.state in states and _utc(c.created_at) >= _utc(since)
            ),
            key=lambda c: -c.seq,
        )
        out: list[UnprintedVideo] = []
        for claim in claims:
            for e in self.t.evidence:
                if (
                    e.claim_id == claim.id
                    and e.kind == "unboxing_video"
                    and e.sha256 is not None
                    and (claim.id, e.sha256) not in printed
                ):
                    out.append(
                        UnprintedVideo(
                            claim.id, claim.order_id, claim.buyer_id, claim.merchant_id,
                            e.sha256, e.name,
                        )
                    )  # fmt: skip
        return out[: max(0, limit)]

    def add_video_prints(self, rows: Iterable[VideoFingerprint]) -> None:
        for row in rows:
            _with_defaults(row)
            row.id = next(self.t.serial)
            self.t.video_prints.append(row)


class _Bank:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def holds(self, bank: str, pdq: str) -> bool:
        return any(e.bank == bank and e.pdq == pdq for e in self.t.bank)

    def add(self, entry: BankEntry) -> None:
        _with_defaults(entry)
        entry.id = next(self.t.serial)
        self.t.bank.append(entry)

    def withdraw(self, bank: str, claim_id: str) -> int:
        kept = [e for e in self.t.bank if not (e.bank == bank and e.claim_id == claim_id)]
        removed = len(self.t.bank) - len(kept)
        self.t.bank[:] = kept
        return removed


class _Outbox:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def add(self, event: WebhookEvent) -> None:
        _with_defaults(event)
        self.t.outbox.append(event)


class _AuditLog:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def lock(self) -> None:
        """One process, one caller at a time: nothing to lock."""

    def count(self, claim_id: str, action: str) -> int:
        return sum(1 for e in self.t.audit if e.claim_id == claim_id and e.action == action)

    def details_of(self, claim_id: str, action: str) -> list[dict[str, Any]]:
        return [
            dict(e.details or {})
            for e in self.t.audit
            if e.claim_id == claim_id and e.action == action
        ]

    def append(
        self,
        actor: str,
        action: str,
        *,
        claim_id: str | None = None,
        assessment_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        prev = self.t.audit[-1].entry_hash if self.t.audit else GENESIS
        entry = chained(
            prev, len(self.t.audit) + 1, actor, action, claim_id, assessment_id, details
        )
        self.t.audit.append(entry)
        return entry

    def verify(self) -> tuple[int, AuditProblem | None]:
        prev = GENESIS
        for checked, row in enumerate(self.t.audit):
            problem = check_entry(row, prev, checked + 1)
            if problem is not None:
                return checked, problem
            prev = row.entry_hash
        return len(self.t.audit), None


class _Leases:
    def __init__(self, tables: _Tables) -> None:
        self.t = tables

    def take(self, name: str, holder: str, now: dt.datetime, until: dt.datetime) -> bool:
        held = self.t.leases.get(name)
        if held is not None and held[1] > now and held[0] != holder:
            return False
        self.t.leases[name] = (holder, until)
        return True

    def release(self, name: str, holder: str, now: dt.datetime) -> None:
        held = self.t.leases.get(name)
        if held is not None and held[0] == holder:
            self.t.leases[name] = (holder, now)


@dataclasses.dataclass
class MemoryStore:
    """Every repository of the interface over one set of in-memory tables."""

    tables: _Tables = dataclasses.field(default_factory=_Tables)

    def __post_init__(self) -> None:
        self.catalogue = _Catalogue(self.tables)
        self.access = _Access(self.tables)
        self.claims = _Claims(self.tables)
        self.assessments = _Assessments(self.tables)
        self.evidence = _Evidence(self.tables)
        self.fingerprints = _Fingerprints(self.tables)
        self.bank = _Bank(self.tables)
        self.outbox = _Outbox(self.tables)
        self.audit = _AuditLog(self.tables)
        self.leases = _Leases(self.tables)

    def add_tenant(self, tenant: Tenant) -> Tenant:
        """Seed a merchant or platform (tenants are made by the CLI, outside the workflow)."""
        _with_defaults(tenant)
        self.tables.tenants[tenant.id] = tenant
        return tenant

    def add_key(self, key: ApiKey, *, merchants: Sequence[str] = ()) -> ApiKey:
        """Seed an API key, and the merchants a reviewer key works for."""
        _with_defaults(key)
        self.tables.keys[key.id] = key
        self.tables.assignments.update((key.id, m) for m in merchants)
        return key


def _utc(t: dt.datetime) -> dt.datetime:
    """A naive time read as UTC (as the SQL store keeps them)."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def _at_or_before(when: dt.datetime, before: dt.datetime) -> bool:
    return _utc(when) <= _utc(before)
