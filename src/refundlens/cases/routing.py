"""Where an analysed claim goes: the fusion's action, then the platform's rules per claim type.

The fusion policy says how risky a claim is (approve, request_capture, review, escalate); these
rules add what a platform decides about money and process: refund-only claims above an amount, or
claims without a photo, always go to a person. Nothing here rejects: the worst outcome is a person.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .states import ClaimState

__all__ = ["CLAIM_TYPES", "ClaimFacts", "RoutingRules", "route"]

CLAIM_TYPES = ("refund_only", "return_and_refund", "repair")


@dataclasses.dataclass(frozen=True, slots=True)
class RoutingRules:
    """Per claim type: the largest amount approved automatically (None = no limit) and whether a
    claim without photos may be approved automatically. Read from the policy's ``routing`` key."""

    auto_approve_max_amount: Mapping[str, float | None] = dataclasses.field(
        default_factory=lambda: {"refund_only": 200.0, "return_and_refund": None, "repair": None}
    )
    photo_required_for_auto_approve: bool = True

    @classmethod
    def from_policy(cls, raw: Mapping[str, Any] | None) -> RoutingRules:
        if not raw:
            return cls()
        limits = dict(cls().auto_approve_max_amount)
        for key, value in (raw.get("auto_approve_max_amount") or {}).items():
            limits[str(key)] = None if value is None else float(value)
        return cls(
            auto_approve_max_amount=limits,
            photo_required_for_auto_approve=bool(raw.get("photo_required_for_auto_approve", True)),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimFacts:
    claim_type: str
    amount: float
    photo_count: int
    has_live_capture: bool = False


def route(action: str, facts: ClaimFacts, rules: RoutingRules) -> tuple[ClaimState, str]:
    """The next state after analysis and the reason, in words a reviewer reads."""
    if action == "request_capture":
        if facts.has_live_capture:
            return (
                ClaimState.AWAITING_MERCHANT,
                "a live photo was already given and doubts remain: a person decides",
            )
        return ClaimState.AWAITING_CAPTURE, "the analysis asks for a live photo"
    if action in ("review", "escalate"):
        return (
            ClaimState.AWAITING_MERCHANT,
            f"the analysis says {action}: the merchant may answer, then a person decides",
        )
    limit = rules.auto_approve_max_amount.get(facts.claim_type)
    if limit is not None and facts.amount > limit:
        return (
            ClaimState.AWAITING_MERCHANT,
            f"{facts.claim_type} claims above {limit:g} always go to a person",
        )
    if facts.photo_count == 0 and rules.photo_required_for_auto_approve:
        return ClaimState.AWAITING_MERCHANT, "a claim without photos always goes to a person"
    return ClaimState.APPROVED, "nothing doubtful: approved automatically"
