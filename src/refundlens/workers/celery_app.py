"""Celery wiring: the same task function, on Redis or RabbitMQ (``REFUNDLENS_BROKER_URL``).

Late acknowledgement and ``reject_on_worker_lost``: a worker killed mid-analysis leaves its
message on the broker, another worker takes it, and the attempt counter makes the first one's
late result (if any) a no-op. ``refundlens worker`` starts one with beat for the tick.
"""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_init, worker_process_init

from .. import logs
from ..config import load_settings
from ..runtime import Runtime
from ..threads import one_thread_per_process
from .runner import CLAIM_QUEUE, VIDEO_QUEUE
from .tasks import analyse_claim, process_packing_video, tick

__all__ = ["analyse_claim_task", "app", "packing_video_task"]

log = logging.getLogger(__name__)
_settings = load_settings()
app = Celery("refundlens", broker=_settings.broker_url or "memory://", backend=None)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=CLAIM_QUEUE,
    task_routes={"refundlens.packing_video": {"queue": VIDEO_QUEUE}},
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": _settings.task_visibility_timeout_seconds},
    beat_schedule={"refundlens-tick": {"task": "refundlens.tick", "schedule": 10.0}},
)
_runtime: Runtime | None = None


@worker_init.connect
@worker_process_init.connect
def _one_thread_per_analysis(**_kwargs: object) -> None:
    # One analysis per worker process, one core each: the libraries' own thread pools on top of
    # N workers would oversubscribe the cores and slow every analysis down (refundlens.threads).
    # worker_init covers the solo and thread pools, worker_process_init each prefork child.
    one_thread_per_process()


def _rt() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(load_settings())
    return _runtime


@app.task(name="refundlens.analyse_claim", bind=True, max_retries=5, default_retry_delay=5)
def analyse_claim_task(self, claim_id: str, request_id: str | None = None) -> str:  # type: ignore[no-untyped-def]
    try:
        return analyse_claim(_rt(), claim_id, request_id=request_id)
    except Exception as exc:
        # Celery's own retry line is at info: the operator's alerts read errors.
        with logs.bound(claim_id=claim_id, request_id=request_id):
            log.exception(
                "analysis of %s failed (try %d of %d)",
                claim_id,
                self.request.retries + 1,
                self.max_retries + 1,
            )
        raise self.retry(exc=exc) from exc


@app.task(name="refundlens.packing_video", bind=True, max_retries=3, default_retry_delay=10)
def packing_video_task(self, video_id: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return process_packing_video(_rt(), video_id)
    except Exception as exc:
        log.exception(
            "packing video %s failed (try %d of %d)",
            video_id,
            self.request.retries + 1,
            self.max_retries + 1,
        )
        raise self.retry(exc=exc) from exc


@app.task(name="refundlens.tick")
def tick_task() -> dict:  # type: ignore[type-arg]
    return tick(
        _rt(),
        requeue=lambda cid: analyse_claim_task.delay(cid),
        requeue_video=lambda vid: packing_video_task.delay(vid),
    )
