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
import time
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select

from ..store.models import Tenant, WebhookEvent, utcnow

if TYPE_CHECKING:
    from .tasks import Runtime

__all__ = ["deliver_due", "sign", "verify_signature"]

log = logging.getLogger("refundlens.webhooks")
TOLERANCE_S = 300


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
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(3600, 2 ** max(1, attempts)))


def deliver_due(runtime: Runtime, limit: int = 100, client: httpx.Client | None = None) -> int:
    """Try every due event once; returns how many were delivered (or logged) now."""
    done = 0
    now = utcnow()
    with runtime.db.session() as session:
        events = (
            session.execute(
                select(WebhookEvent)
                .where(WebhookEvent.status == "pending")
                .order_by(WebhookEvent.created_at)
                .limit(limit)
            )
            .scalars()
            .all()
        )
        due = [
            e
            for e in events
            if (
                e.next_attempt_at.replace(tzinfo=dt.UTC)
                if e.next_attempt_at.tzinfo is None
                else e.next_attempt_at
            )
            <= now
        ]
        own = client or httpx.Client(timeout=5.0)
        from .channels import load_channel

        channel = load_channel(runtime.settings.notification_channel)
        try:
            for event in due:
                tenant = session.get(Tenant, event.tenant_id)
                body = json.dumps(event.body, sort_keys=True, ensure_ascii=False).encode("utf-8")
                if tenant is None or not tenant.webhook_url:
                    # No webhook: the pluggable channel (SMS, e-mail; the log by default).
                    try:
                        channel.send(dict(event.body))
                    except Exception as exc:
                        event.attempts += 1
                        event.last_error = str(exc)[:500]
                        if event.attempts >= runtime.settings.webhook_max_attempts:
                            event.status = "failed"
                        else:
                            event.next_attempt_at = now + _backoff(event.attempts)
                        continue
                    event.status = "logged"
                    done += 1
                    continue
                event.attempts += 1
                try:
                    response = own.post(
                        tenant.webhook_url,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Refundlens-Event-Id": event.id,
                            "X-Refundlens-Signature": sign(tenant.webhook_secret or "", body),
                        },
                    )
                    ok = 200 <= response.status_code < 300
                    error = "" if ok else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    ok, error = False, str(exc)
                if ok:
                    event.status = "delivered"
                    done += 1
                else:
                    event.last_error = error[:500]
                    if event.attempts >= runtime.settings.webhook_max_attempts:
                        event.status = "failed"
                    else:
                        event.next_attempt_at = now + _backoff(event.attempts)
        finally:
            if client is None:
                own.close()
    return done
