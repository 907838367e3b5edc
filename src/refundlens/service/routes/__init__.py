"""The API's routes, one ``APIRouter`` per resource; ``create_app`` includes them all."""

from __future__ import annotations

from fastapi import APIRouter

from . import (
    audit,
    buyers,
    capture,
    claims,
    evidence,
    health,
    metrics,
    orders,
    reports,
    review,
    skus,
    tenants,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    tenants.router,
    skus.router,
    orders.router,
    claims.router,
    evidence.router,
    reports.router,
    review.router,
    capture.router,
    audit.router,
    buyers.router,
    metrics.router,
)
"""In the order the API has always listed them."""
