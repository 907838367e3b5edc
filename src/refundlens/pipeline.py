"""pipeline.analyze: the one call that wires media -> detectors -> fusion.

The CLI, the service and the workers all call it, so there is one behaviour to test.

Detectors run cheapest first (``COST_ORDER``). Pixel forensics, the most expensive, can only
raise an image's risk (every pixels strength is 0 or more, and the policy caps the family at
review): where the cheaper findings already send the image to ``escalate`` (a generator's
label, a derived copy of the listing photo, a bank match), nothing it finds can change the
action, so it is skipped and the assessment says so (``ImageAssessment.skipped``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Mapping, Sequence

from .config import Settings
from .detectors import default_detectors
from .detectors.base import (
    ClaimHistory,
    Context,
    DamageBox,
    Detector,
    FeatureStore,
    Finding,
    OrderFacts,
    Requirement,
)
from .errors import RefundlensError
from .fusion import Policy, Verdict, fuse, load_policy, worst_action
from .media import Media
from .metrics import metrics

__all__ = ["Assessment", "ImageAssessment", "analyze", "describe_refusal"]

# Cheapest first: metadata, cross-claim memory, the reference check (features cached per SKU),
# the unboxing frames, pixel forensics last (about 70% of a claim's time, bench/results/service.md).
COST_ORDER = ("provenance", "capture", "reuse", "reference", "unboxing", "pixels")
# Families whose findings never lower the risk: skipped once the action is already escalate.
_ONLY_RAISE = frozenset({"pixels"})

# Whether the context holds each input a detector may require; a detector missing one abstains.
_PRESENT: dict[Requirement, Callable[[Context], bool]] = {
    Requirement.REFERENCES: lambda c: bool(c.references),
    Requirement.HISTORY: lambda c: c.history is not None,
    Requirement.UNBOXING: lambda c: bool(c.unboxing),
    Requirement.VIEWS: lambda c: bool(c.views),
}


@dataclasses.dataclass(frozen=True, eq=False)
class ImageAssessment:
    media: Media
    findings: tuple[Finding, ...]
    verdict: Verdict
    ran: tuple[str, ...] = ()
    """The detectors that ran on this image, in the order they ran."""
    skipped: tuple[tuple[str, str], ...] = ()
    """(detector, why) for each detector not run on this image."""

    @property
    def risk(self) -> float:
        return self.verdict.risk

    @property
    def action(self) -> str:
        return self.verdict.action


@dataclasses.dataclass(frozen=True, eq=False)
class Assessment:
    """The claim's risk is its riskiest image's; its action the most severe image action."""

    images: tuple[ImageAssessment, ...]
    references: tuple[Media, ...]

    @property
    def risk(self) -> float:
        return max((i.risk for i in self.images), default=0.0)

    @property
    def action(self) -> str:
        return worst_action([i.action for i in self.images])


def analyze(
    claims: Sequence[Media],
    references: Sequence[Media] = (),
    *,
    settings: Settings | None = None,
    policy: Policy | None = None,
    detectors: Sequence[Detector] | None = None,
    order: OrderFacts | None = None,
    history: ClaimHistory | None = None,
    unboxing: Sequence[Media] = (),
    features: FeatureStore | None = None,
    early_stop: bool | None = None,
    live_captures: Collection[str] = (),
    damage_marks: Mapping[str, DamageBox] | None = None,
    live_views: Sequence[Media] = (),
) -> Assessment:
    """Run the detectors on every claim image, cheapest first, and fuse the findings per image.
    ``features`` defaults to the folder named by ``reference_feature_dir`` (none: memory only).
    Each image sees the claim's other images as other views of the item; ``live_captures``
    names (sha256) those taken live, ``damage_marks`` the buyer's box around the damage on a photo
    (by sha256). ``live_views`` are further live views of the item that are not claim images
    (frames of a live capture's clip, :func:`refundlens.cases.clip_views`): each filed photo is
    compared with them too, a live one is not (two live views confirm nothing to routing), and
    they are not assessed themselves. ``early_stop`` (default: the ``analysis_early_stop`` setting) False runs every
    detector whatever the cheaper ones found."""
    settings = settings or Settings()
    if early_stop is None:
        early_stop = settings.analysis_early_stop
    policy = policy or load_policy(settings.policy_path or None)
    detectors = default_detectors() if detectors is None else detectors
    if features is None and settings.reference_feature_dir:
        from .store.features import feature_files

        features = feature_files(settings.reference_feature_dir)
    # A frame with the bytes of a claim photo is that photo, never a live view of it.
    filed = {c.sha256 for c in claims}
    live_views = [v for v in live_views if v.sha256 not in filed]
    context = Context(
        references=tuple(references),
        settings=settings,
        order=order or OrderFacts(),
        history=history,
        unboxing=tuple(unboxing),
        features=features,
        live_captures=frozenset(live_captures) | {v.sha256 for v in live_views},
        damage_marks=dict(damage_marks or {}),
    )
    rank = {name: i for i, name in enumerate(COST_ORDER)}
    ordered = sorted(
        range(len(detectors)), key=lambda i: (rank.get(detectors[i].name, len(rank)), i)
    )
    images = []
    for claim in claims:
        found: dict[int, list[Finding]] = {}
        others = tuple(c for c in claims if c is not claim)
        if claim.sha256 not in context.live_captures:
            others += tuple(live_views)
        seen = dataclasses.replace(context, views=others)
        timings = metrics().detector_seconds
        ran: list[str] = []
        skipped: list[tuple[str, str]] = []
        for i in ordered:
            detector = detectors[i]
            missing = [need.value for need in detector.requires if not _PRESENT[need](seen)]
            if missing:
                skipped.append((detector.name, "no " + ", ".join(missing)))
                continue
            if early_stop and detector.name in _ONLY_RAISE:
                so_far = [f for part in found.values() for f in part]
                if so_far and fuse(so_far, policy).action == "escalate":
                    skipped.append((detector.name, "escalate already: it can only raise the risk"))
                    continue
            started = time.perf_counter()
            found[i] = detector.analyze(claim, seen)
            timings.labels(detector.name).observe(time.perf_counter() - started)
            ran.append(detector.name)
        # Findings keep the detectors' listed order, whatever order they ran in.
        findings = [f for i in sorted(found) for f in found[i]]
        images.append(
            ImageAssessment(
                claim, tuple(findings), fuse(findings, policy), tuple(ran), tuple(skipped)
            )
        )
    return Assessment(tuple(images), tuple(references))


def describe_refusal(error: RefundlensError, settings: Settings | None = None) -> RefundlensError:
    """Add to a refused file's error what the provenance detector reads in its metadata.

    An animated file is refused (``media.animated``: send a still photo), yet an animated ComfyUI
    or video-model output says what made it; ``facts["provenance"]`` then lists those findings
    (code, reason, facts) for the response and the audit entry. The file stays refused and no
    verdict changes. Other errors are returned as they are.
    """
    from .detectors.provenance import refused_file_findings

    still = getattr(error, "still", None)
    if isinstance(still, Media):
        found = refused_file_findings(still, Context(settings=settings or Settings()))
        if found:
            error.facts["provenance"] = found
    return error
