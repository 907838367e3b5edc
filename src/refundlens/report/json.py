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
from ..storable import storable

__all__ = ["SCHEMA_VERSION", "assessment_to_dict", "finding_to_dict", "load_schema"]

SCHEMA_VERSION = "1.3"


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


# Findings that name earlier claims (``facts["matches"]``): a match at another shop is the
# platform's to name, so a shop reads that one was there and how close, not which claim.
CLAIM_MATCH_CODES = frozenset(
    {"reuse.seen_before", "reuse.video_seen_before", "reuse.print_seen_before"}
)
# What a shop keeps of a match at another shop: how it matched, never whose claim, which buyer,
# when, or the other video's file.
_MATCH_KEPT = frozenset(
    {
        "distance",
        "matched_by",
        "verdict",
        "inliers",
        "seconds",
        "query_match_percent",
        "earlier_match_percent",
        "frames",
        "earlier_frames",
    }
)


def _match_for_shop(match: Mapping[str, Any]) -> dict[str, Any]:
    # A match recorded before ``same_merchant`` existed is withheld: it cannot be told apart.
    if match.get("same_merchant") is True:
        return dict(match)
    kept = {k: v for k, v in match.items() if k in _MATCH_KEPT}
    return {**kept, "at_another_shop": True}


def _claim_matches_for_shop(finding: Mapping[str, Any]) -> dict[str, Any]:
    facts = finding.get("facts") or {}
    matches = [m for m in facts.get("matches") or () if isinstance(m, Mapping)]
    if not matches or all(m.get("same_merchant") is True for m in matches):
        return dict(finding)
    shown = [_match_for_shop(m) for m in matches]
    out = {**finding, "facts": {**facts, "matches": shown}}
    top = shown[0]
    if finding.get("code") == "reuse.print_seen_before":
        # Another buyer's photo, matched by its local print only: which claim, and whether it
        # is this shop's, is the platform's to say.
        out["reason"] = {
            "en": "The picture may be a cropped, resized or mirrored copy of a picture another "
            f"buyer sent before ({top.get('inliers')} keypoints agree under one transform). "
            "Another photo of the same product, taken alike, can match too: the platform's "
            "reviewers compare the two pictures; the buyer is asked for live photos first.",
            "zh": f"该图片可能是其他买家此前提交的图片的裁剪、缩放或镜像副本（{top.get('inliers')} "
            "个关键点在同一变换下一致）。以相似方式拍摄的同一商品的其他照片也可能匹配：由平台审核员"
            "对比两张图片；先请买家实时拍照。",
        }
        return out
    if not top.get("at_another_shop"):
        # The reason names this shop's own claim, but its "who" was read from every match,
        # the other shop's too: said again without it.
        claim = top.get("claim")
        if finding.get("code") == "reuse.video_seen_before":
            pct = top.get("query_match_percent", 0)
            out["reason"] = {
                "en": f"The video sent with this claim was sent before with claim {claim} at "
                f"this shop ({pct:.0f}% of its sampled frames match, vPDQ), and with a claim at "
                "another shop. The platform's reviewers see which.",
                "zh": f"本次理赔附带的视频此前已在本店理赔单 {claim} 中提交过（{pct:.0f}% 的采样帧"
                "相符，vPDQ），也在其他店铺的理赔中提交过。平台审核员可查看是哪一笔。",
            }
        elif top.get("matched_by") == "local_print":
            out["reason"] = {
                "en": "A cropped, resized or mirrored copy of the picture "
                f"({top.get('inliers')} keypoints agree under one transform) was sent before "
                f"with claim {claim} at this shop, and with a claim at another shop. The "
                "platform's reviewers see which.",
                "zh": f"该图片的裁剪、缩放或镜像副本（{top.get('inliers')} 个关键点在同一变换下"
                f"一致）此前已在本店理赔单 {claim} 中提交过，也在其他店铺的理赔中提交过。"
                "平台审核员可查看是哪一笔。",
            }
        else:
            distance = top.get("distance")
            out["reason"] = {
                "en": f"The same picture (PDQ distance {distance} of 256 bits) was sent before "
                f"with claim {claim} at this shop, and with a claim at another shop. The "
                "platform's reviewers see which.",
                "zh": f"同一张图片（PDQ 距离 {distance}/256）此前已在本店理赔单 {claim} 中提交过，"
                "也在其他店铺的理赔中提交过。平台审核员可查看是哪一笔。",
            }
        return out
    if finding.get("code") == "reuse.video_seen_before":
        pct, frames = top.get("query_match_percent", 0), top.get("frames", 0)
        out["reason"] = {
            "en": f"The video sent with this claim was sent before with a claim at another "
            f"shop: {pct:.0f}% of its {frames} sampled frames match that video (vPDQ). The "
            "platform's reviewers see which claim.",
            "zh": f"本次理赔附带的视频此前已在其他店铺的理赔中提交过：其 {frames} 个采样帧中 "
            f"{pct:.0f}% 与该视频相符（vPDQ）。平台审核员可查看是哪一笔理赔。",
        }
    elif top.get("matched_by") == "local_print":
        # A crop PDQ misses: "the same picture, 80 bits away" read as a doubtful match to a
        # shop (a new user's walkthrough), where the pixels had found it identical.
        out["reason"] = {
            "en": "A cropped, resized or mirrored copy of the picture "
            f"({top.get('inliers')} keypoints agree under one transform) was sent before with a "
            "claim at another shop. The platform's reviewers see which claim.",
            "zh": f"该图片的裁剪、缩放或镜像副本（{top.get('inliers')} 个关键点在同一变换下一致）"
            "此前已在其他店铺的理赔中提交过。平台审核员可查看是哪一笔理赔。",
        }
    elif top.get("matched_by") == "video_frame":
        out["reason"] = {
            "en": f"The picture is a frame (PDQ distance {top.get('distance')} of 256 bits) of "
            "a video sent before with a claim at another shop. The platform's reviewers see "
            "which claim.",
            "zh": f"该图片是此前在其他店铺的理赔中提交的视频中的一帧（PDQ 距离 "
            f"{top.get('distance')}/256）。平台审核员可查看是哪一笔理赔。",
        }
    else:
        out["reason"] = {
            "en": f"The same picture (PDQ distance {top.get('distance')} of 256 bits) was sent "
            "before with a claim at another shop. The platform's reviewers see which claim.",
            "zh": f"同一张图片（PDQ 距离 {top.get('distance')}/256）此前已在其他店铺的理赔中"
            "提交过。平台审核员可查看是哪一笔理赔。",
        }
    return out


# Findings that a photo is in a bank of confirmed forgeries: the bank, its signer and date are
# shared on purpose; whether this buyer made that forgery, and what the platform found in it,
# are the buyer's record, the platform's.
BANK_CODES = frozenset({"reuse.bank_match", "reuse.bank_local_match"})
_BANK_WITHHELD = frozenset({"same_buyer", "codes"})


def _bank_for_shop(finding: Mapping[str, Any]) -> dict[str, Any]:
    facts = {k: v for k, v in (finding.get("facts") or {}).items() if k not in _BANK_WITHHELD}
    if isinstance(facts.get("matches"), list):
        facts["matches"] = [
            {k: v for k, v in m.items() if k not in _BANK_WITHHELD} if isinstance(m, Mapping) else m
            for m in facts["matches"]
        ]
    return {**finding, "facts": facts}


def _finding_for_shop(finding: Mapping[str, Any]) -> dict[str, Any]:
    if finding.get("code") in PLATFORM_WIDE_CODES:
        return {
            **finding,
            "facts": {"withheld": "the buyer's claims at other shops"},
            "reason": {
                "en": "The buyer's record of claims a person confirmed as forged, across the "
                "platform, counted in the risk; the platform's reviewers see it.",
                "zh": "该买家在整个平台上被人工确认为伪造的理赔记录已计入风险；"
                "平台审核员可查看详情。",
            },
        }
    if finding.get("code") in CLAIM_MATCH_CODES:
        return _claim_matches_for_shop(finding)
    if finding.get("code") in BANK_CODES:
        return _bank_for_shop(finding)
    return dict(finding)


def report_for_shop(report: Mapping[str, Any]) -> dict[str, Any]:
    """``report`` (an assessment's JSON) as a shop may read it. A finding about the buyer's
    claims at other shops keeps its code and strength (it moved the risk the shop sees) but not
    its numbers or its reason, which are the platform's; a picture sent before with a claim at
    another shop is said to be, with how close it is, but not which claim, whose, or when; a
    bank match keeps the bank, but not whether this buyer made that forgery or what was found
    in it."""
    return {
        **report,
        "images": [
            {**image, "findings": [_finding_for_shop(f) for f in image.get("findings") or ()]}
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
        verdict = image.verdict
        # Masks and pictures were written per finding as analysed: a reason that is a changed
        # copy (a voided finding) is found by its index, never by equality.
        sources = verdict.sources or tuple(image.findings.index(f) for f, _ in verdict.reasons)
        images.append(
            {
                "path": image.media.name,
                "sha256": image.media.sha256,
                "risk": image.risk,
                "action": image.action,
                "findings": [
                    {
                        **finding_to_dict(f, region_paths.get((i, k)), picture_paths.get((i, k))),
                        # What it added to the risk, as fused: the policy's calibrated weight
                        # times its strength (0 where voided). The risk is the prior's log-odds
                        # plus these, before any ceiling or floor.
                        "contribution": round(float(c), 4),
                    }
                    for (f, c), k in zip(verdict.reasons, sources, strict=True)
                ],
                "detectors": {
                    "ran": list(image.ran),
                    "skipped": [{"detector": d, "why": why} for d, why in image.skipped],
                },
            }
        )
    # File names given on a command line may carry what a file system allows and UTF-8 does
    # not: the report is stored and sent as JSON.
    report: dict[str, Any] = storable(
        {
            "version": SCHEMA_VERSION,
            "claim": {"risk": assessment.risk, "action": assessment.action},
            "references": [{"path": r.name, "sha256": r.sha256} for r in assessment.references],
            "images": images,
        }
    )
    return report
