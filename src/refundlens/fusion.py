"""Fusion: findings -> risk and action under a policy. Pure: no I/O beyond reading the policy.

risk = sigmoid(prior_log_odds + sum(weight[code] * strength)), a naive-Bayes combination of
log-likelihood ratios; the action is the highest threshold the risk reaches, raised to any floor
a finding forces. Only a person ever rejects: ``escalate`` is the worst automatic action.

Naive Bayes assumes the findings independent. Where one finding undoes what another says for
the buyer (a photo of a screen showing the product is no new photo of it), the policy's
``voids_support`` drops the second one's lowering contribution instead of letting them cancel.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from .calibration import calibrated_strengths
from .detectors.base import Finding, Reason
from .errors import RefundlensError

__all__ = [
    "ACTIONS",
    "Action",
    "Policy",
    "PolicyError",
    "Verdict",
    "fuse",
    "load_policy",
    "worst_action",
]

Action = Literal["approve", "request_capture", "review", "escalate"]
"""What the analysis recommends, mildest first (a person alone ever rejects)."""
ACTIONS: tuple[Action, ...] = get_args(Action)


class PolicyError(RefundlensError):
    """A policy file that cannot be used."""


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    prior_log_odds: float
    weights: Mapping[str, float]
    thresholds: Mapping[str, float]
    floors: Mapping[str, str]
    min_reason_contribution: float = 0.05
    ceilings: Mapping[str, str] = dataclasses.field(default_factory=dict)
    calibrated: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Measured log-likelihood ratios per code (policy/calibration.yaml); used in place of the
    detector's provisional strength, scaled by the finding's confidence."""
    routing: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The claims service's rules per claim type (``cases.routing.RoutingRules``)."""
    voids_support: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """code -> codes that no longer lower the risk when ``code`` raised it on the same image."""

    def strength(self, finding: Finding) -> float:
        # A finding its detector made informational (strength 0) stays so: calibration sets how
        # much a code weighs where it counts, not whether it does (two photos the buyer filed
        # that agree, copies of one edited photo among them: consistency.py).
        if finding.strength == 0:
            return 0.0
        if finding.code in self.calibrated:
            return self.calibrated[finding.code] * finding.confidence
        return finding.strength

    def ceiling(self, code: str) -> str | None:
        return self.ceilings.get(code) or self.ceilings.get(code.partition(".")[0])

    def weight(self, code: str) -> float:
        return float(self.weights.get(code, self.weights.get("default", 1.0)))


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """Risk in [0, 1], an action, and the findings that moved the risk, largest first."""

    risk: float
    action: str
    reasons: tuple[tuple[Finding, float], ...]
    """(finding, contribution in log-odds) sorted by |contribution|, descending."""
    sources: tuple[int, ...] = ()
    """For each reason, the index of the finding it stands for among those fused: a voided
    finding is listed as a changed copy (its pictures and masks are the original's)."""


# The keys a policy file may hold: a misspelt one ("buyer_claim_max") was ignored and the
# platform believed a rule it had not set was in force (a new user's walkthrough).
POLICY_KEYS = frozenset(
    {
        "version",
        "prior_log_odds",
        "use_calibration",
        "weights",
        "thresholds",
        "floors",
        "ceilings",
        "voids_support",
        "min_reason_contribution",
        "routing",
    }
)


def _validate(raw: Mapping[str, Any], source: str) -> Policy:
    unknown = sorted(str(k) for k in raw if k not in POLICY_KEYS)
    if unknown:
        raise PolicyError(
            "policy.invalid",
            f"{source}: unknown key(s) {', '.join(unknown)} (a policy holds "
            f"{', '.join(sorted(POLICY_KEYS))}).",
        )
    try:
        thresholds: dict[str, float] = {k: float(raw["thresholds"][k]) for k in ACTIONS[1:]}
        prior = float(raw["prior_log_odds"])
        weights = {str(k): float(v) for k, v in (raw.get("weights") or {}).items()}
        floors = {str(k): str(v) for k, v in (raw.get("floors") or {}).items()}
        ceilings = {str(k): str(v) for k, v in (raw.get("ceilings") or {}).items()}
        use_calibration = raw.get("use_calibration", True)
        if not isinstance(use_calibration, bool):  # a quoted "false" is a true string
            raise TypeError(f"use_calibration must be true or false, not {use_calibration!r}")
        calibrated = calibrated_strengths() if use_calibration else {}
        min_contrib = float(raw.get("min_reason_contribution", 0.05))
        voids = {
            str(k): tuple(str(c) for c in v)
            for k, v in (raw.get("voids_support") or {}).items()
            if not isinstance(v, str)
        }
        if any(isinstance(v, str) for v in (raw.get("voids_support") or {}).values()):
            raise TypeError("voids_support values must be lists of codes")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PolicyError("policy.invalid", f"{source}: missing or malformed key {exc}.") from exc
    values = [thresholds[k] for k in ACTIONS[1:]]
    if not all(0.0 < v < 1.0 for v in values) or values != sorted(values):
        raise PolicyError("policy.invalid", f"{source}: thresholds must rise within (0, 1).")
    for kind, table in (("floor", floors), ("ceiling", ceilings)):
        for code, action in table.items():
            if action not in ACTIONS:
                raise PolicyError(
                    "policy.invalid", f"{source}: {kind} for {code} is not an action: {action!r}."
                )
    routing = raw.get("routing") or {}
    if not isinstance(routing, dict):
        raise PolicyError("policy.invalid", f"{source}: routing must be a mapping.")
    return Policy(
        prior, weights, thresholds, floors, min_contrib, ceilings, calibrated, routing, voids
    )


@functools.cache
def _default_policy() -> dict[str, Any]:
    # Parsed once per process: YAML parsing took 15 ms of a 150 ms reference check.
    text = resources.files("refundlens").joinpath("policy/default.yaml").read_text(encoding="utf-8")
    raw: dict[str, Any] = yaml.safe_load(text)
    return raw


def load_policy(path: str | Path | None = None) -> Policy:
    """The bundled default policy, with the keys of ``path`` (a YAML file) laid over it."""
    raw = copy.deepcopy(_default_policy())
    if path:
        try:
            override = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise PolicyError("policy.unreadable", f"Cannot read policy {path}: {exc}.") from exc
        if not isinstance(override, dict):
            raise PolicyError("policy.invalid", f"{path}: expected a mapping.")
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **value}
            else:
                raw[key] = value
    return _validate(raw, str(path or "default policy"))


def worst_action(actions: Sequence[str]) -> str:
    return max(actions, key=ACTIONS.index) if actions else "approve"


def _action_for(risk: float, policy: Policy) -> str:
    action = "approve"
    for name in ACTIONS[1:]:
        if risk >= policy.thresholds[name]:
            action = name
    return action


def _voided(finding: Finding, by: str) -> Finding:
    """The finding as the reasons list it once ``by`` voided its support for the buyer."""
    return dataclasses.replace(
        finding,
        reason=Reason(
            f"{finding.reason.en} Not counted for the buyer: {by} was found on this image.",
            f"{finding.reason.zh}本图同时发现 {by}，此项不计为对买家的支持。",
        ),
        facts={**finding.facts, "voided_by": by},
    )


def fuse(findings: Sequence[Finding], policy: Policy) -> Verdict:
    """Combine one image's findings into a risk and an action."""
    contributions = [(f, policy.weight(f.code) * policy.strength(f)) for f in findings]
    raised = sorted({f.code for f, c in contributions if c > 0})
    voided_by = {v: code for code in raised for v in policy.voids_support.get(code, ())}
    contributions = [
        (_voided(f, voided_by[f.code]), 0.0) if f.code in voided_by and c < 0 else (f, c)
        for f, c in contributions
    ]
    source = {id(f): index for index, (f, _) in enumerate(contributions)}
    log_odds = policy.prior_log_odds + sum(c for _, c in contributions)
    risk = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, log_odds))))
    action = _action_for(risk, policy)
    raising = [f for f, c in contributions if c > 0]
    caps = [policy.ceiling(f.code) for f in raising]
    if raising and all(caps):
        cap = max((c for c in caps if c), key=ACTIONS.index)
        if ACTIONS.index(action) > ACTIONS.index(cap):
            action = cap
            above = ACTIONS[ACTIONS.index(cap) + 1]
            risk = min(risk, policy.thresholds[above] - 0.001)
    for finding, _ in contributions:
        floor = policy.floors.get(finding.code)
        if (
            floor
            and policy.weight(finding.code) > 0
            and ACTIONS.index(floor) > ACTIONS.index(action)
        ):
            action = floor
            risk = max(risk, policy.thresholds[floor])
    reasons = sorted(
        (
            (f, c)
            for f, c in contributions
            if abs(c) >= policy.min_reason_contribution or f.region is not None
        ),
        key=lambda fc: -abs(fc[1]),
    )
    # Informational findings (strength 0) still explain what was checked: list them last.
    listed = {id(f) for f, _ in reasons}
    reasons += [(f, c) for f, c in contributions if id(f) not in listed]
    return Verdict(round(risk, 4), action, tuple(reasons), tuple(source[id(f)] for f, _ in reasons))
