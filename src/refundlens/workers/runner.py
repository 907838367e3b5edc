"""Where analyses run: processes beside the server (the embedded default), or Celery when a
broker is set.

Embedded, each analysis runs in a process of its own pool (``embedded_analysis_processes``),
not on a thread of the server: on a thread it shared the interpreter lock with the requests
being served, and every short native call of the analysis then waited for the lock behind them
(bench/results/service.md measured 0.83 to 1.41 claims/s on a thread against 1.48 for one Celery
worker process). A process that dies mid-analysis is replaced; the claim is retried like any
failed analysis.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..config import Settings
from ..runtime import Runtime
from .tasks import analyse_claim, process_packing_video, tick

__all__ = ["CLAIM_QUEUE", "VIDEO_QUEUE", "Dispatcher"]

log = logging.getLogger("refundlens.workers")

CLAIM_QUEUE = "refundlens"
VIDEO_QUEUE = "refundlens.videos"
"""Packing videos wait in a queue of their own. In one queue, one shop's 30 videos kept every
shop's claims waiting behind all of them; a worker that consumes both queues takes from each in
turn (Celery has no priority between queues), so claims wait behind the videos its processes
are decoding, not the backlog; a worker that takes only ``refundlens`` never waits behind one."""

_CHILD: dict[str, Runtime] = {}


def _child_start(settings: Settings) -> None:
    from ..logs import configure_like_parent
    from ..threads import one_thread_per_process

    configure_like_parent()
    one_thread_per_process()  # one analysis per process, as in a Celery worker
    _CHILD["runtime"] = Runtime(settings)


def _child_analyse(claim_id: str, request_id: str | None = None) -> str:
    try:
        return analyse_claim(_CHILD["runtime"], claim_id, request_id=request_id)
    except Exception as exc:
        # Recorded in the database already (cases.fail_analysis); the parent only needs to
        # know, and our exceptions do not all survive pickling back.
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


def _child_packing_video(video_id: str) -> str:
    try:
        return process_packing_video(_CHILD["runtime"], video_id)
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from None


class Dispatcher:
    """``submit(claim_id)`` queues an analysis. In-process: one worker thread (the engine itself
    uses the cores), a lane of one thread for packing videos (as Celery's queue of their own: a
    claim never waits behind a shop's backlog of videos) and a ticker thread for windows, stale
    analyses and webhooks."""

    def __init__(
        self, settings: Settings, runtime: Runtime | None = None, tick_seconds: float = 10.0
    ) -> None:
        self.settings = settings
        self.celery = bool(settings.broker_url)
        self.runtime = runtime or Runtime(settings)
        self._pool: ThreadPoolExecutor | None = None
        self._video_pool: ThreadPoolExecutor | None = None
        self._processes: Executor | None = None
        self._processes_lock = threading.Lock()
        # Claims queued and not yet started: the ticker re-submits every claim still
        # ``submitted``, and a backlog longer than one tick would otherwise be queued again
        # and again (each copy a full analysis once the first has finished).
        self._queued: set[str] = set()
        self._retries: dict[str, int] = {}
        self._queued_lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.tick_seconds = tick_seconds
        self._celery_client: Any = None

    def start(self) -> None:
        if self.celery:
            return
        n = max(0, self.settings.embedded_analysis_processes)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, n), thread_name_prefix="refundlens-analysis"
        )
        self._video_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="refundlens-videos")
        if n:
            self._processes = self._new_processes(n)
        self._ticker = threading.Thread(target=self._tick_loop, name="refundlens-tick", daemon=True)
        self._ticker.start()
        # Claims left unanalysed by a previous run of this process (crash, restart).
        self.run_tick()

    def _run(self, claim_id: str, request_id: str | None = None) -> None:
        with self._queued_lock:
            self._queued.discard(claim_id)
        try:
            self._analyse(claim_id, request_id)
            self._retries.pop(claim_id, None)
        except Exception:
            log.exception("analysis of %s failed", claim_id)
            # Try again now, as Celery would: the failure is on record, and after
            # analysis_max_attempts of them the claim has left ``analysing`` for a person.
            # Counted here too, so that an error before the attempt is recorded cannot loop.
            tries = self._retries.get(claim_id, 0) + 1
            if (
                tries < self.settings.analysis_max_attempts
                and not self._stop.is_set()  # shutting down: the reaper re-queues it later
                and self._still_analysing(claim_id)
            ):
                self._retries[claim_id] = tries
                self.submit(claim_id)
            else:
                self._retries.pop(claim_id, None)

    def _new_processes(self, n: int) -> Executor:
        return ProcessPoolExecutor(
            max_workers=n,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_child_start,
            initargs=(self.settings,),
        )

    def _analyse(self, claim_id: str, request_id: str | None = None) -> None:
        processes = self._processes
        if processes is None:
            analyse_claim(self.runtime, claim_id, request_id=request_id)
            return
        try:
            processes.submit(_child_analyse, claim_id, request_id).result()
        except BrokenProcessPool:
            # A process died mid-analysis (killed, out of memory, a crash in a decoder): the
            # pool cannot be used again. Replace it; the attempt counts as a failure.
            with self._processes_lock:
                if self._processes is processes and not self._stop.is_set():
                    self._processes = self._new_processes(
                        max(1, self.settings.embedded_analysis_processes)
                    )
            self._record_death(claim_id)
            raise

    def _record_death(self, claim_id: str) -> None:
        """The dead process could not say so itself: record its attempt as failed (this
        dispatcher is the only one analysing, so the claim's current attempt was that one)."""
        from .. import cases
        from ..store.sql.models import Claim
        from ..store.sql.repositories import SqlStore

        try:
            with self.runtime.db.session() as session:
                claim = session.get(Claim, claim_id)
                if claim is not None and claim.state == "analysing":
                    cases.fail_analysis(
                        SqlStore(session),
                        claim_id,
                        claim.analysis_attempts,
                        "the analysis process died (killed, out of memory or crashed)",
                        self.settings,
                    )
        except Exception:
            log.exception("cannot record the failed analysis of %s", claim_id)

    def _still_analysing(self, claim_id: str) -> bool:
        from ..store.sql.models import Claim

        try:
            with self.runtime.db.session() as session:
                claim = session.get(Claim, claim_id)
                return claim is not None and claim.state == "analysing"
        except Exception:  # the database itself is down: the reaper re-queues it later
            log.exception("cannot read claim %s", claim_id)
            return False

    def _producer(self) -> Any:
        """A Celery client for this dispatcher's broker (not the worker app, configured from the
        environment when first imported)."""
        if self._celery_client is None:
            from celery import Celery

            client = Celery("refundlens-api", broker=self.settings.broker_url, set_as_current=False)
            client.conf.update(
                broker_connection_timeout=self.settings.readyz_timeout_seconds,
                broker_transport_options={
                    "visibility_timeout": self.settings.task_visibility_timeout_seconds
                },
            )
            self._celery_client = client
        return self._celery_client

    def submit_packing_video(self, video_id: str) -> bool:
        """Hand a packing video to the task runner (a Celery worker, or an analysis process
        beside the server: never the server's own memory) and record it; never raises, the
        tick hands over what could not be."""
        try:
            self.hand_off_packing_video(video_id)
        except Exception:
            log.exception("cannot queue packing video %s now; the tick will", video_id)
            return False
        try:
            from .. import cases
            from ..store.sql.repositories import SqlStore

            with self.runtime.db.session() as session:
                cases.mark_packing_videos_queued(SqlStore(session), [video_id])
        except Exception:
            log.exception("cannot record that packing video %s was queued", video_id)
        return True

    def hand_off_packing_video(self, video_id: str) -> None:
        if self.celery:
            self._producer().send_task(
                "refundlens.packing_video",
                args=[video_id],
                queue=VIDEO_QUEUE,
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
            )
        elif self._video_pool is not None:
            self._video_pool.submit(self._run_packing_video, video_id)
        else:
            self._run_packing_video(video_id)

    def _run_packing_video(self, video_id: str) -> None:
        processes = self._processes
        try:
            if processes is None:
                process_packing_video(self.runtime, video_id)
            else:
                processes.submit(_child_packing_video, video_id).result()
        except BrokenProcessPool:
            with self._processes_lock:
                if self._processes is processes and not self._stop.is_set():
                    self._processes = self._new_processes(
                        max(1, self.settings.embedded_analysis_processes)
                    )
            log.exception("packing video %s: its process died; the tick retries it", video_id)
        except Exception:
            log.exception("packing video %s failed; the tick retries it", video_id)

    def submit(self, claim_id: str) -> bool:
        """Hand the claim's analysis to the queue and record it (``claims.queued_at``). Never
        raises: a claim that cannot be handed over (the broker is down) stays in the outbox and
        the tick queues it later. Returns whether it was handed over now."""
        try:
            self.hand_off(claim_id)
        except Exception:
            log.exception("cannot queue the analysis of %s now; the tick will", claim_id)
            return False
        if self.celery:  # in-process, the queue is this process's memory: nothing to record
            try:
                from .. import cases
                from ..store.sql.repositories import SqlStore

                with self.runtime.db.session() as session:
                    cases.mark_queued(SqlStore(session), [claim_id])
            except Exception:  # queued anyway; the tick may queue it once more (a no-op then)
                log.exception("cannot record that %s was queued", claim_id)
        return True

    def hand_off(self, claim_id: str) -> None:
        """Give the claim to the broker (or the in-process pool); raises when that fails. The
        request that asked for it (its id, from the logs' context) goes with it, so the
        analysis' log lines and notifications carry it."""
        from ..logs import request_id

        rid = request_id()
        if self.celery:
            self._producer().send_task(
                "refundlens.analyse_claim",
                args=[claim_id],
                kwargs={"request_id": rid} if rid else {},
                queue=CLAIM_QUEUE,
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
            )
        elif self._pool is not None:
            with self._queued_lock:
                if claim_id in self._queued:
                    return
                self._queued.add(claim_id)
            self._pool.submit(self._run, claim_id, rid)
        else:
            self._run(claim_id, rid)

    def run_tick(self) -> None:
        try:
            tick(self.runtime, requeue=self.hand_off, requeue_video=self.hand_off_packing_video)
            if self.celery:
                return
            # In-process, the queue lived in this process's memory: every claim still
            # submitted is handed over (again), whatever its queued_at says.
            with self.runtime.db.session() as session:
                from sqlalchemy import select

                from ..store.sql.models import Claim

                waiting = (
                    session.execute(select(Claim.id).where(Claim.state == "submitted"))
                    .scalars()
                    .all()
                )
            for claim_id in waiting:
                self.hand_off(claim_id)
        except Exception:
            log.exception("tick failed")

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.run_tick()

    def stop(self) -> None:
        self._stop.set()
        for pool in (self._pool, self._video_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=False)
        if self._processes is not None:
            self._processes.shutdown(wait=True)
