"""cases: the after-sales case as a domain, with no database or web in sight.

``states`` is the lifecycle state machine; ``routing`` decides where an analysed claim goes.
"""

from .routing import ClaimFacts, RoutingRules, route
from .states import ClaimState, IllegalTransition, can_transition, transition

__all__ = [
    "ClaimFacts",
    "ClaimState",
    "IllegalTransition",
    "RoutingRules",
    "can_transition",
    "route",
    "transition",
]
