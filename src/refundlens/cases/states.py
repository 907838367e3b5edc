"""The claim lifecycle as an explicit state machine.

::

    submitted -> analysing -> approved (automatically: nothing doubtful)
                           -> awaiting_merchant (the merchant may answer with evidence)
                           -> awaiting_capture  (the buyer is asked for a live photo)
    awaiting_merchant -> under_review (window over, or evidence in)
    awaiting_capture  -> analysing (capture uploaded) | under_review (window over)
    under_review -> decided (approved / rejected / partial: a person's decision)
    decided | approved -> appealed -> under_review (an appeal: a person looks again)
    decided -> final (nothing changed it for appeal_window_days; approved claims stay approved)

Only a person moves a claim to ``decided``; the machine itself never rejects. Every move that is
not in ``TRANSITIONS`` is refused with :class:`IllegalTransition`.
"""

from __future__ import annotations

import enum

from ..errors import RefundlensError

__all__ = ["TRANSITIONS", "ClaimState", "IllegalTransition", "can_transition", "transition"]


class ClaimState(enum.StrEnum):
    SUBMITTED = "submitted"
    ANALYSING = "analysing"
    APPROVED = "approved"
    AWAITING_MERCHANT = "awaiting_merchant"
    AWAITING_CAPTURE = "awaiting_capture"
    UNDER_REVIEW = "under_review"
    DECIDED = "decided"
    APPEALED = "appealed"
    FINAL = "final"


S = ClaimState

# Whose time a claim's deadline measures, by state: a merchant's walkthrough read a buyer's
# capture window, and a reviewer's time to decide, as its own "time left".
DEADLINE_FOR: dict[str, str] = {
    ClaimState.AWAITING_MERCHANT.value: "merchant",  # the shop's window to answer
    ClaimState.AWAITING_CAPTURE.value: "buyer",  # the buyer's window to send a live capture
    ClaimState.UNDER_REVIEW.value: "reviewer",  # a person's time to decide
}
TRANSITIONS: dict[ClaimState, frozenset[ClaimState]] = {
    S.SUBMITTED: frozenset({S.ANALYSING}),
    # analysing -> analysing: a reaper re-queues an analysis whose worker died.
    S.ANALYSING: frozenset(
        {S.ANALYSING, S.APPROVED, S.AWAITING_MERCHANT, S.AWAITING_CAPTURE, S.UNDER_REVIEW}
    ),
    S.AWAITING_MERCHANT: frozenset({S.UNDER_REVIEW, S.ANALYSING}),
    S.AWAITING_CAPTURE: frozenset({S.ANALYSING, S.UNDER_REVIEW}),
    # a reviewer may also ask for a live capture or send the case back to the merchant
    S.UNDER_REVIEW: frozenset({S.DECIDED, S.AWAITING_CAPTURE, S.AWAITING_MERCHANT}),
    S.DECIDED: frozenset({S.APPEALED, S.FINAL}),
    S.APPEALED: frozenset({S.UNDER_REVIEW, S.FINAL}),
    S.APPROVED: frozenset({S.APPEALED, S.FINAL}),
    S.FINAL: frozenset(),
}


class IllegalTransition(RefundlensError):
    """A move the lifecycle does not allow (e.g. deciding a claim nobody reviewed)."""

    def __init__(self, current: ClaimState, target: ClaimState) -> None:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing (the case is closed)"
        super().__init__(
            "claim.illegal_transition",
            f"A claim in state {current} cannot move to {target}; from {current} it may go to {allowed}.",
        )
        self.current = current
        self.target = target


def can_transition(current: ClaimState | str, target: ClaimState | str) -> bool:
    return ClaimState(target) in TRANSITIONS[ClaimState(current)]


def transition(current: ClaimState | str, target: ClaimState | str) -> ClaimState:
    """Return ``target`` if the move is allowed, else raise :class:`IllegalTransition`."""
    current, target = ClaimState(current), ClaimState(target)
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(current, target)
    return target
