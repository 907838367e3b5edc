"""The case workflow over the store: what the API, the CLI and the workers do to a claim.

Each function takes an open session and commits nothing itself: the caller's transaction holds the
change, its audit entry and its notification together (all three land, or none does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..config import Settings
from ..errors import RefundlensError
from ..media import Media, media_from_bytes
from ..media.cache import DecodedCache
from ..store import audit
from ..store.blobs import BlobStore
from ..store.features import feature_files
from ..store.models import (
    ApiKey,
    Assessment,
    BankEntry,
    Claim,
    ClaimFingerprint,
    ClaimPhoto,
    Decision,
    Evidence,
    Order,
    ReferencePhoto,
    ReviewerAssignment,
    Sku,
    Tenant,
    VideoFingerprint,
    WebhookEvent,
    new_id,
    utcnow,
)
from ..store.queries import latest_assessment
from .routing import CLAIM_TYPES, ClaimFacts, RoutingRules, route
from .states import ClaimState, transition

__all__ = [
    "DECISIONS",
    "EVIDENCE_KINDS",
    "Actor",
    "NotFound",
    "add_evidence",
    "allowed_decisions",
    "beat",
    "check_claim_request",
    "claims_to_queue",
    "create_claim",
    "create_order",
    "create_sku",
    "decide",
    "expire_windows",
    "finish_analysis",
    "mark_queued",
    "order_time_zone",
    "start_analysis",
]

DECISIONS = ("approve", "reject", "partial", "request_capture", "escalate")
EVIDENCE_KINDS = ("packing_video", "reference_photo", "statement", "other")


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acts: an API key's id and role (``system`` for the scheduler and workers)."""

    id: str
    role: str


SYSTEM = Actor("system", "system")


class NotFound(RefundlensError):
    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what}.not_found", f"No {what} {ident!r} (or it is not yours to see).")


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment


def notify(
    session: Session,
    tenant_id: str,
    event: str,
    claim: Claim | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Queue a notification in the outbox (same transaction as the change it reports)."""
    body: dict[str, Any] = {"event": event, "at": utcnow().isoformat()}
    if claim is not None:
        body["claim"] = {
            "id": claim.id,
            "state": claim.state,
            "risk": claim.risk,
            "action": claim.action,
        }
    body.update(extra or {})
    event_id = new_id("evt")
    body["id"] = event_id
    session.add(
        WebhookEvent(
            id=event_id,
            tenant_id=tenant_id,
            event=event,
            claim_id=claim.id if claim else None,
            body=body,
        )
    )


def _decode(data: bytes, name: str, settings: Settings) -> Media:
    return media_from_bytes(data, name, settings)


def create_sku(
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    merchant_id: str,
    external_id: str,
    title: str,
    photos: Sequence[tuple[str, bytes]],
) -> Sku:
    if session.get(Tenant, merchant_id) is None:
        raise NotFound("merchant", merchant_id)
    if not photos:
        raise RefundlensError("sku.no_reference", "A SKU needs at least one reference photo.")
    decoded = [(name, data, _decode(data, name, settings)) for name, data in photos]
    from ..detectors.reference import prepare_reference

    stored = []
    for name, data, media in decoded:
        # Features now, once, and before taking the lock below: every claim on this SKU reads
        # them back instead of recomputing.
        prepare_reference(media, feature_files(settings.reference_feature_dir))
        stored.append((name, blobs.put(data), media))
    audit.lock(session)  # the same SKU sent twice at once must not be created twice
    sku = session.execute(
        select(Sku).where(Sku.merchant_id == merchant_id, Sku.external_id == external_id)
    ).scalar_one_or_none()
    if sku is None:
        sku = Sku(id=new_id("sku"), merchant_id=merchant_id, external_id=external_id, title=title)
        session.add(sku)
        session.flush()
    for name, digest, media in stored:
        session.add(
            ReferencePhoto(
                id=new_id("ref"),
                sku_id=sku.id,
                sha256=digest,
                name=name,
                width=media.width,
                height=media.height,
                pdq=media.pdq.hex,
            )
        )
    audit.append(
        session,
        actor.id,
        "sku.saved",
        details={"sku": sku.id, "references": [m.sha256 for _, _, m in decoded]},
    )
    return sku


def _offset_minutes(moment: dt.datetime | None) -> int | None:
    offset = moment.utcoffset() if moment is not None else None
    return None if offset is None else int(offset.total_seconds() // 60)


def order_time_zone(order: Order) -> dt.tzinfo:
    """The zone the merchant's times were sent in (UTC where it sent none)."""
    if order.utc_offset_minutes is None:
        return dt.UTC
    return dt.timezone(dt.timedelta(minutes=order.utc_offset_minutes))


def create_order(
    session: Session,
    actor: Actor,
    merchant_id: str,
    external_id: str,
    sku_id: str,
    buyer_id: str,
    amount: float,
    currency: str,
    shipped_at: dt.datetime | None,
    delivered_at: dt.datetime | None,
    buyer_pii: bytes | None,
) -> Order:
    sku = session.get(Sku, sku_id)
    if sku is None or sku.merchant_id != merchant_id:
        raise NotFound("sku", sku_id)
    audit.lock(session)  # an order synced twice at once must not be created twice
    existing = session.execute(
        select(Order).where(Order.merchant_id == merchant_id, Order.external_id == external_id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    order = Order(
        id=new_id("ord"),
        merchant_id=merchant_id,
        external_id=external_id,
        sku_id=sku_id,
        buyer_id=buyer_id,
        amount=amount,
        currency=currency,
        shipped_at=shipped_at,
        delivered_at=delivered_at,
        utc_offset_minutes=_offset_minutes(shipped_at or delivered_at),
        buyer_pii=buyer_pii,
    )
    session.add(order)
    session.flush()
    audit.append(session, actor.id, "order.saved", details={"order": order.id, "sku": sku_id})
    return order


@dataclasses.dataclass(frozen=True)
class ClaimFiles:
    """A claim's photos and videos decoded, fingerprinted and stored: the slow part of filing a
    claim, done before any database transaction (see :func:`prepare_claim_files`)."""

    photos: list[tuple[str, str, Media, dict[str, Any]]]  # name, sha256, media, PDQ variants
    videos: list[tuple[str, str]]  # name, sha256 (checked from the header; decoded by the worker)


def check_claim_request(order: Order, claim_type: str, amount: float) -> None:
    """What can be refused about a claim without its files. Callers check it before
    :func:`prepare_claim_files`, which stores the files: a refused claim then leaves none."""
    if claim_type not in CLAIM_TYPES:
        raise RefundlensError(
            "claim.bad_type",
            f"Claim type must be one of {', '.join(CLAIM_TYPES)}, not {claim_type!r}.",
        )
    if not math.isfinite(amount) or amount < 0 or amount > order.amount:
        raise RefundlensError(
            "claim.bad_amount", f"The amount must be between 0 and the order's {order.amount:g}."
        )


def prepare_claim_files(
    blobs: BlobStore,
    settings: Settings,
    claim_type: str,
    photos: Sequence[tuple[str, bytes]],
    videos: Sequence[tuple[str, bytes]] = (),
) -> ClaimFiles:
    """Check, decode, fingerprint and store a claim's files, touching no database: a bad file
    fails the request before anything is saved, and no transaction (on SQLite, the one writer
    at a time) waits on the decoding of a 12 MP photo or of a video."""
    if claim_type not in CLAIM_TYPES:
        raise RefundlensError(
            "claim.bad_type",
            f"Claim type must be one of {', '.join(CLAIM_TYPES)}, not {claim_type!r}.",
        )
    if len(photos) > settings.max_photos_per_claim:
        raise RefundlensError(
            "claim.too_many_photos",
            f"At most {settings.max_photos_per_claim} photos per claim (max_photos_per_claim).",
        )
    from ..media.fingerprint import pdq_centre_crops
    from ..media.video import probe_video

    decoded = []
    for index, (name, data) in enumerate(photos):
        try:
            decoded.append((name, data, _decode(data, name, settings)))
        except RefundlensError as exc:  # with several photos, say which one
            raise exc.about_file(index, name) from None
    # Videos are checked from their container header only: their frames are decoded and
    # fingerprinted by the analysis, in the task runner (unboxing_video_frames).
    for index, (name, data) in enumerate(videos):
        try:
            probe_video(data, settings)
        except RefundlensError as exc:
            raise exc.about_file(index, name, "videos") from None
    return ClaimFiles(
        photos=[
            (name, blobs.put(data), media, {"full": media.pdq, **pdq_centre_crops(media.analysis)})
            for name, data, media in decoded
        ],
        videos=[(name, blobs.put(data)) for name, data in videos],
    )


def create_claim(
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    order: Order,
    claim_type: str,
    reason: str,
    amount: float,
    photos: Sequence[tuple[str, bytes]] | ClaimFiles,
    videos: Sequence[tuple[str, bytes]] = (),
) -> Claim:
    """File a claim. ``photos`` are the raw files (with ``videos``), or what
    :func:`prepare_claim_files` made of them outside the transaction."""
    check_claim_request(order, claim_type, amount)
    files = (
        photos
        if isinstance(photos, ClaimFiles)
        else prepare_claim_files(blobs, settings, claim_type, photos, videos)
    )
    photo_rows, video_rows = files.photos, files.videos
    audit.lock(session)  # two claims filed at once must not both take the next number
    seq = (session.execute(select(func.max(Claim.seq))).scalar() or 0) + 1
    claim = Claim(
        id=new_id("clm"),
        seq=seq,
        order_id=order.id,
        merchant_id=order.merchant_id,
        buyer_id=order.buyer_id,
        claim_type=claim_type,
        reason=reason,
        amount=amount,
        state=ClaimState.SUBMITTED.value,
    )
    session.add(claim)
    session.flush()
    for position, (name, sha, media, variants) in enumerate(photo_rows):
        for variant, code in variants.items():
            session.add(
                ClaimFingerprint(
                    claim_id=claim.id,
                    order_id=order.id,
                    buyer_id=order.buyer_id,
                    merchant_id=order.merchant_id,
                    photo_sha256=media.sha256,
                    variant=variant,
                    pdq=code.hex,
                    quality=code.quality,
                )
            )
        session.add(
            ClaimPhoto(
                id=new_id("pho"), claim_id=claim.id, position=position, sha256=sha, name=name
            )
        )
    for name, video_sha in video_rows:
        session.add(
            Evidence(
                id=new_id("evd"),
                claim_id=claim.id,
                kind="unboxing_video",
                submitted_by=actor.role,
                sha256=video_sha,
                name=name,
            )
        )
    audit.append(
        session,
        actor.id,
        "claim.submitted",
        claim_id=claim.id,
        details={
            "order": order.id,
            "type": claim_type,
            "amount": amount,
            "photos": [m.sha256 for _, _, m, _ in photo_rows],
        },
    )
    notify(session, order.merchant_id, "claim.received", claim)
    return claim


def unfinished_analyses(session: Session, claim: Claim) -> int:
    """Analyses of ``claim`` started since the last one that recorded an assessment: each of
    them failed or died with its worker."""
    last = session.execute(
        select(func.max(Assessment.attempt)).where(Assessment.claim_id == claim.id)
    ).scalar()
    return claim.analysis_attempts - int(last or 0)


def _give_up_analysis(session: Session, claim: Claim, failures: int, settings: Settings) -> None:
    """A claim whose analysis keeps failing goes to a person, with no assessment: nothing is
    approved or rejected on a measurement that was never made."""
    why = f"the analysis failed {failures} times in a row: a person decides without it"
    claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
    claim.routing_reason = why
    claim.action = "review"
    claim.analysing_since = claim.heartbeat_at = None
    claim.deadline_at = utcnow() + dt.timedelta(hours=settings.review_sla_hours)
    session.flush()
    audit.append(
        session,
        SYSTEM.id,
        "claim.analysis_abandoned",
        claim_id=claim.id,
        details={"failures": failures, "state": claim.state, "why": why},
    )
    notify(session, claim.merchant_id, "claim.analysis_failed", claim, {"failures": failures})


def start_analysis(session: Session, claim_id: str, settings: Settings) -> int | None:
    """Move the claim to ``analysing`` and return this attempt's number; None if nothing to do.

    Only a claim that asks for an analysis starts one: ``submitted``, or ``analysing`` (a live
    capture just arrived, or a worker died and the reaper re-queued it). A task delivered twice
    for a claim already analysed and waiting on someone finds nothing to do. A claim whose last
    ``analysis_max_attempts`` analyses all failed or died (a file that crashes its worker, a
    bug) starts none: it goes to a person instead of round the reaper for ever.
    """
    claim = session.get(Claim, claim_id, with_for_update=True)
    if claim is None:
        return None
    if claim.state not in (ClaimState.SUBMITTED, ClaimState.ANALYSING):
        return None
    failures = unfinished_analyses(session, claim)
    if claim.state == ClaimState.ANALYSING and failures >= settings.analysis_max_attempts:
        _give_up_analysis(session, claim, failures, settings)
        return None
    claim.state = transition(claim.state, ClaimState.ANALYSING).value
    claim.analysis_attempts += 1
    claim.analysing_since = claim.heartbeat_at = utcnow()
    audit.append(
        session,
        SYSTEM.id,
        "claim.analysing",
        claim_id=claim.id,
        details={"attempt": claim.analysis_attempts},
    )
    return claim.analysis_attempts


def input_files(
    session: Session, claim_id: str
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], Order]:
    """(sha256, name) of the claim's photos and of its references (SKU photos, then
    packing-video frames), and its order: rows only, so that the caller decodes them
    (:func:`decode_inputs`) after its transaction has ended."""
    from ..store.models import OrderReference

    claim = session.get(Claim, claim_id)
    if claim is None:
        raise NotFound("claim", claim_id)
    order = session.get(Order, claim.order_id)
    assert order is not None
    photos = [(p.sha256, p.name) for p in claim.photos]
    refs = session.execute(
        select(ReferencePhoto.sha256, ReferencePhoto.name)
        .where(ReferencePhoto.sku_id == order.sku_id)
        .order_by(ReferencePhoto.created_at)
    ).all()
    frames = session.execute(
        select(OrderReference.sha256, OrderReference.name)
        .where(OrderReference.order_id == order.id)
        .order_by(OrderReference.seconds)
    ).all()
    return photos, [(sha, name) for sha, name in [*refs, *frames]], order


def decode_inputs(
    blobs: BlobStore,
    settings: Settings,
    photos: Sequence[tuple[str, str]],
    references: Sequence[tuple[str, str]],
    decoded: DecodedCache | None = None,
) -> tuple[list[Media], list[Media]]:
    """The claim's photos and references decoded, outside any transaction (on SQLite an open
    one would stop every other writer while 12 MP photos decode). ``decoded`` keeps reference
    photos decoded between claims (one SKU, many claims)."""

    def reference(sha256: str, name: str) -> Media:
        if decoded is None:
            return media_from_bytes(blobs.get(sha256), name, settings)
        return decoded.get(sha256, name, lambda: blobs.get(sha256))

    return (
        [media_from_bytes(blobs.get(sha), name, settings) for sha, name in photos],
        [reference(sha, name) for sha, name in references],
    )


def unboxing_video_frames(
    db_sessions: Any, blobs: BlobStore, settings: Settings, claim_id: str
) -> list[Media]:
    """Key frames of the buyer's unboxing videos sent with the claim, as images to compare with;
    the videos' frame fingerprints (vPDQ, for reuse across claims) are recorded on the way, once
    per video. Runs in the task runner: each video is decoded (frames shrunk) outside any
    transaction. A video that decodes to nothing usable is left out of the analysis (logged),
    never failing it."""
    import io
    import logging

    from PIL import Image

    from ..errors import MediaError
    from ..media.video import key_frames, read_video, video_fingerprint

    with db_sessions() as session:
        claim = session.get(Claim, claim_id)
        if claim is None:
            raise NotFound("claim", claim_id)
        owner = (claim.order_id, claim.buyer_id, claim.merchant_id)
        videos = [
            (e.sha256, e.name)
            for e in session.execute(
                select(Evidence).where(
                    Evidence.claim_id == claim_id, Evidence.kind == "unboxing_video"
                )
            ).scalars()
            if e.sha256 is not None
        ]
        printed = set(
            session.execute(
                select(VideoFingerprint.video_sha256).where(VideoFingerprint.claim_id == claim_id)
            ).scalars()
        )
    frames: list[Media] = []
    for sha, name in videos:
        try:
            video = read_video(blobs.get(sha), settings)
        except MediaError as exc:
            logging.getLogger("refundlens.workers").warning(
                "claim %s: unboxing video %s left out: %s", claim_id, name, exc
            )
            continue
        if sha not in printed:
            prints = video_fingerprint(video, settings.reuse_min_pdq_quality)
            with db_sessions() as session:
                session.add_all(
                    VideoFingerprint(
                        claim_id=claim_id,
                        order_id=owner[0],
                        buyer_id=owner[1],
                        merchant_id=owner[2],
                        video_sha256=sha,
                        seconds=round(p.seconds, 3),
                        pdq=p.code.hex,
                        quality=p.code.quality,
                    )
                    for p in prints
                )
            printed.add(sha)
        for frame in key_frames(video, keep=settings.video_key_frames):
            buffer = io.BytesIO()
            Image.fromarray(frame.rgb).save(buffer, "JPEG", quality=95)
            frames.append(
                media_from_bytes(buffer.getvalue(), f"{name}@{frame.seconds:.1f}s", settings)
            )
    return frames


def fail_analysis(
    session: Session, claim_id: str, attempt: int, error: str, settings: Settings
) -> Claim | None:
    """Record that this attempt raised ``error``; after ``analysis_max_attempts`` failures in a
    row the claim goes to a person. Returns the claim, or None for a stale attempt."""
    claim = session.get(Claim, claim_id, with_for_update=True)
    if claim is None or claim.state != ClaimState.ANALYSING or claim.analysis_attempts != attempt:
        return None
    claim.heartbeat_at = None  # this attempt is over; the next one beats anew
    audit.append(
        session,
        SYSTEM.id,
        "claim.analysis_failed",
        claim_id=claim.id,
        details={"attempt": attempt, "error": error[:500]},
    )
    failures = unfinished_analyses(session, claim)
    if failures >= settings.analysis_max_attempts:
        _give_up_analysis(session, claim, failures, settings)
    return claim


def finish_analysis(
    session: Session,
    claim_id: str,
    attempt: int,
    report: dict[str, Any],
    rules: RoutingRules,
    settings: Settings,
) -> Claim | None:
    """Record this attempt's assessment and route the claim; a stale attempt records nothing."""
    claim = session.get(Claim, claim_id, with_for_update=True)
    if claim is None or claim.state != ClaimState.ANALYSING or claim.analysis_attempts != attempt:
        return None  # another worker took over (re-queued) or the claim moved on
    risk, action = float(report["claim"]["risk"]), str(report["claim"]["action"])
    assessment = Assessment(
        id=new_id("asm"),
        claim_id=claim.id,
        attempt=attempt,
        risk=risk,
        action=action,
        report=json.loads(json.dumps(report, default=str)),
    )
    session.add(assessment)
    live = any(photo.live_capture for photo in claim.photos)
    target, why = route(
        action, ClaimFacts(claim.claim_type, claim.amount, len(claim.photos), live), rules
    )
    claim.state = transition(claim.state, target).value
    claim.risk, claim.action, claim.routing_reason = risk, action, why
    claim.analysing_since = claim.heartbeat_at = None
    now = utcnow()
    claim.deadline_at = {
        ClaimState.AWAITING_MERCHANT: now + dt.timedelta(hours=settings.merchant_response_hours),
        ClaimState.AWAITING_CAPTURE: now + dt.timedelta(hours=settings.capture_window_hours),
    }.get(target)
    session.flush()
    audit.append(
        session,
        SYSTEM.id,
        "claim.analysed",
        claim_id=claim.id,
        assessment_id=assessment.id,
        details={"risk": risk, "action": action, "state": claim.state, "why": why},
    )
    notify(session, claim.merchant_id, "claim.analysed", claim)
    if target == ClaimState.AWAITING_MERCHANT:
        notify(
            session,
            claim.merchant_id,
            "merchant.asked",
            claim,
            {"deadline_at": claim.deadline_at.isoformat() if claim.deadline_at else None},
        )
    elif target == ClaimState.AWAITING_CAPTURE:
        notify(session, claim.merchant_id, "capture.requested", claim)
    return claim


def add_evidence(
    session: Session,
    blobs: BlobStore,
    actor: Actor,
    claim: Claim,
    kind: str,
    statement: str,
    file: tuple[str, bytes] | None,
    *,
    settings: Settings,
) -> Evidence:
    if claim.state in (ClaimState.DECIDED, ClaimState.FINAL, ClaimState.APPROVED):
        raise RefundlensError(
            "claim.closed", f"The claim is {claim.state}; evidence can no longer be added."
        )
    if kind not in EVIDENCE_KINDS:
        raise RefundlensError(
            "evidence.bad_kind", f"Evidence kind must be one of {', '.join(EVIDENCE_KINDS)}."
        )
    if not statement and file is None:
        raise RefundlensError("evidence.empty", "Evidence needs a file or a statement.")
    sha = blobs.put(file[1]) if file else None
    item = Evidence(
        id=new_id("evd"),
        claim_id=claim.id,
        kind=kind,
        submitted_by=actor.role,
        sha256=sha,
        name=file[0] if file else "",
        statement=statement,
    )
    session.add(item)
    session.flush()
    audit.append(
        session,
        actor.id,
        "evidence.added",
        claim_id=claim.id,
        details={"evidence": item.id, "kind": kind, "sha256": sha},
    )
    notify(
        session,
        claim.merchant_id,
        "evidence.added",
        claim,
        {"evidence": {"id": item.id, "kind": kind}},
    )
    if actor.role == "merchant" and claim.state == ClaimState.AWAITING_MERCHANT:
        # The merchant has answered: a person can decide now, no need to wait out the window.
        claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
        claim.deadline_at = utcnow() + dt.timedelta(hours=settings.review_sla_hours)
        audit.append(
            session,
            actor.id,
            "claim.to_review",
            claim_id=claim.id,
            details={"why": "merchant answered"},
        )
    return item


# What a person may decide in each state. While the claim waits for the merchant or for a live
# capture, a reviewer who has seen enough need not wait: deciding closes the window (on record).
_DECISIONS_BY_STATE: dict[str, tuple[str, ...]] = {
    ClaimState.UNDER_REVIEW: DECISIONS,
    ClaimState.AWAITING_MERCHANT: DECISIONS,
    # a live capture is already asked for: asking again is not a decision
    ClaimState.AWAITING_CAPTURE: ("approve", "reject", "partial", "escalate"),
}


def allowed_decisions(state: str) -> tuple[str, ...]:
    """The decisions a reviewer or admin may take on a claim in ``state`` (none once decided,
    while it is being analysed, or after an automatic approval, which an appeal reopens)."""
    return _DECISIONS_BY_STATE.get(ClaimState(state), ())


def decide(
    session: Session,
    actor: Actor,
    claim: Claim,
    decision: str,
    reason: str,
    amount: float | None,
    settings: Settings,
) -> Claim:
    """A person's decision. Reject is only ever this: a person's call with a reason."""
    if decision not in DECISIONS:
        raise RefundlensError(
            "decision.bad_value", f"Decision must be one of {', '.join(DECISIONS)}."
        )
    if not reason.strip():
        raise RefundlensError("decision.reason_required", "Every decision needs a reason in words.")
    if actor.role not in ("reviewer", "admin"):
        raise RefundlensError(
            "auth.forbidden", "Only a reviewer or a platform admin decides claims."
        )
    allowed = allowed_decisions(claim.state)
    if decision not in allowed:
        raise RefundlensError(
            "claim.illegal_transition",
            f"A claim in state {claim.state} cannot be decided with {decision}; "
            + (f"allowed now: {', '.join(allowed)}." if allowed else "no decision is open now."),
        )
    if claim.state in (ClaimState.AWAITING_MERCHANT, ClaimState.AWAITING_CAPTURE):
        waited = claim.state
        claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
        audit.append(
            session,
            actor.id,
            "claim.window_closed",
            claim_id=claim.id,
            details={"from": waited, "why": f"a person decided: {decision}"},
        )
    if decision == "request_capture":
        claim.state = transition(claim.state, ClaimState.AWAITING_CAPTURE).value
        claim.deadline_at = utcnow() + dt.timedelta(hours=settings.capture_window_hours)
        notify(session, claim.merchant_id, "capture.requested", claim)
    elif decision == "escalate":
        if claim.state != ClaimState.UNDER_REVIEW:
            transition(claim.state, ClaimState.DECIDED)  # raises with the allowed moves
        claim.action = "escalate"
    else:
        if decision == "partial" and (amount is None or not 0 < amount < claim.amount):
            raise RefundlensError(
                "decision.bad_amount",
                "A partial decision needs an amount between 0 and the claimed amount.",
            )
        claim.state = transition(claim.state, ClaimState.DECIDED).value
        outcome = {"approve": "approved", "reject": "rejected", "partial": "partial"}[decision]
        session.add(
            Decision(
                id=new_id("dec"),
                claim_id=claim.id,
                outcome=outcome,
                amount=amount if decision == "partial" else None,
                reason=reason,
                decided_by=actor.id,
            )
        )
        claim.deadline_at = None
        notify(session, claim.merchant_id, "claim.decided", claim, {"outcome": outcome})
        if outcome == "rejected":
            _bank_confirmed_forgery(session, claim, settings)
    audit.append(
        session,
        actor.id,
        f"decision.{decision}",
        claim_id=claim.id,
        details={"reason": reason, "amount": amount, "state": claim.state},
    )
    return claim


def expire_windows(
    session: Session, now: dt.datetime | None = None, *, settings: Settings
) -> list[str]:
    """Move claims whose window ran out to a person (never to a rejection). Returns their ids."""
    review_hours = settings.review_sla_hours
    now = now or utcnow()
    moved = []
    waiting = (
        session.execute(
            select(Claim)
            .where(
                Claim.state.in_(
                    [ClaimState.AWAITING_MERCHANT.value, ClaimState.AWAITING_CAPTURE.value]
                ),
                Claim.deadline_at.is_not(None),
            )
            # A claim someone is acting on right now is left for the next tick.
            .with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    for claim in waiting:
        deadline = _aware(claim.deadline_at)
        if deadline is None or deadline > now:
            continue
        before = claim.state
        claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
        claim.deadline_at = now + dt.timedelta(hours=review_hours)
        audit.append(
            session, SYSTEM.id, "claim.window_expired", claim_id=claim.id, details={"from": before}
        )
        moved.append(claim.id)
    return moved


def claims_to_queue(
    session: Session, settings: Settings, now: dt.datetime | None = None
) -> list[str]:
    """The analysis outbox: claims ``submitted`` and never handed to the queue (the broker was
    down when they were saved), or handed over ``analysis_requeue_seconds`` ago and still not
    started (the message was lost). Oldest first."""
    now = now or utcnow()
    limit = now - dt.timedelta(seconds=settings.analysis_requeue_seconds)
    rows = session.execute(
        select(Claim.id, Claim.queued_at)
        .where(Claim.state == ClaimState.SUBMITTED.value)
        .order_by(Claim.seq)
    ).all()
    return [cid for cid, queued in rows if queued is None or (_aware(queued) or now) < limit]


def mark_queued(session: Session, claim_ids: Sequence[str], *, dead: Sequence[str] = ()) -> None:
    """Record that these claims' analyses were handed to the queue just now. ``dead`` ones were
    re-queued after their attempt stopped beating: their heartbeat is cleared, so that the
    reaper waits for the new attempt (or ``analysis_requeue_seconds``) instead of re-queuing
    them at every tick."""
    from sqlalchemy import update

    now = utcnow()
    if claim_ids:
        session.execute(update(Claim).where(Claim.id.in_(claim_ids)).values(queued_at=now))
    if dead:
        session.execute(
            update(Claim)
            .where(Claim.id.in_(dead), Claim.state == ClaimState.ANALYSING.value)
            .values(heartbeat_at=None)
        )


def beat(session: Session, claim_id: str, attempt: int) -> bool:
    """A running analysis says it is alive. False once the attempt is over or superseded (the
    heartbeat thread then stops)."""
    from sqlalchemy import update

    done = session.execute(
        update(Claim)
        .where(
            Claim.id == claim_id,
            Claim.state == ClaimState.ANALYSING.value,
            Claim.analysis_attempts == attempt,
        )
        .values(heartbeat_at=utcnow())
    )
    return bool(getattr(done, "rowcount", 0))


def stale_analyses(
    session: Session, settings: Settings, now: dt.datetime | None = None
) -> list[str]:
    """Claims ``analysing`` that need handing to the queue again:

    - an attempt is running (``heartbeat_at`` set) but its last heartbeat is older than
      ``analysis_heartbeat_timeout_seconds``: its worker died;
    - no attempt runs yet (a live capture arrived, or the reaper re-queued a dead attempt) and
      the claim was never handed to the queue (the broker was down) or was handed over
      ``analysis_requeue_seconds`` ago;
    - backstop, no attempt running: ``analysing`` for ``analysis_stale_minutes``.
    """
    now = now or utcnow()
    dead = now - dt.timedelta(seconds=settings.analysis_heartbeat_timeout_seconds)
    lost = now - dt.timedelta(seconds=settings.analysis_requeue_seconds)
    backstop = now - dt.timedelta(minutes=settings.analysis_stale_minutes)
    rows = (
        session.execute(select(Claim).where(Claim.state == ClaimState.ANALYSING.value))
        .scalars()
        .all()
    )
    out = []
    for claim in rows:
        heartbeat, queued = _aware(claim.heartbeat_at), _aware(claim.queued_at)
        since = _aware(claim.analysing_since)
        if heartbeat is not None:
            stale = heartbeat < dead
        else:
            stale = queued is None or queued < lost or (since is not None and since < backstop)
        if stale:
            out.append(claim.id)
    return out


def issue_capture_token(
    session: Session, actor: Actor, claim: Claim, settings: Settings
) -> tuple[str, dt.datetime]:
    """A one-time token for a live capture (only while the claim awaits one). Returns (token, expiry)."""
    import hashlib
    import secrets

    from ..store.models import CaptureToken

    if claim.state != ClaimState.AWAITING_CAPTURE:
        raise RefundlensError(
            "capture.not_requested", f"The claim is {claim.state}; no live capture is requested."
        )
    secret = secrets.token_urlsafe(24)
    expires = _aware(claim.deadline_at) or (
        utcnow() + dt.timedelta(hours=settings.capture_window_hours)
    )
    token = CaptureToken(
        id=new_id("cap"),
        claim_id=claim.id,
        secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        expires_at=expires,
    )
    session.add(token)
    audit.append(
        session,
        actor.id,
        "capture.token_issued",
        claim_id=claim.id,
        details={"token": token.id, "expires_at": expires.isoformat()},
    )
    return f"{token.id}.{secret}", expires


_CAMERA_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def capture_signature(
    data: bytes, media: Media, signature: str | None, settings: Settings
) -> dict[str, Any] | None:
    """How the platform's capture app vouches for a live photo, or None where it signs nothing.

    Two ways, each enabled by its setting: a C2PA manifest signed under the capture app's trust
    anchors (``capture_c2pa_trust_anchors_path``) that declares a camera capture, and an
    HMAC-SHA256 of the file's sha256 (``capture_hmac_key``, header ``X-Capture-Signature``).
    Where either is configured, a photo carrying neither valid proof is refused."""
    import hashlib
    import hmac

    refusal = "The photo is not signed by the platform's capture app."
    if settings.capture_c2pa_trust_anchors_path:
        from ..media.c2pa_reader import read_c2pa

        facts = read_c2pa(data, media.format, settings.capture_c2pa_trust_anchors_path)
        if facts is not None and facts.state == "trusted":
            created = [a for a in facts.actions if a.action == "c2pa.created"]
            sources = {a.digital_source_type for a in facts.actions if a.digital_source_type}
            if not created or sources - {_CAMERA_SOURCE}:
                raise RefundlensError(
                    "capture.not_live",
                    f"The capture app's manifest does not declare a camera capture (source types: {', '.join(sorted(str(s) for s in sources)) or 'none'}).",
                )
            return {
                "kind": "c2pa",
                "signer": facts.signer_name,
                "issuer": facts.signer_issuer,
                "signed_at": facts.signed_at,
                "claim_generator": facts.claim_generator,
            }
        if facts is not None and not settings.capture_hmac_key:
            raise RefundlensError(
                "capture.bad_signature",
                f"{refusal} Its C2PA manifest is {facts.state}"
                + (f" ({', '.join(facts.status_codes[:3])})" if facts.status_codes else "")
                + ", not signed under the capture app's trust anchors.",
            )
    if settings.capture_hmac_key:
        expected = hmac.new(
            settings.capture_hmac_key.encode(), media.sha256.encode(), hashlib.sha256
        ).hexdigest()
        if signature and hmac.compare_digest(expected, signature):
            return {"kind": "hmac"}
    if settings.capture_hmac_key or settings.capture_c2pa_trust_anchors_path:
        raise RefundlensError("capture.bad_signature", refusal)
    return None


def accept_capture(
    session: Session,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    claim: Claim,
    token: str,
    photo: tuple[str, bytes],
    signature: str | None,
) -> ClaimPhoto:
    """Check the token, the capture time and (where the platform signs) the signature; add the
    photo as live and send the claim back to analysis."""
    import hashlib
    import hmac

    from ..store.models import CaptureToken

    token_id, _, secret = token.partition(".")
    row = session.get(CaptureToken, token_id, with_for_update=True)
    now = utcnow()
    if (
        row is None
        or row.claim_id != claim.id
        or not hmac.compare_digest(row.secret_hash, hashlib.sha256(secret.encode()).hexdigest())
    ):
        raise RefundlensError("capture.bad_token", "The capture token is not valid for this claim.")
    if row.used_at is not None:
        raise RefundlensError(
            "capture.token_used", "The capture token was already used; ask for a new one."
        )
    if (_aware(row.expires_at) or now) < now:
        raise RefundlensError(
            "capture.token_expired", "The capture token has expired; ask for a new one."
        )
    if claim.state != ClaimState.AWAITING_CAPTURE:
        raise RefundlensError(
            "capture.not_requested", f"The claim is {claim.state}; no live capture is requested."
        )
    media = _decode(photo[1], photo[0], settings)
    proof = capture_signature(photo[1], media, signature, settings)
    signed = proof is not None
    taken = media.exif.captured_at()
    if taken is not None:
        from ..media import utc_offset

        if taken.tzinfo is None:  # EXIF without OffsetTimeOriginal: the platform's assumed zone
            taken = taken.replace(tzinfo=utc_offset(settings.capture_default_utc_offset) or dt.UTC)
        age = (now - taken).total_seconds() / 60
        # A little slack into the future for clocks a minute or two ahead.
        if not -5 <= age <= settings.capture_token_max_age_minutes:
            raise RefundlensError(
                "capture.not_live",
                f"The photo was taken {age:.0f} minutes before its upload; a live capture must be taken within {settings.capture_token_max_age_minutes:g} minutes of it.",
            )
    elif not signed:
        raise RefundlensError(
            "capture.not_live",
            "The photo carries no capture time and no capture-app signature: it cannot be shown to be live.",
        )
    row.used_at = now
    position = len(claim.photos)
    item = ClaimPhoto(
        id=new_id("pho"),
        claim_id=claim.id,
        position=position,
        sha256=blobs.put(photo[1]),
        name=photo[0],
        live_capture=True,
    )
    claim.photos.append(item)  # keeps the loaded collection in step with the session
    claim.deadline_at = None
    # Straight back to analysis (the clock was paused while the buyer was asked).
    claim.state = transition(claim.state, ClaimState.ANALYSING).value
    claim.analysing_since = now
    claim.queued_at = None  # back in the outbox until the caller hands it to the queue
    audit.append(
        session,
        actor.id,
        "capture.accepted",
        claim_id=claim.id,
        details={
            "sha256": media.sha256,
            "signed": signed,
            "signature": proof,
            "captured_at": taken.isoformat() if taken else None,
        },
    )
    notify(session, claim.merchant_id, "capture.received", claim)
    return item


def appeal(
    session: Session,
    actor: Actor,
    claim: Claim,
    reason: str,
    *,
    settings: Settings,
) -> Claim:
    """The buyer or the merchant contests a decision (or an automatic approval): a person looks again."""
    if actor.role not in ("buyer", "merchant", "admin"):
        raise RefundlensError("auth.forbidden", "Only the buyer, the merchant or an admin appeals.")
    if not reason.strip():
        raise RefundlensError("appeal.reason_required", "An appeal needs a reason in words.")
    claim.state = transition(claim.state, ClaimState.APPEALED).value
    audit.append(session, actor.id, "claim.appealed", claim_id=claim.id, details={"reason": reason})
    claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
    claim.deadline_at = utcnow() + dt.timedelta(hours=settings.review_sla_hours)
    notify(session, claim.merchant_id, "claim.appealed", claim, {"reason": reason})
    return claim


def _bank_confirmed_forgery(session: Session, claim: Claim, settings: Settings) -> None:
    """A person confirmed a forgery: its photos' fingerprints join this platform's bank."""
    from ..reuse.bank import buyer_hmac

    latest = latest_assessment(session, claim.id)
    codes = sorted(
        {
            f["code"]
            for image in (latest.report["images"] if latest else [])
            for f in image["findings"]
            if f["strength"] > 0
        }
    )
    keyed = buyer_hmac(settings.bank_buyer_hmac_key, claim.buyer_id)
    for row in session.execute(
        select(ClaimFingerprint).where(ClaimFingerprint.claim_id == claim.id)
    ).scalars():
        if row.quality < settings.reuse_min_pdq_quality:
            continue
        exists = session.execute(
            select(BankEntry).where(BankEntry.bank == settings.bank_name, BankEntry.pdq == row.pdq)
        ).first()
        if exists is None:
            session.add(
                BankEntry(
                    bank=settings.bank_name,
                    signer=settings.bank_name,
                    pdq=row.pdq,
                    codes=codes,
                    confirmed_at=utcnow(),
                    buyer_hmac=keyed,
                    claim_id=claim.id,
                )
            )


def register_packing_video(
    session: Session,
    actor: Actor,
    order: Order,
    name: str,
    video_sha256: str,
    header: Any,
) -> Any:
    """Record the merchant's packing video (already checked from its header by
    :func:`refundlens.media.video.probe_video` and stored) as waiting for the task runner, which
    keeps its sharp, distinct frames as references for this order (:func:`packing_video_frames`,
    then :func:`finish_packing_video`): a claim photo made from a packing frame is then caught
    like one made from a listing photo. Returns the ``PackingVideo`` row, ``pending``."""
    from ..store.models import PackingVideo

    row = PackingVideo(
        id=new_id("pvd"),
        order_id=order.id,
        video_sha256=video_sha256,
        name=name,
        submitted_by=actor.id,
        status="pending",
        error="",
    )
    session.add(row)
    shipped = _aware(order.shipped_at)
    audit.append(
        session,
        actor.id,
        "order.packing_video",
        details={
            "order": order.id,
            "video": row.id,
            "video_sha256": video_sha256,
            "seconds": round(float(header.duration_s), 1),
            "size": f"{header.width}x{header.height}",
            "registered_before_shipment": shipped is None or utcnow() <= shipped,
        },
    )
    return row


def packing_video_frames(
    blobs: BlobStore, settings: Settings, name: str, data: bytes
) -> tuple[list[tuple[str, float]], float]:
    """Decode the video (frames shrunk, bounded), keep its key frames as JPEG blobs with their
    reference features computed: the slow part, done by the task runner outside any database
    transaction. Returns ([(frame sha256, seconds)], the video's duration in seconds)."""
    import io

    from PIL import Image

    from ..detectors.reference import prepare_reference
    from ..media import video as video_module

    video = video_module.read_video(data, settings)
    kept = []
    for frame in video_module.key_frames(video, keep=settings.video_key_frames):
        buffer = io.BytesIO()
        Image.fromarray(frame.rgb).save(buffer, "JPEG", quality=95)
        prepare_reference(
            media_from_bytes(buffer.getvalue(), name, settings),
            feature_files(settings.reference_feature_dir),
        )
        kept.append((blobs.put(buffer.getvalue()), frame.seconds))
    return kept, video.duration_s


def finish_packing_video(
    session: Session, video_id: str, frames: Sequence[tuple[str, float]]
) -> Any:
    """Make the processed video's key frames the order's references; None if already done."""
    from ..store.models import OrderReference, PackingVideo

    row = session.get(PackingVideo, video_id, with_for_update=True)
    if row is None or row.status != "pending":
        return None  # another delivery of the same task finished first
    for sha, seconds in frames:
        session.add(
            OrderReference(
                id=new_id("oref"),
                order_id=row.order_id,
                sha256=sha,
                name=f"{row.name}@{seconds:.1f}s",
                video_sha256=row.video_sha256,
                seconds=seconds,
            )
        )
    row.status, row.frames_kept, row.finished_at = "done", [sha for sha, _ in frames], utcnow()
    order = session.get(Order, row.order_id)
    audit.append(
        session,
        SYSTEM.id,
        "order.packing_video_processed",
        details={"order": row.order_id, "video": row.id, "frames_kept": row.frames_kept},
    )
    if order is not None:
        notify(
            session,
            order.merchant_id,
            "packing_video.processed",
            None,
            {"order": row.order_id, "video": {"id": row.id, "frames_kept": len(frames)}},
        )
    return row


def fail_packing_video(session: Session, video_id: str, code: str, message: str) -> None:
    """The video could not be used (it decodes to nothing usable): recorded, and the merchant
    told, with the error's code."""
    from ..store.models import PackingVideo

    row = session.get(PackingVideo, video_id, with_for_update=True)
    if row is None or row.status != "pending":
        return
    row.status, row.error, row.finished_at = "failed", f"{code}: {message}"[:500], utcnow()
    audit.append(
        session,
        SYSTEM.id,
        "order.packing_video_failed",
        details={"order": row.order_id, "video": row.id, "error": row.error},
    )
    order = session.get(Order, row.order_id)
    if order is not None:
        notify(
            session,
            order.merchant_id,
            "packing_video.failed",
            None,
            {"order": row.order_id, "video": {"id": row.id, "error": {"code": code}}},
        )


def packing_videos_to_queue(
    session: Session, settings: Settings, now: dt.datetime | None = None
) -> list[str]:
    """The packing videos' outbox: ``pending`` and never handed to the queue, or handed over
    ``analysis_requeue_seconds`` ago (the message or its worker was lost)."""
    from ..store.models import PackingVideo

    now = now or utcnow()
    limit = now - dt.timedelta(seconds=settings.analysis_requeue_seconds)
    rows = session.execute(
        select(PackingVideo.id, PackingVideo.queued_at)
        .where(PackingVideo.status == "pending")
        .order_by(PackingVideo.created_at)
    ).all()
    return [vid for vid, queued in rows if queued is None or (_aware(queued) or now) < limit]


def mark_packing_videos_queued(session: Session, video_ids: Sequence[str]) -> None:
    from sqlalchemy import update

    from ..store.models import PackingVideo

    if video_ids:
        session.execute(
            update(PackingVideo).where(PackingVideo.id.in_(video_ids)).values(queued_at=utcnow())
        )


def assign(session: Session, actor: Actor, claim: Claim, reviewer_key_id: str | None) -> Claim:
    """Give the claim to one reviewer (None: back to the pool). A reviewer may take a claim for
    itself and give back only its own; an admin may give a claim to any live reviewer key that
    is assigned the claim's merchant, and take it back from anyone."""
    if actor.role not in ("reviewer", "admin"):
        raise RefundlensError("auth.forbidden", "Only reviewers and admins assign claims.")
    if actor.role == "reviewer":
        if reviewer_key_id not in (actor.id, None):
            raise RefundlensError("auth.forbidden", "A reviewer may only take a claim for itself.")
        if reviewer_key_id is None and claim.assigned_to not in (actor.id, None):
            raise RefundlensError(
                "auth.forbidden", "A reviewer may only give back a claim it has taken itself."
            )
    if reviewer_key_id is not None:
        key = session.get(ApiKey, reviewer_key_id)
        assigned = session.get(ReviewerAssignment, (reviewer_key_id, claim.merchant_id))
        if key is None or key.revoked or key.role != "reviewer" or assigned is None:
            raise RefundlensError(
                "assign.not_a_reviewer",
                "Claims go to a live reviewer key that is assigned the claim's merchant.",
            )
    claim.assigned_to = reviewer_key_id
    audit.append(
        session, actor.id, "claim.assigned", claim_id=claim.id, details={"to": reviewer_key_id}
    )
    return claim
