"""What an operations team watches: Prometheus metrics, one set for every process of a deployment.

The API's processes, the embedded task pool and each Celery worker all count into the same
series: with ``metrics_dir`` set (the CLI sets it before anything is counted), prometheus-client
runs in its multiprocess mode and every process writes its samples to files there, which the
``/metrics`` route sums when scraped [1]_. Without it (tests, the library used alone) the
counters live in this process only.

The names, labels and what to alert on are in ``docs/operations.md``; a test checks that every
metric defined here is documented there. Labels never carry a claim id, a buyer or any other
value without a small fixed set: a label per claim would grow the series without bound.

References
----------
.. [1] prometheus/client_python, "Multiprocess Mode (E.g. Gunicorn)",
   https://prometheus.github.io/client_python/multiprocess/
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["CONTENT_TYPE", "Metrics", "configure", "exposition", "metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ENV = "PROMETHEUS_MULTIPROC_DIR"
_made: Metrics | None = None


def configure(directory: str | os.PathLike[str] | None) -> None:
    """Count into ``directory`` (shared by every process), or in memory when None. Call before
    the first metric is touched: prometheus-client picks its storage at that moment."""
    if directory:
        Path(directory).mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ[_ENV] = str(directory)


class Metrics:
    """The series refundlens keeps (documented in docs/operations.md)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.claims_received = Counter(
            "refundlens_claims_received_total", "Claims filed.", ["claim_type"]
        )
        self.claims_analysed = Counter(
            "refundlens_claims_analysed_total",
            "Analyses that recorded an assessment, by the action it recommends.",
            ["claim_type", "action"],
        )
        self.claims_routed = Counter(
            "refundlens_claims_routed_total",
            "Where analysed claims went (state after routing).",
            ["claim_type", "state"],
        )
        self.claims_decided = Counter(
            "refundlens_claims_decided_total",
            "People's decisions on claims.",
            ["claim_type", "decision"],
        )
        self.analysis_failures = Counter(
            "refundlens_analysis_failures_total", "Analysis attempts that raised."
        )
        self.analysis_seconds = Histogram(
            "refundlens_analysis_seconds",
            "Time of one claim's analysis, decode to assessment.",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.detector_seconds = Histogram(
            "refundlens_detector_seconds",
            "Time of one detector on one image.",
            ["detector"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8),
        )
        self.webhook_deliveries = Counter(
            "refundlens_webhook_deliveries_total",
            "Webhook delivery attempts by outcome.",
            ["outcome"],
        )
        self.capture_requests = Counter(
            "refundlens_capture_requests_total",
            "Live captures asked for (tokens issued) and what became of uploads.",
            ["outcome"],
        )
        self.reference_feature_cache = Counter(
            "refundlens_reference_feature_cache_total",
            "Reference features read back from the cache (hit) or computed (miss).",
            ["result"],
        )
        self.errors = Counter(
            "refundlens_errors_total", "Refusals and failures answered, by error code.", ["code"]
        )
        self.http_requests = Histogram(
            "refundlens_http_request_seconds",
            "API and web requests, by route template and status class.",
            ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # Read from the database when scraped (service/metrics route), not counted: the same
        # figure whichever process answers the scrape.
        self.queue_depth = Gauge(
            "refundlens_queue_depth",
            "Claims waiting for an analysis (submitted, or analysing without a live attempt).",
            multiprocess_mode="mostrecent",
        )
        self.oldest_queued_seconds = Gauge(
            "refundlens_oldest_queued_seconds",
            "Age of the oldest claim waiting for an analysis.",
            multiprocess_mode="mostrecent",
        )
        self.audit_chain_length = Gauge(
            "refundlens_audit_chain_length",
            "Entries in the tamper-evident audit log.",
            multiprocess_mode="mostrecent",
        )
        self.webhooks_pending = Gauge(
            "refundlens_webhooks_pending",
            "Notifications waiting for delivery.",
            multiprocess_mode="mostrecent",
        )
        # Given up on after webhook_max_attempts: they leave webhooks_pending, so an alert on
        # that alone went quiet as the events were lost (an integrator's walkthrough).
        self.webhooks_failed = Gauge(
            "refundlens_webhooks_failed",
            "Notifications given up on (failed), until sent again (refundlens webhooks retry).",
            multiprocess_mode="mostrecent",
        )


def metrics() -> Metrics:
    """The process's metrics, made on first use (after :func:`configure`)."""
    global _made
    if _made is None:
        _made = Metrics()
    return _made


def exposition() -> bytes:
    """The text a Prometheus scrape reads: every process's series where ``metrics_dir`` is
    shared, this process's otherwise."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    metrics()  # the series exist (at zero) before their first event
    directory = os.environ.get(_ENV)
    if not directory:
        return bytes(generate_latest(REGISTRY))
    from prometheus_client import multiprocess

    registry: Any = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return bytes(generate_latest(registry))
