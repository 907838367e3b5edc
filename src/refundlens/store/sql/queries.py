"""Reads that several layers make the same way (one definition each)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Assessment

__all__ = ["latest_assessment"]


def latest_assessment(session: Session, claim_id: str) -> Assessment | None:
    """The claim's most recent analysis (highest attempt), or None before the first."""
    return session.execute(
        select(Assessment)
        .where(Assessment.claim_id == claim_id)
        .order_by(Assessment.attempt.desc())
        .limit(1)
    ).scalar_one_or_none()
