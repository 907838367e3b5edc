"""Signed webhooks from the outbox: at least once, retried with backoff, de-duplicated by event id.

Each delivery is a POST of the event's JSON body with two headers::

    X-Refundlens-Event-Id: evt_...           (the same on every retry of one event)
    X-Refundlens-Signature: t=1732300000,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>

To verify (any language): split the header, recompute HMAC-SHA256 with the tenant's webhook secret
over the timestamp, a dot and the raw body bytes, compare in constant time, and refuse a timestamp
more than five minutes from your clock (replay). Store event ids you have processed and ignore
repeats. :func:`verify_signature` is the reference implementation. Tenants without a webhook URL
get the log-only channel: the event is written to the log, and marked ``logged``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select

from ..store.sql.models import Tenant, WebhookEvent, utcnow

if TYPE_CHECKING:
    from ..runtime import Runtime
    from ..store import Database

__all__ = ["deliver_due", "retry_failed", "sign", "verify_signature"]

log = logging.getLogger("refundlens.webhooks")
TOLERANCE_S = 300
MIN_SECRET = 32
"""Characters a tenant's webhook secret must have (POST /v1/tenants refuses less)."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, body: bytes, header: str, now: float | None = None) -> bool:
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - t) > TOLERANCE_S:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), parts.get("v1", "").encode())


def _post(
    client: httpx.Client, url: str, body: bytes, headers: dict[str, str], deadline: float
) -> int:
    """POST ``body`` and return the answer's status, within ``deadline`` seconds in all. The
    answer's body is not read (a reply of gigabytes costs nothing). The post runs in a thread
    of its own: an endpoint that drips its answer a byte at a time (each byte within the
    client's read timeout) is given up on at the deadline, and the thread ends with the
    connection (its read timeout, or the client closed after the round)."""
    result: dict[str, Any] = {}

    def send() -> None:
        try:
            with client.stream("POST", url, content=body, headers=headers) as response:
                result["status"] = response.status_code
        except BaseException as exc:  # handed to the caller below
            result["error"] = exc

    worker = threading.Thread(target=send, name="webhook-post", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise TimeoutError(f"timed out: no answer within {deadline:g} s (webhook_timeout_seconds)")
    if "error" in result:
        raise result["error"]
    return int(result["status"])


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(3600, 2 ** max(1, attempts)))


def _receiver(tenant_id: str, url: str | None) -> str:
    """Whose endpoint an event went to, as the log says it: the tenant and the URL's scheme,
    host and port, never its path or query (Slack and Teams put their token there). A failure
    named the event alone, and an operator could not tell whose endpoint was down (a new user's
    walkthrough)."""
    if not url:
        return f"tenant {tenant_id} (notification channel)"
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    except ValueError:
        where = "an unreadable URL"
    return f"tenant {tenant_id} at {where}"


def deliver_due(runtime: Runtime, limit: int = 100, client: httpx.Client | None = None) -> int:
    """Try every due event once; returns how many were delivered (or logged) now.

    Three short steps, so that no database transaction is open while a merchant's endpoint
    takes its time (on SQLite an open write transaction stops every other writer): take the due
    events and lease them (``webhook_lease_seconds``: another deliverer, or this one after a
    crash, sends them again only once the lease has run out, hence at-least-once), send them,
    then record each outcome.
    """
    now = utcnow()
    lease = dt.timedelta(seconds=runtime.settings.webhook_lease_seconds)
    jobs: list[tuple[str, dict[str, Any], str | None, str]] = []
    receivers: dict[str, str] = {}  # event id -> whose endpoint, for the log
    with runtime.db.session() as session:
        events = (
            session.execute(
                select(WebhookEvent)
                # Due ones only: events waiting out a failing endpoint's back-off must not fill
                # the batch and hold up every other tenant's (a platform's copies would).
                .where(WebhookEvent.status == "pending", WebhookEvent.next_attempt_at <= now)
                .order_by(WebhookEvent.created_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        for event in events:
            due_at = event.next_attempt_at
            if (due_at.replace(tzinfo=dt.UTC) if due_at.tzinfo is None else due_at) > now:
                continue
            event.next_attempt_at = now + lease
            tenant = session.get(Tenant, event.tenant_id)
            url = tenant.webhook_url if tenant is not None else None
            secret = (tenant.webhook_secret or "") if tenant is not None else ""
            if url and len(secret) < MIN_SECRET:
                # Saved before the API asked for a long secret: its events can be forged.
                log.warning(
                    "tenant %s signs its webhooks with a secret of %d characters; send the "
                    "tenant again with one of at least %d",
                    event.tenant_id,
                    len(secret),
                    MIN_SECRET,
                )
            jobs.append((event.id, dict(event.body), url or None, secret))
            receivers[event.id] = _receiver(event.tenant_id, url)
    outcomes: list[tuple[str, bool, str, bool]] = []  # (event id, ok, error, over the webhook)
    skipped: list[tuple[str, str]] = []  # (event, url) of an endpoint that failed this round
    tried_at: dict[str, str] = {}  # url -> the event whose try found it failing
    own = client or httpx.Client(timeout=5.0)
    from .channels import load_channel

    channel = load_channel(runtime.settings.notification_channel)
    # An endpoint that does not answer (a timeout, a refused connection) is not tried again in
    # the same round: its other events are left untried, with no attempt counted, and wait a
    # short backoff, so that one hanging endpoint costs the round one timeout, not one per event
    # (the round runs on a worker that also analyses claims), and no event is marked failed
    # without being tried ``webhook_max_attempts`` times.
    unreachable: set[str] = set()
    started = time.monotonic()
    try:
        for event_id, body_json, url, secret in jobs:
            if time.monotonic() - started > runtime.settings.webhook_lease_seconds / 2:
                # Past half the lease, stop: the events not tried stay leased (no attempt
                # counted) and are due again when it runs out, before another deliverer could
                # take the ones this round is still sending and send them twice.
                break
            if url is not None and url in unreachable:
                skipped.append((event_id, url))
                continue
            if url is None:
                # No webhook: the pluggable channel (SMS, e-mail; the log by default).
                try:
                    channel.send(body_json)
                    outcomes.append((event_id, True, "", False))
                except Exception as exc:
                    outcomes.append((event_id, False, str(exc), False))
                continue
            body = json.dumps(body_json, sort_keys=True, ensure_ascii=False).encode("utf-8")
            headers = {
                "Content-Type": "application/json",
                "X-Refundlens-Event-Id": event_id,
                "X-Request-ID": str(body_json.get("request_id") or event_id),
                "X-Refundlens-Signature": sign(secret, body),
            }
            try:
                status = _post(own, url, body, headers, runtime.settings.webhook_timeout_seconds)
                ok = 200 <= status < 300
                outcomes.append((event_id, ok, "" if ok else f"HTTP {status}", True))
            except Exception as exc:  # any failure is this event's, never the round's
                unreachable.add(url)
                tried_at[url] = event_id
                outcomes.append((event_id, False, str(exc) or type(exc).__name__, True))
    finally:
        if client is None:
            own.close()
    from ..metrics import metrics

    for event_id, ok, error, webhook in outcomes:
        outcome = "delivered" if ok else ("timeout" if "timed out" in error.lower() else "failed")
        if not ok:  # the event's id and the error only: never its body
            log.warning(
                "webhook %s to %s not delivered: %s",
                event_id,
                receivers.get(event_id, "?"),
                error[:200],
            )
        metrics().webhook_deliveries.labels(outcome if webhook else f"channel_{outcome}").inc()
    done = 0
    with runtime.db.session() as session:
        retry_at: dict[str, dt.datetime] = {}
        for event_id, ok, error, webhook in outcomes:
            row = session.get(WebhookEvent, event_id, with_for_update=True)
            if row is None or row.status != "pending":
                continue
            if webhook or not ok:
                row.attempts += 1
            if ok:
                row.status = "delivered" if webhook else "logged"
                done += 1
                continue
            row.last_error = error[:500]
            if row.attempts >= runtime.settings.webhook_max_attempts:
                row.status = "failed"
            else:
                row.next_attempt_at = utcnow() + _backoff(row.attempts)
            retry_at[event_id] = row.next_attempt_at
        # Not tried, so not an attempt: each waits as long as the event whose try found the
        # endpoint failing (the endpoint's backoff), so that a hanging endpoint is tried once
        # per backoff, not once a round, and no event fails without its own tries.
        for event_id, url in skipped:
            row = session.get(WebhookEvent, event_id, with_for_update=True)
            if row is not None and row.status == "pending":
                row.next_attempt_at = retry_at.get(tried_at.get(url, ""), utcnow() + _backoff(1))
    return done


def retry_failed(database: Database, tenant_id: str | None = None) -> int:
    """Send every failed event again (of ``tenant_id``'s endpoint only, where given): each is
    pending again, due now, its attempts from zero; its id is unchanged, so a receiver that did
    get it once ignores it. Returns how many. For an endpoint that was down longer than its
    events' retries lasted (``webhook_max_attempts``)."""
    with database.session() as session:
        query = select(WebhookEvent).where(WebhookEvent.status == "failed")
        if tenant_id is not None:
            query = query.where(WebhookEvent.tenant_id == tenant_id)
        rows = session.execute(query.with_for_update()).scalars().all()
        for row in rows:
            row.status, row.attempts, row.next_attempt_at = "pending", 0, utcnow()
        return len(rows)
