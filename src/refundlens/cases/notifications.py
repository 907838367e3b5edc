"""Notifications: every change a merchant must hear of is queued in the outbox, in the same
transaction as the change (delivered at least once by the workers, de-duplicated by ``id``)."""

from __future__ import annotations

from typing import Any

from ..logs import request_id
from ..store.interface import Claim, Store, WebhookEvent, new_id, utcnow

__all__ = ["notify"]


def notify(
    store: Store,
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
    # The request that caused the change (the API's X-Request-ID, carried into the analysis),
    # so that a platform can match the notification to its own call.
    request = request_id()
    if request:
        body["request_id"] = request
    event_id = new_id("evt")
    body["id"] = event_id
    store.outbox.add(
        WebhookEvent(
            id=event_id,
            tenant_id=tenant_id,
            event=event,
            claim_id=claim.id if claim else None,
            body=body,
        )
    )
