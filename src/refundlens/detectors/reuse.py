"""detectors/reuse: the same picture in another claim, in a bank of confirmed forgeries, and the
buyer's history. Needs the claims service's memory (``Context.history``); the CLI has none.

PDQ and its 8 dihedral forms are searched (a mirrored or rotated copy is the same picture); a hash
of low quality (flat images, PDQ quality < ``reuse_min_pdq_quality``) is not matched. A match
within the same order is a retry, not reuse. When no bank entry is within PDQ distance, the
photo's local print (``reuse.prints``) is looked up among the entries imported with one: a crop
of a few percent moves PDQ past its radius, not the keypoints. That match has a measured false
rate (bench/results/reuse_bank.md), so it has its own code, which the policy keeps at review.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ..config import Settings
from ..media import Media
from .base import ClaimHistory, Context, Detector, Example, Finding, Reason, Requirement

__all__ = ["ReuseDetector"]


def _who_sent_it(matches: Sequence[Mapping[str, Any]]) -> tuple[float, str, str]:
    """The strength of a picture sent before, and who sent it, in words. Another buyer's
    picture weighs more than the same buyer's on another order; a match at another shop weighs
    as another buyer's whoever sent it, so that a shop, which is not told whose claim it was
    (``report.json.report_for_shop``), cannot read it from the weight either."""
    if any(not m["same_buyer"] for m in matches):
        return 4.0, "another buyer", "其他买家"
    if any(m.get("same_merchant") is False for m in matches):
        return 4.0, "the same buyer, at another shop", "同一买家在其他店铺"
    return 2.5, "the same buyer, on another order", "同一买家在其他订单"


class ReuseDetector(Detector):
    name = "reuse"
    requires = frozenset({Requirement.HISTORY})
    codes: ClassVar[dict[str, str]] = {
        "reuse.seen_before": "The same picture was sent with an earlier claim on another order.",
        "reuse.video_seen_before": "The video sent with this claim was sent before with another order's claim.",
        "reuse.bank_match": "The picture is in a bank of confirmed forgeries.",
        "reuse.bank_local_match": "A cropped, resized or mirrored copy of a picture in a bank of confirmed forgeries, matched by its local print only.",
        "reuse.print_seen_before": "Maybe a cropped, resized or mirrored copy of an earlier claim photo, matched by its local print, which the pixels could not confirm.",
        "reuse.buyer_history": "The buyer's earlier claims include confirmed forgeries.",
        "reuse.low_quality_hash": "The picture is too flat for a reliable fingerprint: reuse not checked.",
    }

    def analyze(self, claim: Media, context: Context) -> list[Finding]:
        history = context.history
        if history is None:
            return []
        findings: list[Finding] = []
        if claim.pdq.quality < context.settings.reuse_min_pdq_quality:
            findings.append(
                Finding(
                    "reuse.low_quality_hash",
                    0.0,
                    1.0,
                    Reason(
                        f"The picture is too flat for a reliable fingerprint (PDQ quality {claim.pdq.quality}); reuse was not checked.",
                        f"图片过于平坦，指纹不可靠（PDQ 质量 {claim.pdq.quality}），未做重复使用检查。",
                    ),
                    {
                        "pdq_quality": claim.pdq.quality,
                        "min_quality": context.settings.reuse_min_pdq_quality,
                    },
                    detector=self.name,
                )
            )
        else:
            findings += self._matches(claim, history, context)
        findings += self._video_matches(history, context.settings)
        summary = history.buyer_summary()
        confirmed = int(summary["confirmed_forgeries"])
        appealed = int(summary.get("confirmed_under_appeal", 0))
        if confirmed:
            # One past rejection is not a pattern; two or more are.
            strength = 0.0 if confirmed < 2 else min(4.0, 1.5 * (confirmed - 1))
            # In the claim's own currency: yen were added to yuan (a review).
            currency = str(summary.get("currency") or "")
            elsewhere = int(summary.get("confirmed_in_other_currencies", 0))
            worth_en = f"{summary['confirmed_forged_value']:g} {currency}".strip()
            worth_zh = worth_en
            if elsewhere:
                worth_en += f" in this currency ({elsewhere} in others, not added)"
                worth_zh += f"（另有 {elsewhere} 笔为其他币种，未加总）"
            findings.append(
                Finding(
                    "reuse.buyer_history",
                    strength,
                    0.9,
                    Reason(
                        f"This buyer has {confirmed} earlier claim(s) confirmed as forged by a person, worth {worth_en}"
                        + (
                            f" ({appealed} of them appealed and being reviewed again)."
                            if appealed
                            else "."
                        ),
                        f"该买家此前有 {confirmed} 笔理赔被人工确认为伪造，合计金额 {worth_zh}"
                        + (f"（其中 {appealed} 笔已申诉，正在复核）。" if appealed else "。"),
                    ),
                    summary,
                    detector=self.name,
                )
            )
        return findings

    def _video_matches(self, history: ClaimHistory, settings: Settings) -> list[Finding]:
        rows = history.videos_seen_before()
        rows = [
            r for r in rows if r["query_match_percent"] >= settings.reuse_video_min_match_percent
        ]
        if not rows:
            return []
        rows.sort(key=lambda r: -r["query_match_percent"])
        top = rows[0]
        strength, who, who_zh = _who_sent_it(rows)
        return [
            Finding(
                "reuse.video_seen_before",
                strength,
                0.9,
                Reason(
                    f"The video sent with this claim was sent before by {who} (claim {top['claim']}): {top['query_match_percent']:.0f}% of its {top['frames']} sampled frames match that video (vPDQ).",
                    f"本次理赔附带的视频此前已由{who_zh}提交过（理赔单 {top['claim']}）：其 {top['frames']} 个采样帧中 {top['query_match_percent']:.0f}% 与该视频相符（vPDQ）。",
                ),
                {
                    "matches": rows[:10],
                    "query_match_percent": top["query_match_percent"],
                    "earlier_match_percent": top["earlier_match_percent"],
                    "min_match_percent": settings.reuse_video_min_match_percent,
                },
                detector=self.name,
            )
        ]

    @staticmethod
    def _local_feature_matches(
        claim: Media, history: ClaimHistory, context: Context
    ) -> list[dict[str, Any]]:
        """Crops and heavier edits move PDQ past 31 bits; the reference check still sees that the
        claim is made from an earlier claim's photo (identical, derived, or that photo shown on a
        screen and photographed again; not a new exposure)."""
        from .reference import compare_all

        candidates = history.earlier_same_sku()
        if not candidates:
            return []
        out = []
        outcomes = compare_all(
            claim, [c["media"] for c in candidates], context.settings, context.features
        )
        for candidate, outcome in zip(candidates, outcomes, strict=True):
            if outcome.verdict in ("identical", "derived", "recaptured"):
                out.append(
                    {
                        "claim": candidate["claim"],
                        "distance": outcome.pdq_distance,
                        "same_buyer": candidate["same_buyer"],
                        "same_merchant": candidate["same_merchant"],
                        "at": candidate["at"],
                        "matched_by": "local_features",
                        "verdict": outcome.verdict,
                        "inliers": outcome.match.inliers if outcome.match else 0,
                    }
                )
        return out

    def _matches(self, claim: Media, history: ClaimHistory, context: Context) -> list[Finding]:
        settings = context.settings
        findings: list[Finding] = []
        seen: dict[str, dict[str, Any]] = {}
        banked: dict[tuple[str, str], dict[str, Any]] = {}
        uncertain: list[dict[str, Any]] = []  # print matches the pixels could not confirm

        # The whole picture in its 8 orientations, and its centre crops (for an earlier claim
        # that was a crop of this one); stored claims carry their centre crops too.
        codes = {h.bits for h in claim.pdq_dihedral} | {claim.pdq.bits}
        codes |= {
            h.bits
            for h in claim.pdq_centre_crops.values()
            if h.quality >= settings.reuse_min_pdq_quality
        }
        for code in codes:
            for match in history.seen_before(code):
                match.setdefault("matched_by", "pdq")
                if (
                    match["claim"] not in seen
                    or match["distance"] < seen[match["claim"]]["distance"]
                ):
                    seen[match["claim"]] = match
            # A frame of an earlier claim's unboxing video, sent now as a photo.
            for match in getattr(history, "video_frame_matches", lambda _: [])(code):
                match["matched_by"] = "video_frame"
                if (
                    match["claim"] not in seen
                    or match["distance"] < seen[match["claim"]]["distance"]
                ):
                    seen[match["claim"]] = match
            for match in history.bank_matches(code):
                key = (match["bank"], match["confirmed_at"])
                if key not in banked or match["distance"] < banked[key]["distance"]:
                    banked[key] = match
        if not seen:
            for match in self._local_feature_matches(claim, history, context):
                seen[match["claim"]] = match
        if not seen:
            # The buyer's own earlier claims at any shop (the prints kept at filing), then the
            # latest photos of every buyer (the sketch index): a crop at another shop or SKU
            # moved PDQ past its radius, by the same buyer and by another of a ring (reviews).
            # A print match is a copy only where the pixels agree: two hand-held shots of one
            # product, taken alike, match by their prints too (28 pairs of 41 shots of one
            # yoghurt carton: a review); the reference check tells them apart.
            from ..media.fingerprint import PdqHash, hamming

            own = [PdqHash(code, 100) for code in codes]
            by_print: dict[str, dict[str, Any]] = {}
            for match in (
                *history.buyer_print_matches(claim.analysis),
                *history.platform_print_matches(claim.analysis),
            ):
                by_print.setdefault(match["claim"], match)
            for match, verdict in self._pixels_compared(claim, list(by_print.values()), context):
                entry = PdqHash(bytes.fromhex(match.pop("pdq")), 100)
                found = {**match, "distance": min(hamming(entry, h) for h in own)}
                if verdict in ("identical", "derived", "recaptured"):
                    seen[match["claim"]] = {**found, "verdict": verdict}
                elif verdict in (None, "near_copy_unresolved"):
                    uncertain.append({**found, "verdict": verdict})
        # Only when PDQ found no entry: the print costs two ORB passes and adds nothing then.
        printed = [] if banked else history.bank_print_matches(claim.analysis)
        if seen:
            matches = sorted(seen.values(), key=lambda m: m["distance"])[:10]
            strength, who, who_zh = _who_sent_it(matches)
            top = matches[0]
            if top["matched_by"] == "local_print":
                reason = Reason(
                    f"A cropped, resized or mirrored copy of the picture was sent before by {who}: claim {top['claim']} ({top['inliers']} keypoints agree under one transform; the whole-image PDQ is {top['distance']} bits away).",
                    f"该图片的裁剪、缩放或镜像副本此前已由{who_zh}提交过：理赔单 {top['claim']}（{top['inliers']} 个关键点在同一变换下一致；整图 PDQ 距离为 {top['distance']} 位）。",
                )
            elif top["matched_by"] == "video_frame":
                reason = Reason(
                    f"The picture is a frame ({top['seconds']:.0f} s, PDQ distance {top['distance']} of 256 bits) of the video sent before by {who}: claim {top['claim']}.",
                    f"该图片是此前由{who_zh}提交的视频中的一帧（第 {top['seconds']:.0f} 秒，PDQ 距离 {top['distance']}/256）：理赔单 {top['claim']}。",
                )
            else:
                reason = Reason(
                    f"The same picture (PDQ distance {top['distance']} of 256 bits) was sent before by {who}: claim {top['claim']}.",
                    f"同一张图片（PDQ 距离 {top['distance']}/256）此前已由{who_zh}提交过：理赔单 {top['claim']}。",
                )
            findings.append(
                Finding(
                    "reuse.seen_before",
                    strength,
                    0.9,
                    reason,
                    {
                        "matches": matches,
                        "distance": matches[0]["distance"],
                        "pdq_quality": claim.pdq.quality,
                    },
                    detector=self.name,
                )
            )
        if banked:
            best = sorted(banked.values(), key=lambda m: m["distance"])
            top = best[0]
            findings.append(
                Finding(
                    "reuse.bank_match",
                    6.0,
                    0.95,
                    Reason(
                        f"The picture is in the bank '{top['bank']}' (signed by {top['signer']}) of forgeries confirmed on {top['confirmed_at']} (PDQ distance {top['distance']}).",
                        f"该图片在“{top['bank']}”伪造库中（签名方 {top['signer']}，确认于 {top['confirmed_at']}，PDQ 距离 {top['distance']}）。",
                    ),
                    {
                        "matches": best[:10],
                        "bank": top["bank"],
                        "signer": top["signer"],
                        "confirmed_at": top["confirmed_at"],
                        "distance": top["distance"],
                    },
                    detector=self.name,
                )
            )
        if printed:
            findings.append(self._bank_local_match(printed, codes, settings))
        if uncertain and not seen:
            findings.append(self._print_seen_before(uncertain))
        return findings

    @staticmethod
    def _pixels_compared(
        claim: Media, matches: list[dict[str, Any]], context: Context
    ) -> list[tuple[dict[str, Any], str | None]]:
        """Each print match with the reference check's verdict on the two photos (None where
        the earlier photo is not on file)."""
        from .reference import compare_all

        decoded = [m for m in matches if m.get("media") is not None]
        outcomes = compare_all(
            claim, [m["media"] for m in decoded], context.settings, context.features
        )
        verdicts = {id(m): o.verdict for m, o in zip(decoded, outcomes, strict=True)}
        out = []
        for match in matches:
            match.pop("media", None)
            out.append((match, verdicts.get(id(match))))
        return out

    def _print_seen_before(self, matches: list[dict[str, Any]]) -> Finding:
        """An earlier claim photo that this one copies by its local print, where the pixels
        could not confirm it (the earlier photo no longer on file, or the reference check could
        not tell). Two hand-held shots of one product, taken alike, match by their prints too,
        so this is no accusation: a live photo first, then a person, who compares the two."""
        matches = sorted(matches, key=lambda m: (-m["inliers"], m["distance"]))[:10]
        top = matches[0]
        _, who, who_zh = _who_sent_it(matches)
        return Finding(
            "reuse.print_seen_before",
            3.0,
            0.8,
            Reason(
                f"The picture may be a cropped, resized or mirrored copy of a picture sent before by {who}: claim {top['claim']} ({top['inliers']} keypoints agree under one transform, {top['matched_percent']:g}% of the points; the whole-image PDQ is {top['distance']} bits away). The pixels could not confirm it, and another photo of the same product, taken alike, can match too: compare the two pictures; the buyer is asked for live photos first.",
                f"该图片可能是{who_zh}此前提交的图片的裁剪、缩放或镜像副本：理赔单 {top['claim']}（{top['inliers']} 个关键点在同一变换下一致，占关键点的 {top['matched_percent']:g}%；整图 PDQ 距离为 {top['distance']} 位）。像素比对未能确认，以相似方式拍摄的同一商品的其他照片也可能匹配：请对比两张图片；先请买家实时拍照。",
            ),
            {
                "matches": matches,
                "inliers": top["inliers"],
                "matched_percent": top["matched_percent"],
                "coverage_percent": top["coverage_percent"],
                "distance": top["distance"],
            },
            detector=self.name,
        )

    def _bank_local_match(
        self, printed: list[dict[str, Any]], codes: set[bytes], settings: Settings
    ) -> Finding:
        from ..media.fingerprint import PdqHash, hamming

        own = [PdqHash(code, 100) for code in codes]
        matches = []
        for match in printed:
            entry = PdqHash(bytes.fromhex(match.pop("pdq")), 100)
            # How far the whole-image hash is: why PDQ alone missed this copy.
            matches.append({**match, "pdq_distance": min(hamming(entry, h) for h in own)})
        matches.sort(key=lambda m: (-m["inliers"], m["pdq_distance"]))
        top = matches[0]
        return Finding(
            "reuse.bank_local_match",
            3.0,
            0.8,
            Reason(
                f"The picture is a cropped or resized copy of an entry in the bank {top['bank']}, signed by {top['signer']}, of forgeries confirmed on {top['confirmed_at']}: {top['inliers']} keypoints agree under one transform, {top['matched_percent']:g}% of the points, while the whole-image PDQ is {top['pdq_distance']} bits away. The bank holds no picture to compare with, and another photo of the same scene can match too, so the buyer is asked for live photos first.",
                f"该图片是“{top['bank']}”伪造库（签名方 {top['signer']}，确认于 {top['confirmed_at']}）中一条记录的裁剪或缩放副本：{top['inliers']} 个关键点在同一变换下一致，占关键点的 {top['matched_percent']:g}%，而整图 PDQ 距离为 {top['pdq_distance']} 位。伪造库不含可供对比的图片，同一场景的其他照片也可能匹配，因此先请买家实时拍照。",
            ),
            {
                "matches": matches[:10],
                "bank": top["bank"],
                "signer": top["signer"],
                "confirmed_at": top["confirmed_at"],
                "inliers": top["inliers"],
                "matched_percent": top["matched_percent"],
                "coverage_percent": top["coverage_percent"],
                "pdq_distance": top["pdq_distance"],
                "pdq_max_distance": settings.reuse_max_distance,
            },
            detector=self.name,
        )

    @classmethod
    def examples(cls) -> Sequence[Example]:
        from ._reuse_examples import reuse_examples

        return reuse_examples()
