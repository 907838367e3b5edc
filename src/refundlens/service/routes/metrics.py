"""``/metrics``: the Prometheus exposition, for an admin key (or, with ``metrics_port`` set, on a
port of its own for the scraper; ``refundlens serve`` starts it). Never public by default."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...metrics import CONTENT_TYPE, exposition, metrics
from ...store.sql.models import AuditHead, Claim, WebhookEvent, utcnow
from ..deps import Admin, SessionDep

__all__ = ["read_gauges", "router"]

router = APIRouter()


def read_gauges(s: Session) -> None:
    """Set the gauges that are facts of the database (the same whichever process is scraped)."""
    m = metrics()
    waiting = [Claim.state.in_(("submitted", "analysing"))]
    depth, oldest = s.execute(
        select(func.count(), func.min(Claim.claimed_at)).where(*waiting)
    ).one()
    m.queue_depth.set(int(depth or 0))
    if oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=utcnow().tzinfo)
        m.oldest_queued_seconds.set(max(0.0, (utcnow() - oldest).total_seconds()))
    else:
        m.oldest_queued_seconds.set(0.0)
    head = s.get(AuditHead, 1)
    m.audit_chain_length.set(head.seq if head is not None else 0)
    by_status = dict(
        s.execute(
            select(WebhookEvent.status, func.count())
            .where(WebhookEvent.status.in_(("pending", "failed")))
            .group_by(WebhookEvent.status)
        ).all()
    )
    m.webhooks_pending.set(int(by_status.get("pending", 0)))
    m.webhooks_failed.set(int(by_status.get("failed", 0)))


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
def prometheus_metrics(s: SessionDep, _admin: Admin) -> Response:
    read_gauges(s)
    return Response(exposition(), media_type=CONTENT_TYPE)
