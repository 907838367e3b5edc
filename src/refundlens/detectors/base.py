"""The Finding contract and the Detector base class that every detector family follows.

A detector looks at one claim image (and whatever context it declares it ``requires``) and returns
Findings. A detector that lacks its input abstains (returns nothing); it never raises for that.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from ..config import Settings
from ..media import Media
from ..storable import storable, storable_text

__all__ = [
    "ClaimHistory",
    "Context",
    "DamageBox",
    "Detector",
    "Example",
    "FeatureStore",
    "Finding",
    "OrderFacts",
    "Reason",
    "Region",
    "Requirement",
]


class Requirement(enum.StrEnum):
    """An input beyond the claim's pixels that a detector needs; without it the detector is not
    run (pipeline.py checks each in one table)."""

    REFERENCES = "references"
    HISTORY = "history"
    UNBOXING = "unboxing"
    VIEWS = "views"


class ClaimHistory(Protocol):
    """Cross-claim memory for one claim being analysed. The claims service provides one over
    its database (``reuse.history.History``); ``reuse.memory.MemoryHistory`` holds lists (the
    examples, one-off checks). Each match is a dict of plain values, shown as a finding's facts."""

    def seen_before(self, code: bytes) -> list[dict[str, Any]]:
        """Earlier claims (of other orders) with a photo within the PDQ distance of ``code``."""

    def bank_matches(self, code: bytes) -> list[dict[str, Any]]:
        """Entries of the banks of confirmed forgeries within the distance of ``code``."""

    def bank_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        """Bank entries whose local print (``reuse.prints``) the RGB ``photo`` is a copy of,
        cropped, resized or mirrored, best first: each with ``inliers``, ``matched_percent``,
        ``coverage_percent`` and the entry's ``pdq`` (hex)."""

    def earlier_same_sku(self) -> list[dict[str, Any]]:
        """Earlier claims' decoded photos on the same SKU, for local-feature matching (crops)."""

    def buyer_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        """The buyer's earlier claims (other orders, any SKU or shop) with a photo whose local
        print (kept at filing) the RGB ``photo`` is a copy of, cropped, resized or mirrored."""

    def platform_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        """Earlier claims (other orders) at any shop, for any product, by any buyer, with a photo
        that the RGB ``photo`` is a cropped, resized or mirrored copy of (a bounded index of the
        latest photos' local prints)."""

    def video_frame_matches(self, code: bytes) -> list[dict[str, Any]]:
        """Earlier claims' video frames within the distance of ``code``."""

    def videos_seen_before(self) -> list[dict[str, Any]]:
        """This claim's videos matched frame by frame against earlier claims' videos."""

    def buyer_summary(self) -> dict[str, Any]:
        """The buyer's ledger: other claims, outcomes, confirmed forgeries and their value."""


class FeatureStore(Protocol):
    """Where a reference's matching features are kept between processes (bytes by key); a
    miss is None, never an error. ``store.features.FeatureFiles`` keeps them on disk."""

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def put(self, key: str, data: bytes) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Reason:
    """One sentence for a person, in English and Simplified Chinese."""

    en: str
    zh: str

    def __post_init__(self) -> None:
        # A sentence may quote what a file says (a label's producer): never unstorable text.
        object.__setattr__(self, "en", storable_text(self.en))
        object.__setattr__(self, "zh", storable_text(self.zh))

    def as_dict(self) -> dict[str, str]:
        return {"en": self.en, "zh": self.zh}


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Region:
    """Where a finding points: a mask (bool) or heatmap (float in [0, 1]) over the claim image.

    ``array`` is at the claim's analysis resolution; report writers scale it to the full
    ``(height, width)`` of the claim image.
    """

    array: npt.NDArray[Any]
    kind: str = "mask"

    def full_size(self, width: int, height: int) -> npt.NDArray[np.uint8]:
        """The region as uint8 (0/255 for masks, 0-255 for heatmaps) at ``width`` x ``height``."""
        import cv2

        src = self.array.astype(np.float32)
        if self.kind == "mask":
            src = src.astype(np.float32)
        scaled = cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR)
        if self.kind == "mask":
            return np.where(scaled >= 0.5, 255, 0).astype(np.uint8)
        return np.clip(scaled * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True, slots=True, eq=False)
class Finding:
    """One piece of evidence about one claim image.

    ``strength`` is a natural-log likelihood ratio: positive points towards forgery, negative towards
    a genuine photo, 0 is informational. ``confidence`` in [0, 1] says how sure the detector is of
    its own measurement. ``facts`` hold the numbers a reviewer can check (JSON-serialisable).
    """

    code: str
    strength: float
    confidence: float
    reason: Reason
    facts: Mapping[str, Any]
    region: Region | None = None
    detector: str = ""
    pictures: Mapping[str, npt.NDArray[np.uint8]] = dataclasses.field(default_factory=dict)
    """RGB images, aligned with the claim's analysis copy, that a report may show (e.g. the
    reference warped onto the claim)."""

    def __post_init__(self) -> None:
        # Facts quote what a file says (metadata, labels): the sender's to write.
        object.__setattr__(self, "facts", storable(self.facts))


DamageBox = tuple[float, float, float, float]
"""A box the buyer drew around the damage: (left, top, right, bottom) as fractions of the
photo's width and height, as the photo is shown (EXIF orientation applied)."""


@dataclasses.dataclass(frozen=True, slots=True)
class OrderFacts:
    """The order timeline a claim is about; times are timezone-aware, any may be unknown."""

    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    claimed_at: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Context:
    """What a detector may use beside the claim image itself."""

    references: Sequence[Media] = ()
    settings: Settings = dataclasses.field(default_factory=Settings)
    order: OrderFacts = dataclasses.field(default_factory=OrderFacts)
    unboxing: Sequence[Media] = ()
    """Key frames of the buyer's unboxing video sent with the claim."""
    history: ClaimHistory | None = None
    """Cross-claim memory: earlier claims' fingerprints, the shared bank, the buyer's ledger.
    The claims service provides it; the CLI has none."""
    features: FeatureStore | None = None
    """Where reference features computed once are kept (None: this process's memory only)."""
    views: Sequence[Media] = ()
    """The claim's other photos (live captures included): other views of the same item."""
    live_captures: frozenset[str] = frozenset()
    """sha256 of the claim's photos taken as live captures (the capture page, a signed app)."""
    damage_marks: Mapping[str, DamageBox] = dataclasses.field(default_factory=dict)
    """The damage as the buyer marked it, by the sha256 of the photo it was drawn on: the
    consistency check compares the other views there, and only there may it confirm damage."""


@dataclasses.dataclass(frozen=True, slots=True)
class Example:
    """A small case with a known answer, run by the shared contract test for every detector."""

    name: str
    build: Callable[[], tuple[Media, Context]]
    expected_codes: frozenset[str]


class Detector(abc.ABC):
    """A family of evidence. Subclasses set ``name``, ``codes`` and ``requires``."""

    name: ClassVar[str]
    codes: ClassVar[Mapping[str, str]]
    """Every finding code this detector can emit, with its one-line meaning (documented)."""
    requires: ClassVar[frozenset[Requirement]] = frozenset()
    """Inputs beyond pixels the detector needs, e.g. ``{Requirement.REFERENCES}``."""

    @abc.abstractmethod
    def analyze(self, claim: Media, context: Context) -> list[Finding]:
        """Return findings about ``claim``; an empty list when there is nothing to say."""

    @classmethod
    @abc.abstractmethod
    def examples(cls) -> Sequence[Example]:
        """Small cases with known answers (built on demand; they may synthesise images)."""
