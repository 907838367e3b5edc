"""Cross-claim memory over lists in memory: the same lookups as ``history.History`` without a
database, for the detectors' examples, tests and one-off checks. Imports no database code."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import numpy.typing as npt

from .index import HashIndex
from .prints import LocalPrint, PrintIndex, PrintMatch, best_match, query_prints

__all__ = ["MemoryHistory", "bank_print_facts", "video_row"]


def bank_print_facts(match: PrintMatch) -> dict[str, Any]:
    """What a reviewer is shown of a local-print match with a bank entry (``reuse.prints``)."""
    return {
        "inliers": match.inliers,
        "matched_percent": round(100 * match.share, 1),
        "coverage_percent": round(100 * match.coverage, 1),
    }


def video_row(
    sha: str,
    codes: list[bytes],
    other_sha: str,
    other: list[bytes],
    match: dict[str, Any],
    max_distance: int,
) -> dict[str, Any]:
    from ..media.fingerprint import PdqHash
    from ..media.video import video_match

    query_pct, target_pct = video_match(
        [PdqHash(c, 100) for c in codes], [PdqHash(c, 100) for c in other], max_distance
    )
    return {
        "video_sha256": sha,
        "claim": match["claim"],
        "earlier_video_sha256": other_sha,
        "query_match_percent": round(query_pct, 1),
        "earlier_match_percent": round(target_pct, 1),
        "frames": len(codes),
        "earlier_frames": len(other),
        "same_buyer": match["same_buyer"],
        "same_merchant": match["same_merchant"],
        "at": match["at"],
    }


@dataclasses.dataclass
class MemoryHistory:
    """The same lookups over lists in memory (examples, tests, one-off checks without a store)."""

    claims: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Each: ``pdq`` (hex), ``claim``, ``order``, ``buyer``, ``merchant``, ``at``, and optionally
    ``local`` (the photo's local print as text, kept at filing) and ``media`` (the photo, decoded:
    absent where it is no longer on file)."""
    bank: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Each: ``pdq`` (hex), ``bank``, ``signer``, ``confirmed_at``, ``codes``, ``buyer_hmac``,
    and optionally ``local`` (the entry's local print as text, ``LocalPrint.to_text``)."""
    order_id: str = ""
    buyer_id: str = ""
    merchant_id: str = ""
    summary: dict[str, Any] = dataclasses.field(
        default_factory=lambda: {
            "other_claims": 0,
            "outcomes": {},
            "confirmed_forgeries": 0,
            "confirmed_forged_value": 0.0,
            "confirmed_in_other_currencies": 0,
            "refunded_on_forged": 0.0,
        }
    )
    max_distance: int = 31
    same_sku: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Each: ``claim``, ``media`` (decoded), ``same_buyer``, ``same_merchant``, ``at``."""

    videos: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Earlier claims' video frames, each: ``pdq`` (hex), ``video``, ``seconds``, ``claim``,
    ``order``, ``buyer``, ``merchant``, ``at``."""
    own_videos: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    """This claim's videos: sha256 -> frame PDQs (hex)."""

    def earlier_same_sku(self) -> list[dict[str, Any]]:
        return list(self.same_sku)

    def buyer_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        return self._print_matches(photo, only_buyer=True)

    def _print_matches(
        self, photo: npt.NDArray[np.uint8], *, only_buyer: bool
    ) -> list[dict[str, Any]]:
        """Claims (other orders) held with a local print (``local``) that ``photo`` copies."""
        rows = [
            row
            for row in self.claims
            if row.get("local")
            and row["order"] != self.order_id
            and (row["buyer"] == self.buyer_id or not only_buyer)
        ]
        if not rows:
            return []
        query = query_prints(photo)
        out = []
        for row in rows:
            match = best_match(query, LocalPrint.from_text(row["local"]))
            if match.is_copy:
                out.append(
                    {
                        "claim": row["claim"],
                        "pdq": row["pdq"],
                        "same_buyer": row["buyer"] == self.buyer_id,
                        "same_merchant": row["merchant"] == self.merchant_id,
                        "at": row["at"],
                        "matched_by": "local_print",
                        "media": row.get("media"),
                        **bank_print_facts(match),
                    }
                )
        return out

    def platform_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        return self._print_matches(photo, only_buyer=False)

    def video_frame_matches(self, code: bytes) -> list[dict[str, Any]]:
        best: dict[str, dict[str, Any]] = {}
        for i, distance in self._index(self.videos).search(code, self.max_distance):
            row = self.videos[i]
            if row["order"] == self.order_id:
                continue
            if row["claim"] in best and best[row["claim"]]["distance"] <= distance:
                continue
            best[row["claim"]] = {
                "claim": row["claim"],
                "distance": distance,
                "same_buyer": row["buyer"] == self.buyer_id,
                "same_merchant": row["merchant"] == self.merchant_id,
                "at": row["at"],
                "video_sha256": row["video"],
                "seconds": row["seconds"],
            }
        return sorted(best.values(), key=lambda m: m["distance"])

    def videos_seen_before(self) -> list[dict[str, Any]]:
        out = []
        for sha, hexes in self.own_videos.items():
            codes = [bytes.fromhex(h) for h in hexes]
            candidates: dict[str, dict[str, Any]] = {}
            for code in codes:
                for match in self.video_frame_matches(code):
                    candidates.setdefault(match["video_sha256"], match)
            for other_sha, match in candidates.items():
                other = [
                    bytes.fromhex(r["pdq"])
                    for r in self.videos
                    if r["video"] == other_sha and r["claim"] == match["claim"]
                ]
                out.append(video_row(sha, codes, other_sha, other, match, self.max_distance))
        return out

    def _index(self, rows: list[dict[str, Any]]) -> HashIndex:
        return HashIndex.from_rows((i, r["pdq"]) for i, r in enumerate(rows))

    def seen_before(self, code: bytes) -> list[dict[str, Any]]:
        out = []
        for i, distance in self._index(self.claims).search(code, self.max_distance):
            row = self.claims[i]
            if row["order"] == self.order_id:
                continue
            out.append(
                {
                    "claim": row["claim"],
                    "distance": distance,
                    "same_buyer": row["buyer"] == self.buyer_id,
                    "same_merchant": row["merchant"] == self.merchant_id,
                    "at": row["at"],
                }
            )
        return out

    def bank_matches(self, code: bytes) -> list[dict[str, Any]]:
        return [
            {
                "bank": self.bank[i]["bank"],
                "signer": self.bank[i]["signer"],
                "confirmed_at": self.bank[i]["confirmed_at"],
                "codes": self.bank[i]["codes"],
                "distance": d,
                "same_buyer": False,
            }
            for i, d in self._index(self.bank).search(code, self.max_distance)
        ]

    def bank_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        index = PrintIndex()
        for i, entry in enumerate(self.bank):
            if entry.get("local"):
                index.add(i, LocalPrint.from_text(entry["local"]))
        if not len(index):
            return []
        return [
            {
                "bank": self.bank[i]["bank"],
                "signer": self.bank[i]["signer"],
                "confirmed_at": self.bank[i]["confirmed_at"],
                "codes": self.bank[i]["codes"],
                "same_buyer": False,
                **bank_print_facts(match),
                "pdq": self.bank[i]["pdq"],
            }
            for i, match in index.search(query_prints(photo))
        ]

    def buyer_summary(self) -> dict[str, Any]:
        return dict(self.summary)
