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
    *,
    platforms_only: bool = False,
) -> None:
    """Queue a notification in the outbox (same transaction as the change it reports) for
    ``tenant_id``, and a copy for each platform tenant with a webhook URL: the platform runs the
    buyer's app (it sends the capture link, passes on a decision's note to the buyer) and its
    risk team watches every shop. Each copy is its own event (own id, own retries).
    ``platforms_only``: the platform's copies alone (what no claim of the shop's came of)."""
    body: dict[str, Any] = {"event": event, "at": utcnow().isoformat()}
    if claim is not None:
        # The order as the shop knows it, and the amount with its currency: a shop mapped each
        # event to its own order with two more requests (a platform integrator's walkthrough).
        order = store.catalogue.order(claim.order_id)
        body["claim"] = {
            "id": claim.id,
            "state": claim.state,
            "risk": claim.risk,
            "action": claim.action,
            "order_id": claim.order_id,
            "order_external_id": order.external_id if order is not None else None,
            "amount": claim.amount,
            "currency": order.currency if order is not None else None,
        }
    body.update(extra or {})
    # The request that caused the change (the API's X-Request-ID, carried into the analysis),
    # so that a platform can match the notification to its own call.
    request = request_id()
    if request:
        body["request_id"] = request
    platforms = [t.id for t in store.catalogue.platform_webhooks() if t.id != tenant_id]
    for receiver in platforms if platforms_only else [tenant_id, *platforms]:
        event_id = new_id("evt")
        copy = {**body, "id": event_id}
        if receiver != tenant_id:
            copy["tenant"] = tenant_id  # whose event the platform's copy is
        store.outbox.add(
            WebhookEvent(
                id=event_id,
                tenant_id=receiver,
                event=event,
                claim_id=claim.id if claim else None,
                body=copy,
            )
        )
