"""Detector families. Each returns Findings under the contract in ``base``."""

from .base import Context, Detector, Example, Finding, OrderFacts, Reason, Region
from .capture import CaptureDetector
from .consistency import ConsistencyDetector
from .pixels import PixelsDetector
from .provenance import ProvenanceDetector
from .reference import ReferenceDetector
from .reuse import ReuseDetector
from .unboxing import UnboxingDetector

__all__ = [
    "CaptureDetector",
    "ConsistencyDetector",
    "Context",
    "Detector",
    "Example",
    "Finding",
    "OrderFacts",
    "PixelsDetector",
    "ProvenanceDetector",
    "Reason",
    "ReferenceDetector",
    "Region",
    "ReuseDetector",
    "UnboxingDetector",
    "all_detector_classes",
    "default_detectors",
]


def all_detector_classes() -> list[type[Detector]]:
    """Every detector family, in the order the pipeline runs them."""
    return [
        ReferenceDetector,
        ProvenanceDetector,
        CaptureDetector,
        PixelsDetector,
        ReuseDetector,
        UnboxingDetector,
        ConsistencyDetector,
    ]


def default_detectors() -> list[Detector]:
    return [cls() for cls in all_detector_classes()]
