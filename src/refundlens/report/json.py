"""The versioned JSON form of an assessment, published as ``schema/assessment-1.json``."""

from __future__ import annotations

import json as _json
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

import numpy as np

from ..detectors.base import Finding
from ..pipeline import Assessment

__all__ = ["SCHEMA_VERSION", "assessment_to_dict", "finding_to_dict", "load_schema"]

SCHEMA_VERSION = "1.2"


def load_schema() -> dict[str, Any]:
    text = (
        resources.files("refundlens").joinpath("report/schema/assessment-1.json").read_text("utf-8")
    )
    loaded: dict[str, Any] = _json.loads(text)
    return loaded


def _plain(value: Any) -> Any:
    """Make facts JSON-safe: NumPy scalars to Python, NaN to None, tuples to lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finding_to_dict(
    finding: Finding, region_path: str | None, picture_paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    out = {
        "code": finding.code,
        "strength": round(float(finding.strength), 4),
        "confidence": round(float(finding.confidence), 4),
        "reason": finding.reason.as_dict(),
        "facts": _plain(finding.facts),
        "region": region_path,
    }
    if picture_paths:
        out["pictures"] = dict(picture_paths)
    return out


# Findings whose facts and reason describe the buyer's claims at every shop of the platform: the
# platform's to see, not one shop's (docs/security.md).
PLATFORM_WIDE_CODES = frozenset({"reuse.buyer_history"})


def report_for_shop(report: Mapping[str, Any]) -> dict[str, Any]:
    """``report`` (an assessment's JSON) as a shop may read it: a finding about the buyer's
    claims at other shops keeps its code and strength (it moved the risk the shop sees) but not
    its numbers or its reason, which are the platform's."""
    return {
        **report,
        "images": [
            {
                **image,
                "findings": [
                    {
                        **f,
                        "facts": {"withheld": "the buyer's claims at other shops"},
                        "reason": {
                            "en": "The buyer's record of claims a person confirmed as forged, "
                            "across the platform, counted in the risk; the platform's reviewers "
                            "see it.",
                            "zh": "该买家在整个平台上被人工确认为伪造的理赔记录已计入风险；"
                            "平台审核员可查看详情。",
                        },
                    }
                    if f.get("code") in PLATFORM_WIDE_CODES
                    else f
                    for f in image.get("findings") or ()
                ],
            }
            for image in report.get("images") or ()
        ],
    }


def assessment_to_dict(
    assessment: Assessment,
    region_paths: Mapping[tuple[int, int], str] | None = None,
    picture_paths: Mapping[tuple[int, int], Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """``region_paths`` maps (image index, finding index) to the written mask file, if any;
    ``picture_paths`` maps the same keys to {picture name: written PNG}."""
    region_paths = region_paths or {}
    picture_paths = picture_paths or {}
    images = []
    for i, image in enumerate(assessment.images):
        ordered = [f for f, _ in image.verdict.reasons]
        images.append(
            {
                "path": image.media.name,
                "sha256": image.media.sha256,
                "risk": image.risk,
                "action": image.action,
                "findings": [
                    finding_to_dict(
                        f,
                        region_paths.get((i, image.findings.index(f))),
                        picture_paths.get((i, image.findings.index(f))),
                    )
                    for f in ordered
                ],
                "detectors": {
                    "ran": list(image.ran),
                    "skipped": [{"detector": d, "why": why} for d, why in image.skipped],
                },
            }
        )
    return {
        "version": SCHEMA_VERSION,
        "claim": {"risk": assessment.risk, "action": assessment.action},
        "references": [{"path": r.name, "sha256": r.sha256} for r in assessment.references],
        "images": images,
    }
