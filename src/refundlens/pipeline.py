"""pipeline.analyze: the one call that wires media -> detectors -> fusion.

The CLI, the service and the workers all call it, so there is one behaviour to test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence

from .config import Settings
from .detectors import default_detectors
from .detectors.base import (
    ClaimHistory,
    Context,
    Detector,
    FeatureStore,
    Finding,
    OrderFacts,
    Requirement,
)
from .fusion import Policy, Verdict, fuse, load_policy, worst_action
from .media import Media

__all__ = ["Assessment", "ImageAssessment", "analyze"]

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
    live_captures: Collection[str] = (),
) -> Assessment:
    """Run every detector on every claim image and fuse the findings per image. ``features``
    defaults to the folder named by ``reference_feature_dir`` (none: memory only). Each image
    sees the claim's other images as other views of the item; ``live_captures`` names (sha256)
    those taken live."""
    settings = settings or Settings()
    policy = policy or load_policy(settings.policy_path or None)
    detectors = default_detectors() if detectors is None else detectors
    if features is None and settings.reference_feature_dir:
        from .store.features import feature_files

        features = feature_files(settings.reference_feature_dir)
    context = Context(
        references=tuple(references),
        settings=settings,
        order=order or OrderFacts(),
        history=history,
        unboxing=tuple(unboxing),
        features=features,
        live_captures=frozenset(live_captures),
    )
    images = []
    for claim in claims:
        findings: list[Finding] = []
        seen = dataclasses.replace(context, views=tuple(c for c in claims if c is not claim))
        for detector in detectors:
            if all(_PRESENT[need](seen) for need in detector.requires):
                findings.extend(detector.analyze(claim, seen))
        images.append(ImageAssessment(claim, tuple(findings), fuse(findings, policy)))
    return Assessment(tuple(images), tuple(references))
