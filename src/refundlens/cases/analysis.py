"""Analysis: a claim handed to the queue, started, kept alive, finished (routed) or failed, and
the outbox and reaper that make sure every claim is analysed once or handed to a person."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..config import Settings
from ..errors import NotFound
from ..media import Media, media_from_bytes
from ..media.cache import DecodedCache
from ..metrics import metrics
from ..storable import storable
from ..store.blobs import BlobStore
from ..store.interface import (
    Assessment,
    Claim,
    Order,
    Store,
    UnprintedVideo,
    VideoFingerprint,
    new_id,
    utcnow,
)
from .actors import SYSTEM, aware
from .notifications import notify
from .review import DECISIONS, EVIDENCE_KINDS
from .routing import ClaimFacts, RoutingRules, capture_doubt, facts_from_report, route
from .states import ClaimState, transition

if TYPE_CHECKING:
    from ..media.video import Video

__all__ = [
    "beat",
    "claims_to_queue",
    "decode_inputs",
    "fail_analysis",
    "finish_analysis",
    "input_files",
    "mark_queued",
    "stale_analyses",
    "start_analysis",
    "unboxing_video_frames",
    "unfinished_analyses",
]


def unfinished_analyses(store: Store, claim: Claim) -> int:
    """Analyses of ``claim`` started since the last one that recorded an assessment: each of
    them failed or died with its worker."""
    last = store.assessments.last_attempt(claim.id)
    return claim.analysis_attempts - int(last or 0)


def _give_up_analysis(store: Store, claim: Claim, failures: int, settings: Settings) -> None:
    """A claim whose analysis keeps failing goes to a person, with no assessment: nothing is
    approved or rejected on a measurement that was never made."""
    why = f"the analysis failed {failures} times in a row: a person decides without it"
    claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
    claim.routing_reason = why
    claim.action = "review"
    claim.analysing_since = claim.heartbeat_at = None
    claim.deadline_at = utcnow() + dt.timedelta(hours=settings.review_sla_hours)
    store.audit.append(
        SYSTEM.id,
        "claim.analysis_abandoned",
        claim_id=claim.id,
        details={"failures": failures, "state": claim.state, "why": why},
    )
    notify(store, claim.merchant_id, "claim.analysis_failed", claim, {"failures": failures})


def start_analysis(store: Store, claim_id: str, settings: Settings) -> int | None:
    """Move the claim to ``analysing`` and return this attempt's number; None if nothing to do.

    Only a claim that asks for an analysis starts one: ``submitted``, or ``analysing`` (a live
    capture just arrived, or a worker died and the reaper re-queued it). A task delivered twice
    for a claim already analysed and waiting on someone finds nothing to do. A claim whose last
    ``analysis_max_attempts`` analyses all failed or died (a file that crashes its worker, a
    bug) starts none: it goes to a person instead of round the reaper for ever.
    """
    claim = store.claims.get(claim_id, for_update=True)
    if claim is None:
        return None
    if claim.state not in (ClaimState.SUBMITTED, ClaimState.ANALYSING):
        return None
    failures = unfinished_analyses(store, claim)
    if claim.state == ClaimState.ANALYSING and failures >= settings.analysis_max_attempts:
        _give_up_analysis(store, claim, failures, settings)
        return None
    claim.state = transition(claim.state, ClaimState.ANALYSING).value
    claim.analysis_attempts += 1
    claim.analysing_since = claim.heartbeat_at = utcnow()
    store.audit.append(
        SYSTEM.id,
        "claim.analysing",
        claim_id=claim.id,
        details={"attempt": claim.analysis_attempts},
    )
    return claim.analysis_attempts


def input_files(
    store: Store, claim_id: str, *, as_filed: bool = True
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], Order]:
    """(sha256, name) of the claim's photos and of its references (SKU photos, then
    packing-video frames), and its order: rows only, so that the caller decodes them
    (:func:`decode_inputs`) after its transaction has ended. ``as_filed``: only references
    that existed when the claim was filed (what its analysis compares); False for every one
    (what a live capture must not repeat)."""
    claim = store.claims.get(claim_id)
    if claim is None:
        raise NotFound("claim", claim_id)
    order = store.catalogue.order(claim.order_id)
    assert order is not None
    photos = [(p.sha256, p.name) for p in claim.photos]
    # Only references that existed when the order's first claim was filed: one added later may
    # have been made from a claim's photo (the damage painted out), and would make an honest
    # photo look derived from it. Bounded by this claim's own filing, a claim rejected (not as
    # forged) and filed again with the same photo as another type met the shop's painted-out
    # copy of it (a security review). The merchant's later evidence goes to the person
    # (POST .../evidence).
    before = (
        (store.claims.first_claimed_on_order(order.id) or claim.created_at) if as_filed else None
    )
    references = store.catalogue.reference_files(order.sku_id, before=before)
    frames = store.catalogue.order_reference_files(order.id, before=before)
    return photos, [*references, *frames], order


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
    stores: Callable[[], AbstractContextManager[Store]],
    blobs: BlobStore,
    settings: Settings,
    claim_id: str,
) -> list[Media]:
    """Key frames of the buyer's unboxing videos sent with the claim, as images to compare with;
    the videos' frame fingerprints (vPDQ, for reuse across claims) are recorded on the way, once
    per video, and so are those of the latest ``reuse_video_catch_up`` videos of claims filed
    before this one whose analysis has not finished: two claims filed with copies of one video
    and analysed at once by two workers did not see each other's (each claim's fingerprints were
    written by its own analysis). Runs in the task runner: each video is decoded (frames shrunk)
    outside any transaction. A video that decodes to nothing usable is left out of the analysis
    (logged), never failing it."""
    import io

    from PIL import Image

    from ..media.video import key_frames

    with stores() as store:
        claim = store.claims.get(claim_id)
        if claim is None:
            raise NotFound("claim", claim_id)
        own = [
            UnprintedVideo(
                claim_id, claim.order_id, claim.buyer_id, claim.merchant_id, e.sha256, e.name
            )
            for e in store.evidence.of_kind(claim_id, "unboxing_video")
            if e.sha256 is not None
        ]
        printed = store.fingerprints.printed_videos(claim_id)
        # Only claims filed shortly before: a video that yields no fingerprint (flat sampled
        # frames) stays unprinted, and every later analysis decoded it again (a review).
        filed = aware(claim.created_at) or utcnow()
        earlier = store.fingerprints.unprinted_videos_before(
            claim.seq,
            filed - dt.timedelta(minutes=settings.reuse_video_catch_up_minutes),
            (ClaimState.SUBMITTED.value, ClaimState.ANALYSING.value),
            settings.reuse_video_catch_up,
        )
    for other in earlier:  # fingerprinted only: their frames are their own claim's to compare
        _read_and_print(stores, blobs, settings, other, printed=set())
    frames: list[Media] = []
    for video_row in own:
        video = _read_and_print(stores, blobs, settings, video_row, printed)
        if video is None:
            continue
        for frame in key_frames(video, keep=settings.video_key_frames):
            buffer = io.BytesIO()
            Image.fromarray(frame.rgb).save(buffer, "JPEG", quality=95)
            frames.append(
                media_from_bytes(
                    buffer.getvalue(), f"{video_row.name}@{frame.seconds:.1f}s", settings
                )
            )
    return frames


def _read_and_print(
    stores: Callable[[], AbstractContextManager[Store]],
    blobs: BlobStore,
    settings: Settings,
    video_row: UnprintedVideo,
    printed: set[str],
) -> Video | None:
    """The video decoded (None where it decodes to nothing usable), its frame fingerprints
    recorded unless ``printed`` or the store already holds them (another analysis may have
    written them meanwhile: a copy's match shares are the same with rows twice, but once is
    what is meant)."""
    import logging

    from ..errors import MediaError
    from ..media.video import read_video, video_fingerprint

    try:
        video = read_video(blobs.get(video_row.sha256), settings)
    except MediaError as exc:
        logging.getLogger("refundlens.workers").warning(
            "claim %s: unboxing video %s left out: %s", video_row.claim_id, video_row.name, exc
        )
        return None
    if video_row.sha256 in printed:
        return video
    prints = video_fingerprint(video, settings.reuse_min_pdq_quality)
    with stores() as store:
        if video_row.sha256 not in store.fingerprints.printed_videos(video_row.claim_id):
            store.fingerprints.add_video_prints(
                VideoFingerprint(
                    claim_id=video_row.claim_id,
                    order_id=video_row.order_id,
                    buyer_id=video_row.buyer_id,
                    merchant_id=video_row.merchant_id,
                    video_sha256=video_row.sha256,
                    seconds=round(p.seconds, 3),
                    pdq=p.code.hex,
                    quality=p.code.quality,
                )
                for p in prints
            )
    printed.add(video_row.sha256)
    return video


def fail_analysis(
    store: Store, claim_id: str, attempt: int, error: str, settings: Settings
) -> Claim | None:
    """Record that this attempt raised ``error``; after ``analysis_max_attempts`` failures in a
    row the claim goes to a person. Returns the claim, or None for a stale attempt."""
    claim = store.claims.get(claim_id, for_update=True)
    if claim is None or claim.state != ClaimState.ANALYSING or claim.analysis_attempts != attempt:
        return None
    claim.heartbeat_at = None  # this attempt is over; the next one beats anew
    store.audit.append(
        SYSTEM.id,
        "claim.analysis_failed",
        claim_id=claim.id,
        details={"attempt": attempt, "error": error[:500]},
    )
    metrics().analysis_failures.inc()
    failures = unfinished_analyses(store, claim)
    if failures >= settings.analysis_max_attempts:
        _give_up_analysis(store, claim, failures, settings)
    return claim


# What a person's hand on a claim leaves in its audit log (decide, appeal).
_PERSON_ACTIONS = (*(f"decision.{d}" for d in DECISIONS), "claim.appealed")


def _person_involved(store: Store, claim_id: str) -> bool:
    return any(store.audit.count(claim_id, action) > 0 for action in _PERSON_ACTIONS)


def _merchant_answered(store: Store, claim: Claim, order: Order | None) -> bool:
    """The merchant added evidence to the claim, or a packing video to its order after the
    claim was filed (an answer too: its frames are left out of the analysis, which compares only
    what existed before). Evidence the platform adds (an admin, who may file for the buyer) is
    no answer of the merchant's."""
    if store.evidence.count_by(claim.id, "merchant", EVIDENCE_KINDS) > 0:
        return True
    filed = aware(claim.created_at)
    return (
        order is not None
        and filed is not None
        and any(
            (aware(v.created_at) or filed) > filed
            for v in store.catalogue.packing_videos_of(order.id)
        )
    )


def _buyer_record(store: Store, claim: Claim, rules: RoutingRules) -> dict[str, Any]:
    """The buyer's claims filed, at any shop, in the ``buyer_claims_window_days`` before this
    one (counted from its filing, so that a claim analysed late counts what came before it, not
    what came after): how many, and what they asked for in the policy's currency."""
    filed = aware(claim.created_at) or utcnow()
    since = filed - dt.timedelta(days=rules.buyer_claims_window_days)
    earlier = store.claims.filed_by_buyer(claim.buyer_id, since, claim.seq)
    return {
        "buyer_claims": sum(count for count, _amount in earlier.values()),
        "buyer_claimed": earlier.get(rules.currency, (0, 0.0))[1],
    }


def finish_analysis(
    store: Store,
    claim_id: str,
    attempt: int,
    report: dict[str, Any],
    rules: RoutingRules,
    settings: Settings,
) -> Claim | None:
    """Record this attempt's assessment and route the claim; a stale attempt records nothing."""
    claim = store.claims.get(claim_id, for_update=True)
    if claim is None or claim.state != ClaimState.ANALYSING or claim.analysis_attempts != attempt:
        return None  # another worker took over (re-queued) or the claim moved on
    risk, action = float(report["claim"]["risk"]), str(report["claim"]["action"])
    assessment = Assessment(
        id=new_id("asm"),
        claim_id=claim.id,
        attempt=attempt,
        risk=risk,
        action=action,
        # storable: the last line before the database (PostgreSQL refuses NUL and lone
        # surrogates in JSONB); findings and errors are made so where they are built.
        report=storable(json.loads(json.dumps(report, default=str))),
    )
    store.assessments.add(assessment)
    order = store.catalogue.order(claim.order_id)
    # Unknown (no order): no amount rule can apply to it, so a person decides (routing).
    order_currency = order.currency if order is not None else ""
    live_flags = [photo.live_capture for photo in claim.photos]  # the report's image order
    live = any(live_flags)
    vouched, not_shown, live_not_shown, confirmed = facts_from_report(
        report, live_flags, needs_reference=rules.capture_confirmation_needs_reference
    )
    target, why = route(
        action,
        ClaimFacts(
            claim.claim_type,
            claim.amount,
            len(claim.photos),
            live,
            vouched,
            not_shown,
            live_not_shown,
            confirmed,
            capture_doubt=capture_doubt(
                report,
                live_flags,
                marked=any(p.damage_box for p in claim.photos if not p.live_capture),
            )
            if live and not confirmed
            else "",
            live_capture_on_file=live
            and store.audit.count(claim.id, "capture.repeats_on_file") > 0,
            order_rejected_before=bool(store.claims.rejected_on_order(claim.order_id, claim.id)),
            claimed_on_order=store.claims.claimed_on_order(claim.order_id, besides=claim.id),
            currency=order_currency,
            # Held to the order's amount only where the platform holds claims together to it.
            order_amount=order.amount
            if order is not None and settings.claims_within_order_amount
            else None,
            person_involved=_person_involved(store, claim.id),
            merchant_answered=_merchant_answered(store, claim, order),
            **_buyer_record(store, claim, rules),
        ),
        rules,
    )
    claim.state = transition(claim.state, target).value
    claim.risk, claim.action, claim.routing_reason = risk, action, why
    claim.analysing_since = claim.heartbeat_at = None
    now = utcnow()
    claim.deadline_at = {
        ClaimState.AWAITING_MERCHANT: now + dt.timedelta(hours=settings.merchant_response_hours),
        ClaimState.AWAITING_CAPTURE: now + dt.timedelta(hours=settings.capture_window_hours),
        ClaimState.UNDER_REVIEW: now + dt.timedelta(hours=settings.review_sla_hours),
    }.get(target)
    store.audit.append(
        SYSTEM.id,
        "claim.analysed",
        claim_id=claim.id,
        assessment_id=assessment.id,
        details={"risk": risk, "action": action, "state": claim.state, "why": why},
    )
    notify(store, claim.merchant_id, "claim.analysed", claim)
    metrics().claims_analysed.labels(claim.claim_type, action).inc()
    metrics().claims_routed.labels(claim.claim_type, claim.state).inc()
    if target == ClaimState.AWAITING_MERCHANT:
        notify(
            store,
            claim.merchant_id,
            "merchant.asked",
            claim,
            {"deadline_at": claim.deadline_at.isoformat() if claim.deadline_at else None},
        )
    elif target == ClaimState.AWAITING_CAPTURE:
        notify(
            store,
            claim.merchant_id,
            "capture.requested",
            claim,
            {"deadline_at": claim.deadline_at.isoformat() if claim.deadline_at else None},
        )
    return claim


def claims_to_queue(store: Store, settings: Settings, now: dt.datetime | None = None) -> list[str]:
    """The analysis outbox: claims ``submitted`` and never handed to the queue (the broker was
    down when they were saved), or handed over ``analysis_requeue_seconds`` ago and still not
    started (the message was lost). Oldest first."""
    now = now or utcnow()
    limit = now - dt.timedelta(seconds=settings.analysis_requeue_seconds)
    rows = store.claims.submitted_queue()
    return [cid for cid, queued in rows if queued is None or (aware(queued) or now) < limit]


def mark_queued(store: Store, claim_ids: Sequence[str], *, dead: Sequence[str] = ()) -> None:
    """Record that these claims' analyses were handed to the queue just now. ``dead`` ones were
    re-queued after their attempt stopped beating: their heartbeat is cleared, so that the
    reaper waits for the new attempt (or ``analysis_requeue_seconds``) instead of re-queuing
    them at every tick."""
    store.claims.mark_queued(claim_ids, utcnow())
    store.claims.clear_heartbeats(dead)


def beat(store: Store, claim_id: str, attempt: int) -> bool:
    """A running analysis says it is alive. False once the attempt is over or superseded (the
    heartbeat thread then stops)."""
    return store.claims.beat(claim_id, attempt, utcnow())


def stale_analyses(store: Store, settings: Settings, now: dt.datetime | None = None) -> list[str]:
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
    rows = store.claims.in_state(ClaimState.ANALYSING.value)
    out = []
    for claim in rows:
        heartbeat, queued = aware(claim.heartbeat_at), aware(claim.queued_at)
        since = aware(claim.analysing_since)
        if heartbeat is not None:
            stale = heartbeat < dead
        else:
            stale = queued is None or queued < lost or (since is not None and since < backstop)
        if stale:
            out.append(claim.id)
    return out
