"""The analysis task and the periodic tick (windows, stale analyses, webhook delivery)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from typing import Any

from .. import cases, logs
from ..errors import RefundlensError
from ..metrics import metrics
from ..pipeline import analyze
from ..report import assessment_to_dict, picture_blobs
from ..runtime import Runtime
from ..store.sql.models import utcnow
from ..store.sql.repositories import SqlStore, sql_stores

__all__ = ["Heartbeat", "analyse_claim", "process_packing_video", "tick"]

log = logging.getLogger("refundlens.workers")

TICK_LEASE = "tick.queue"
"""The lease the tick's queueing holds (table ``leases``)."""


def analyse_claim(runtime: Runtime, claim_id: str, *, request_id: str | None = None) -> str:
    """Analyse one claim end to end; safe to run twice (a stale attempt records nothing).

    An analysis that raises is recorded as failed (``cases.fail_analysis``: the error in the
    audit log, and after ``analysis_max_attempts`` failures the claim goes to a person) and the
    error is raised again, for Celery's retry or the in-process runner's log."""
    with logs.bound(request_id=request_id, claim_id=claim_id):
        return _attempt(runtime, claim_id)


def _attempt(runtime: Runtime, claim_id: str) -> str:
    with runtime.db.session() as session:
        attempt = cases.start_analysis(SqlStore(session), claim_id, runtime.settings)
    if attempt is None:
        return "skipped"
    heartbeat = Heartbeat(runtime, claim_id, attempt)
    heartbeat.start()
    started = time.perf_counter()
    try:
        with logs.bound(attempt=attempt):
            state = _analyse(runtime, claim_id, attempt)
        metrics().analysis_seconds.observe(time.perf_counter() - started)
        return state
    except Exception as exc:
        heartbeat.stop()
        # The audit entry is shown to the shop: a coded error's code, else the exception's kind,
        # never its text (a message may name hosts, ports and paths, a policy file's or a
        # folder's too); the text goes to the log, with the claim and request, as the error is
        # raised again below.
        kind = exc.code if isinstance(exc, RefundlensError) else type(exc).__name__
        said = f"{kind} (the worker's log has the message)"
        with runtime.db.session() as session:
            cases.fail_analysis(SqlStore(session), claim_id, attempt, said, runtime.settings)
        raise
    finally:
        heartbeat.stop()


def process_packing_video(runtime: Runtime, video_id: str) -> str:
    """Keep a packing video's key frames as its order's references (``done``), or record why
    it cannot be used (``failed``). Decoding runs outside any transaction: on SQLite an open
    one would stop every other writer for as long as it takes. Safe to run twice."""
    from ..errors import MediaError
    from ..store.sql.models import PackingVideo

    with runtime.db.session() as session:
        row = session.get(PackingVideo, video_id)
        if row is None or row.status != "pending":
            return "skipped"
        sha, name = row.video_sha256, row.name
    try:
        frames, _seconds = cases.packing_video_frames(
            runtime.blobs, runtime.settings, name, runtime.blobs.get(sha)
        )
    except MediaError as exc:
        with runtime.db.session() as session:
            cases.fail_packing_video(SqlStore(session), video_id, exc.code, exc.message)
        return "failed"
    with runtime.db.session() as session:
        done = cases.finish_packing_video(SqlStore(session), video_id, frames)
    log.info("packing video %s: %d frames kept", video_id, len(frames))
    return "done" if done is not None else "skipped"


class Heartbeat:
    """Beats ``claims.heartbeat_at`` every ``analysis_heartbeat_seconds`` from a thread while an
    analysis runs: a killed worker stops beating, and the tick re-queues its claim once the beat
    is ``analysis_heartbeat_timeout_seconds`` old (instead of waiting out the broker's
    visibility timeout or ``analysis_stale_minutes``). Each beat is one short transaction."""

    def __init__(self, runtime: Runtime, claim_id: str, attempt: int) -> None:
        self.runtime, self.claim_id, self.attempt = runtime, claim_id, attempt
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"refundlens-heartbeat-{claim_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.runtime.settings.analysis_heartbeat_seconds):
            try:
                with self.runtime.db.session() as session:
                    alive = cases.beat(SqlStore(session), self.claim_id, self.attempt)
            except Exception:  # a busy or unreachable database: try again at the next beat
                log.warning("heartbeat of %s failed", self.claim_id, exc_info=True)
                continue
            if not alive:  # finished, failed or superseded
                return


def _analyse(runtime: Runtime, claim_id: str, attempt: int) -> str:
    # Before the history below is built: it matches this claim's video fingerprints.
    unboxing = cases.unboxing_video_frames(
        sql_stores(runtime.db), runtime.blobs, runtime.settings, claim_id
    )
    # Frames of the live capture's clip: the filed photos are compared with them too.
    clip = cases.clip_views(sql_stores(runtime.db), runtime.blobs, runtime.settings, claim_id)
    with runtime.db.session() as session:  # rows only: nothing is decoded in a transaction
        photo_files, reference_files, order = cases.input_files(SqlStore(session), claim_id)
        from ..detectors.base import OrderFacts
        from ..store.sql.models import Claim

        claim = session.get(Claim, claim_id)
        history = runtime.history(claim_id, order, claim.seq if claim is not None else None)
        # Live captures, by their bytes' sha256: the consistency check words its findings for
        # them (the damage on a live photo against the claim's photo).
        live = {p.sha256 for p in claim.photos if p.live_capture} if claim is not None else set()
        # The buyer's boxes around the damage: the views are compared there.
        marks = {
            p.sha256: (p.damage_box[0], p.damage_box[1], p.damage_box[2], p.damage_box[3])
            for p in (claim.photos if claim is not None else [])
            if p.damage_box
        }
        # The order's times as the merchant sent them (its offset), and when the claim was
        # filed: the capture check words its reason from exactly these facts.
        facts = OrderFacts(
            shipped_at=cases.order_time_for_analysis(order.shipped_at, order, runtime.settings),
            delivered_at=cases.order_time_for_analysis(order.delivered_at, order, runtime.settings),
            claimed_at=cases.in_order_zone(claim.claimed_at, order) if claim is not None else None,
        )
    photos, references = cases.decode_inputs(
        runtime.blobs, runtime.settings, photo_files, reference_files, runtime.references
    )
    assessment = analyze(
        photos,
        references,
        settings=runtime.settings,
        policy=runtime.policy,
        order=facts,
        history=history,
        unboxing=unboxing,
        live_captures=live,
        damage_marks=marks,
        live_views=clip,
    )
    report: dict[str, Any] = assessment_to_dict(assessment)
    # Pictures (overlay, mask, heatmaps) as blobs, so the review page and the evidence report
    # show exactly what this analysis saw.
    for image, entry in zip(assessment.images, report["images"], strict=True):
        entry["pictures"] = {
            name: runtime.blobs.put(png) for name, png in picture_blobs(image).items()
        }
    with runtime.db.session() as session:
        claim = cases.finish_analysis(
            SqlStore(session), claim_id, attempt, report, runtime.rules, runtime.settings
        )
    log.info(
        "claim %s analysed (attempt %s): %s",
        claim_id,
        attempt,
        claim.state if claim else "superseded",
    )
    return claim.state if claim else "superseded"


def tick(runtime: Runtime, requeue: Any = None, requeue_video: Any = None) -> dict[str, Any]:
    """Move expired windows on, re-queue stale analyses, queue the outbox, deliver due webhooks.

    ``requeue(claim_id)`` hands a claim to the queue and raises if it cannot (the broker is
    down): the claim stays in the outbox for the next tick. ``requeue_video(video_id)`` does
    the same for packing videos."""
    from .webhooks import deliver_due

    # Every worker may run Celery's beat (workers started from one image all do): two ticks at
    # once read one outbox and queued a claim twice. One tick at a time queues, under a lease;
    # the others still deliver webhooks (their events are leased one by one).
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"  # this tick
    queues = _hold(runtime, holder)
    if queues:
        try:
            moved, closed, stale, outbox, handed, videos_handed = _queue_work(
                runtime, requeue, requeue_video, lambda: _hold(runtime, holder)
            )
        finally:
            with runtime.db.session() as session:
                SqlStore(session).leases.release(TICK_LEASE, holder, utcnow())
    else:
        log.info("another tick is queueing claims; this one delivers webhooks only")
        moved, closed, stale, outbox, handed, videos_handed = [], [], [], [], [], []
    delivered = deliver_due(runtime)
    checkpoint = None
    if runtime.settings.audit_checkpoint_path:
        from ..store.sql.audit import record_checkpoint

        try:
            with runtime.db.session() as session:
                point = record_checkpoint(session, runtime.settings.audit_checkpoint_path)
            checkpoint = point.seq if point is not None else None
        except (OSError, RefundlensError):
            log.exception("cannot write the audit checkpoint; the next tick tries again")
    return {
        "packing_videos": videos_handed,
        "expired": moved,
        "final": closed,
        "requeued": [c for c in stale if c in handed],
        "queued": [c for c in outbox if c in handed],
        "webhooks": delivered,
        "audit_checkpoint": checkpoint,
        "queueing": "done" if queues else "another tick held it",
    }


def _hold(runtime: Runtime, holder: str) -> bool:
    """Take the tick's lease, or extend it for its holder, for ``tick_lease_seconds`` from now;
    whether this tick holds it."""
    now = utcnow()
    until = now + dt.timedelta(seconds=runtime.settings.tick_lease_seconds)
    with runtime.db.session() as session:
        return SqlStore(session).leases.take(TICK_LEASE, holder, now, until)


def _queue_work(
    runtime: Runtime, requeue: Any, requeue_video: Any, still_held: Any
) -> tuple[list[str], list[str], list[str], list[str], list[str], list[str]]:
    """The tick's queueing, under its lease: windows moved on, appeal windows closed, stale
    analyses and the outbox handed to the queue, packing videos too. (moved, closed, stale,
    outbox, handed, videos handed)."""
    with runtime.db.session() as session:
        moved = cases.expire_windows(SqlStore(session), settings=runtime.settings)
        closed = cases.close_appeal_windows(SqlStore(session), settings=runtime.settings)
        stale = cases.stale_analyses(SqlStore(session), runtime.settings)
        outbox = cases.claims_to_queue(SqlStore(session), runtime.settings)
        videos = cases.packing_videos_to_queue(SqlStore(session), runtime.settings)
    handed: list[str] = []
    for claim_id in [*stale, *outbox]:
        # A broker that takes its time could outlast the lease, and another tick would read
        # this outbox and queue it again (a review): the lease is extended before each claim,
        # and a tick that lost it stops; what it handed over is marked below.
        if not still_held():
            log.warning("the tick's lease passed to another tick; it queues the rest")
            break
        try:
            (requeue or (lambda cid: analyse_claim(runtime, cid)))(claim_id)
        except Exception:
            log.exception("cannot queue the analysis of %s; the next tick tries again", claim_id)
            continue
        if claim_id in stale:
            log.warning("claim %s: its analysis stopped beating; queued again", claim_id)
        handed.append(claim_id)
    if handed:
        with runtime.db.session() as session:
            cases.mark_queued(SqlStore(session), handed, dead=[c for c in stale if c in handed])
    videos_handed: list[str] = []
    for video_id in videos:
        try:
            (requeue_video or (lambda vid: process_packing_video(runtime, vid)))(video_id)
        except Exception:
            log.exception("cannot queue packing video %s; the next tick tries again", video_id)
            continue
        videos_handed.append(video_id)
    if videos_handed:
        with runtime.db.session() as session:
            cases.mark_packing_videos_queued(SqlStore(session), videos_handed)
    return moved, closed, stale, outbox, handed, videos_handed
