"""What the store remembers across claims, for one claim being analysed: earlier claims with the
same picture, bank matches, and the buyer's ledger. The worker builds one per analysis."""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import threading
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ..config import Settings
from ..store.sql.models import BankEntry, Claim, ClaimFingerprint, Decision, VideoFingerprint
from .index import HashIndex
from .memory import bank_print_facts, video_row
from .prints import LocalPrint, PrintIndex, SketchIndex, best_match, query_prints

__all__ = ["History", "IndexCache", "buyer_summary", "repeats_on_file"]

log = logging.getLogger(__name__)


class _Unread:
    """Which rows of one table an index has not read yet, by id.

    Ids are handed out when a row is inserted, but transactions commit in their own order: on
    PostgreSQL a row with a lower id can become visible after one with a higher id was read (a
    bank import holds its ids until it commits). Asking only for ids above the last one read
    would skip such rows for good (a reused photo never matched again in this process). So each
    run of ids passed over is asked for again until ``late_commit_seconds`` pass: an insert that
    rolled back leaves its ids unused for ever. Runs, not ids: a long import's thousands of ids
    are one range to ask for."""

    def __init__(self, late_commit_seconds: float, most_runs: int = 1000) -> None:
        self.last = 0
        self.gaps: list[tuple[int, int, float]] = []
        """Runs of ids passed over: (lowest, highest, when first passed over)."""
        self.late_commit_seconds = late_commit_seconds
        self.most_runs = most_runs
        """At most this many runs wait, the highest: a first read of a table with years of
        rolled-back inserts must not ask for each of them at every refresh."""

    def where(self, column: Any) -> Any:
        return or_(column > self.last, *(column.between(lo, hi) for lo, hi, _ in self.gaps))

    def read(self, idents: list[int], now: float) -> None:
        found = sorted(set(idents))
        # What was found inside a run splits it; what is left of it keeps waiting.
        gaps = []
        for lo, hi, since in self.gaps:
            if now - since > self.late_commit_seconds:
                continue
            start = lo
            for ident in found[bisect.bisect_left(found, lo) : bisect.bisect_right(found, hi)]:
                if ident > start:
                    gaps.append((start, ident - 1, since))
                start = ident + 1
            if start <= hi:
                gaps.append((start, hi, since))
        previous = self.last
        for ident in found[bisect.bisect_right(found, self.last) :]:
            if ident > previous + 1:
                gaps.append((previous + 1, ident - 1, now))
            previous = ident
        self.last = previous
        self.gaps = sorted(gaps)[-self.most_runs :]

    def waiting(self) -> list[int]:
        return [i for lo, hi, _ in self.gaps for i in range(lo, hi + 1)]


class IndexCache:
    """In-memory indexes of claim fingerprints and bank entries, refreshed from the store by id
    (ids that a transaction still held when a later one was read are asked for again:
    :class:`_Unread`)."""

    def __init__(
        self,
        shards: int = 1,
        min_quality: int = 50,
        late_commit_seconds: float = 600.0,
        print_capacity: int = 0,
    ) -> None:
        self.min_quality = min_quality
        self.late_commit_seconds = late_commit_seconds
        self.claims = HashIndex(shards)
        self.claim_prints = SketchIndex(print_capacity)
        """The latest claim photos' local prints (their strongest points), by fingerprint row id
        like ``claims``: copies cropped past PDQ's radius, at any shop, by any buyer."""
        self.bank = HashIndex(shards)
        self.bank_prints = PrintIndex()
        """Bank entries' local prints (those imported with one), by entry id like ``bank``."""
        self.video_frames = HashIndex(shards)
        self._claim_rows = _Unread(late_commit_seconds)
        self._bank_rows = _Unread(late_commit_seconds)
        self._video_rows = _Unread(late_commit_seconds)
        self._lock = threading.Lock()

    def waiting_for(self) -> dict[str, list[int]]:
        """The ids passed over and still asked for, per table (empty when none)."""
        tables = {
            "claim_fingerprints": self._claim_rows,
            "bank_entries": self._bank_rows,
            "video_fingerprints": self._video_rows,
        }
        with self._lock:
            waiting = {name: rows.waiting() for name, rows in tables.items()}
        return {name: ids for name, ids in waiting.items() if ids}

    def refresh(self, session: Session, now: dt.datetime | None = None) -> None:
        moment = (now or dt.datetime.now(dt.UTC)).timestamp()
        with self._lock:
            rows = session.execute(
                select(
                    ClaimFingerprint.id,
                    ClaimFingerprint.pdq,
                    ClaimFingerprint.quality,
                    ClaimFingerprint.local_print.is_not(None),
                )
                .where(self._claim_rows.where(ClaimFingerprint.id))
                .order_by(ClaimFingerprint.id)
            ).all()
            if rows:
                # Flat pictures' hashes collide: they are never indexed.
                good = [r for r in rows if r[2] >= self.min_quality]
                if good:
                    self.claims.add([r[0] for r in good], [bytes.fromhex(r[1]) for r in good])
                self._add_claim_prints(session, [r[0] for r in rows if r[3]])
            self._claim_rows.read([r[0] for r in rows], moment)
            bank_rows = session.execute(
                select(BankEntry.id, BankEntry.pdq, BankEntry.local_print)
                .where(self._bank_rows.where(BankEntry.id))
                .order_by(BankEntry.id)
            ).all()
            if bank_rows:
                idents: list[int] = []
                codes: list[bytes] = []
                for ident, pdq, _ in bank_rows:
                    code = _pdq_bytes(ident, pdq)
                    if code is not None:
                        idents.append(ident)
                        codes.append(code)
                if codes:
                    self.bank.add(idents, codes)
                for ident, _, local in bank_rows:
                    if local:
                        self._add_print(ident, local)
            self._bank_rows.read([r[0] for r in bank_rows], moment)
            video_rows = session.execute(
                select(VideoFingerprint.id, VideoFingerprint.pdq)
                .where(self._video_rows.where(VideoFingerprint.id))
                .order_by(VideoFingerprint.id)
            ).all()
            if video_rows:
                # Low-quality frames were never stored (video_fingerprint drops them).
                self.video_frames.add(
                    [r[0] for r in video_rows], [bytes.fromhex(r[1]) for r in video_rows]
                )
            self._video_rows.read([r[0] for r in video_rows], moment)

    def _add_claim_prints(self, session: Session, idents: list[int]) -> None:
        # Only the latest the index holds are read: a first refresh of a large table must not
        # carry every photo's print (about 6 KB of text each) out of the database.
        keep = idents[-self.claim_prints.capacity :] if self.claim_prints.capacity else []
        for start in range(0, len(keep), 500):
            chunk = keep[start : start + 500]
            for ident, text, claim_id in session.execute(
                select(ClaimFingerprint.id, ClaimFingerprint.local_print, ClaimFingerprint.claim_id)
                .where(ClaimFingerprint.id.in_(chunk))
                .order_by(ClaimFingerprint.id)
            ).all():
                try:
                    self.claim_prints.add(ident, LocalPrint.from_text(str(text)), claim_id)
                except ValueError:
                    log.warning("claim fingerprint %s has an unreadable local print", ident)

    def _add_print(self, ident: int, text: str) -> None:
        # Import verified every print; one changed in the database since must not stop the
        # analysis of every claim: that entry is matched by its PDQ only.
        try:
            self.bank_prints.add(ident, LocalPrint.from_text(text))
        except ValueError:
            log.warning("bank entry %s has an unreadable local print; PDQ only", ident)


def _pdq_bytes(ident: int, text: str) -> bytes | None:
    """A bank entry's PDQ as bytes; None (and a warning) for one that is not 64 hex digits:
    import refuses such entries, but one changed in the database since must not stop the
    analysis of every claim, as an unreadable local print does not."""
    try:
        code = bytes.fromhex(text)
    except (TypeError, ValueError):
        code = b""
    if len(code) != 32:
        log.warning("bank entry %s has an unreadable PDQ; left out of matching", ident)
        return None
    return code


PRINT_PIXEL_CHECKS = 4
"""Print matches (most agreeing keypoints first) whose photos are decoded and compared by the
reference check, per lookup (the buyer's own prints, the sketch index)."""


@dataclasses.dataclass
class History:
    """Cross-claim lookups for one claim (its own rows are never matched against it)."""

    sessions: sessionmaker[Session]
    cache: IndexCache
    claim_id: str
    order_id: str
    buyer_id: str
    merchant_id: str
    buyer_hmac: str | None
    max_distance: int = 31
    blobs: Any = None
    local_candidates: int = 20
    filed_as: int | None = None
    """The claim's number (``Claim.seq``, given in filing order): only claims filed before it
    count against it. A copy filed after an honest claim is the copy's problem, not the first
    claim's (whose analysis may run after the copy arrived). None: everything on file counts (a
    live capture must repeat nothing at all)."""
    settings: Settings | None = None
    """The limits earlier photos are decoded under (the service's, ``max_jpeg_scans`` and the
    rest); None: the defaults."""

    def _filed_before(self, query: Any) -> Any:
        return query if self.filed_as is None else query.where(Claim.seq < self.filed_as)

    def earlier_same_sku(self) -> list[dict[str, Any]]:
        """Photos of the latest earlier claims on the same SKU (other orders), decoded, for the
        local-feature comparison that catches crops PDQ misses."""
        from ..media import media_from_bytes
        from ..store.sql.models import Order

        if self.blobs is None or self.local_candidates <= 0:
            return []
        with self.sessions() as session:
            order = session.get(Order, self.order_id)
            if order is None:
                return []
            rows = session.execute(
                self._filed_before(
                    select(ClaimFingerprint, Claim)
                    .join(Claim, Claim.id == ClaimFingerprint.claim_id)
                    .join(Order, Order.id == Claim.order_id)
                    .where(
                        Order.sku_id == order.sku_id,
                        ClaimFingerprint.order_id != self.order_id,
                        ClaimFingerprint.variant == "full",
                    )
                )
                .order_by(ClaimFingerprint.id.desc())
                .limit(self.local_candidates)
            ).all()
            # What the decoding needs, read here; the photos are decoded once the session is
            # closed: on SQLite a session holds the write lock, and 20 photos decoded inside it
            # (or one hostile one) stopped every other writer for seconds (a security review).
            earlier = [
                (
                    fingerprint.photo_sha256,
                    claim.id,
                    claim.buyer_id == self.buyer_id,
                    claim.merchant_id == self.merchant_id,
                    fingerprint.created_at.isoformat(timespec="seconds"),
                )
                for fingerprint, claim in rows
            ]
        out = []
        for sha256, claim_id, same_buyer, same_merchant, at in earlier:
            try:
                media = media_from_bytes(self.blobs.get(sha256), f"{claim_id}.jpg", self.settings)
            except Exception:
                continue
            out.append(
                {
                    "claim": claim_id,
                    "media": media,
                    "same_buyer": same_buyer,
                    "same_merchant": same_merchant,
                    "at": at,
                }
            )
        return out

    def buyer_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        """The buyer's latest earlier claims on other orders, any SKU or shop, whose photo's
        local print (kept at filing, migration 0020) ``photo`` is a copy of. The same-SKU check
        decodes earlier photos; across SKUs a copy cropped by 5% (PDQ 60 bits away) filed at
        another shop was approved (a security review). The prints are compared as stored, a few
        milliseconds each; only a photo whose print matches is decoded (``media``), for the
        pixel comparison that tells a copy from another photo of the same product."""
        if self.local_candidates <= 0:
            return []
        with self.sessions() as session:
            rows = session.execute(
                self._filed_before(
                    select(ClaimFingerprint, Claim)
                    .join(Claim, Claim.id == ClaimFingerprint.claim_id)
                    .where(
                        ClaimFingerprint.buyer_id == self.buyer_id,
                        ClaimFingerprint.order_id != self.order_id,
                        ClaimFingerprint.variant == "full",
                        ClaimFingerprint.local_print.is_not(None),
                    )
                )
                .order_by(ClaimFingerprint.id.desc())
                .limit(self.local_candidates)
            ).all()
            earlier = [self._printed(fingerprint, claim) for fingerprint, claim in rows]
        return self._verified(photo, earlier)

    def platform_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        """Earlier claim photos at any shop, for any product, by any buyer (other orders), that
        ``photo`` is a cropped, resized or mirrored copy of: candidates from the cache's
        :class:`SketchIndex` (the latest ``reuse_print_index_photos``), each verified with its
        whole print, and decoded (``media``) where it matches. A ring's photo cropped by 5% and
        filed by another buyer at another shop passed every other check (a security review)."""
        with self.sessions() as session:
            self._refreshed(session)
            if not len(self.cache.claim_prints):
                return []  # the photo's prints are not computed for an empty index
            # This order's own photos (this claim's among them) would take the first places,
            # and so would copies filed after this claim (a security review).
            own = set(
                session.execute(
                    select(ClaimFingerprint.id).where(ClaimFingerprint.order_id == self.order_id)
                ).scalars()
            )
            later = None
            if self.filed_as is not None:
                later = session.execute(
                    select(func.min(ClaimFingerprint.id))
                    .join(Claim, Claim.id == ClaimFingerprint.claim_id)
                    .where(Claim.seq > self.filed_as)
                ).scalar_one_or_none()
        idents = self.cache.claim_prints.candidates(self._query(photo), skip=own, below=later)
        if not idents:
            return []
        with self.sessions() as session:
            rows = session.execute(
                self._filed_before(
                    select(ClaimFingerprint, Claim)
                    .join(Claim, Claim.id == ClaimFingerprint.claim_id)
                    .where(
                        ClaimFingerprint.id.in_(idents),
                        ClaimFingerprint.order_id != self.order_id,
                        ClaimFingerprint.local_print.is_not(None),
                    )
                )
            ).all()
            earlier = [self._printed(fingerprint, claim) for fingerprint, claim in rows]
        return self._verified(photo, earlier)

    def _printed(self, fingerprint: ClaimFingerprint, claim: Claim) -> dict[str, Any]:
        return {
            "local": fingerprint.local_print,
            "photo_sha256": fingerprint.photo_sha256,
            "claim": claim.id,
            "pdq": fingerprint.pdq,
            "same_buyer": claim.buyer_id == self.buyer_id,
            "same_merchant": claim.merchant_id == self.merchant_id,
            "at": fingerprint.created_at.isoformat(timespec="seconds"),
        }

    def _verified(
        self, photo: npt.NDArray[np.uint8], earlier: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The rows of ``earlier`` whose print ``photo`` copies, by the bank's rule, each with
        its photo decoded (``media``; None where it is no longer on file or does not decode).
        Outside any session: ORB, RANSAC and decoding take milliseconds to tens of them."""
        from ..media import media_from_bytes

        if not earlier:
            return []
        query = self._query(photo)
        copies = []
        for row in earlier:
            try:
                match = best_match(query, LocalPrint.from_text(str(row["local"])))
            except ValueError:
                continue  # a print changed in the database: that row is matched by PDQ only
            if match.is_copy:
                copies.append((row, match))
        # The best few only: each is decoded and compared pixel by pixel (about 0.2 s), and a
        # picture made of several earlier ones must not buy seconds of analysis per photo.
        copies.sort(key=lambda pair: -pair[1].inliers)
        out = []
        for row, match in copies[:PRINT_PIXEL_CHECKS]:
            media = None
            if self.blobs is not None:
                try:
                    media = media_from_bytes(
                        self.blobs.get(row["photo_sha256"]), f"{row['claim']}.jpg", self.settings
                    )
                except Exception:  # gone (retention) or unreadable: the print stands alone
                    media = None
            out.append(
                {
                    **{k: v for k, v in row.items() if k not in ("local", "photo_sha256")},
                    "matched_by": "local_print",
                    "media": media,
                    **bank_print_facts(match),
                }
            )
        return out

    def _query(self, photo: npt.NDArray[np.uint8]) -> tuple[LocalPrint, LocalPrint]:
        # One photo's prints (two ORB passes) serve every lookup of its analysis; the photo is
        # kept with them, so that its id is not reused by another array meanwhile.
        queries: dict[int, tuple[Any, tuple[LocalPrint, LocalPrint]]]
        queries = self.__dict__.setdefault("_queries", {})
        if id(photo) not in queries:
            queries[id(photo)] = (photo, query_prints(photo))
        return queries[id(photo)][1]

    def _refreshed(self, session: Session) -> None:
        # Once per analysis: the index catches up with the store, then serves every lookup.
        if not getattr(self, "_fresh", False):
            self.cache.refresh(session)
            self._fresh = True

    def seen_before(self, code: bytes) -> list[dict[str, Any]]:
        with self.sessions() as session:
            self._refreshed(session)
            hits = dict(self.cache.claims.search(code, self.max_distance))
            if not hits:
                return []
            rows = session.execute(
                self._filed_before(
                    select(ClaimFingerprint)
                    .join(Claim, Claim.id == ClaimFingerprint.claim_id)
                    .where(ClaimFingerprint.id.in_(list(hits)))
                )
            ).scalars()
            out = []
            for row in rows:
                if row.claim_id == self.claim_id or row.order_id == self.order_id:
                    continue
                out.append(
                    {
                        "claim": row.claim_id,
                        "distance": hits[row.id],
                        "same_buyer": row.buyer_id == self.buyer_id,
                        "same_merchant": row.merchant_id == self.merchant_id,
                        "at": row.created_at.isoformat(timespec="seconds"),
                    }
                )
            return sorted(out, key=lambda m: m["distance"])

    def video_frame_matches(self, code: bytes) -> list[dict[str, Any]]:
        """Frames of earlier claims' videos (other orders) within ``max_distance`` of ``code``."""
        with self.sessions() as session:
            self._refreshed(session)
            hits = dict(self.cache.video_frames.search(code, self.max_distance))
            if not hits:
                return []
            rows = session.execute(
                self._filed_before(
                    select(VideoFingerprint)
                    .join(Claim, Claim.id == VideoFingerprint.claim_id)
                    .where(VideoFingerprint.id.in_(list(hits)))
                )
            ).scalars()
            best: dict[str, dict[str, Any]] = {}
            for row in rows:
                if row.claim_id == self.claim_id or row.order_id == self.order_id:
                    continue
                match = {
                    "claim": row.claim_id,
                    "distance": hits[row.id],
                    "same_buyer": row.buyer_id == self.buyer_id,
                    "same_merchant": row.merchant_id == self.merchant_id,
                    "at": row.created_at.isoformat(timespec="seconds"),
                    "video_sha256": row.video_sha256,
                    "seconds": row.seconds,
                }
                if row.claim_id not in best or match["distance"] < best[row.claim_id]["distance"]:
                    best[row.claim_id] = match
            return sorted(best.values(), key=lambda m: m["distance"])

    def videos_seen_before(self) -> list[dict[str, Any]]:
        """This claim's videos against earlier claims' videos, with vPDQ's two match shares;
        computed once per analysis (every photo of the claim reports the same result)."""
        cached: list[dict[str, Any]] | None = getattr(self, "_videos_seen", None)
        if cached is not None:
            return cached
        with self.sessions() as session:
            own = session.execute(
                select(VideoFingerprint).where(VideoFingerprint.claim_id == self.claim_id)
            ).scalars()
            by_video: dict[str, list[bytes]] = {}
            for row in own:
                by_video.setdefault(row.video_sha256, []).append(bytes.fromhex(row.pdq))
        out: list[dict[str, Any]] = []
        for sha, codes in by_video.items():
            candidates: dict[str, dict[str, Any]] = {}
            for code in codes:
                for match in self.video_frame_matches(code):
                    candidates.setdefault(match["video_sha256"], match)
            for other_sha, match in candidates.items():
                with self.sessions() as session:
                    other = [
                        bytes.fromhex(r)
                        for r in session.execute(
                            select(VideoFingerprint.pdq).where(
                                VideoFingerprint.video_sha256 == other_sha,
                                VideoFingerprint.claim_id == match["claim"],
                            )
                        ).scalars()
                    ]
                out.append(video_row(sha, codes, other_sha, other, match, self.max_distance))
        self._videos_seen = out
        return out

    def _bank_entry(self, row: BankEntry) -> dict[str, Any]:
        return {
            "bank": row.bank,
            "signer": row.signer,
            "confirmed_at": row.confirmed_at.date().isoformat(),
            "codes": list(row.codes),
            "same_buyer": bool(self.buyer_hmac and row.buyer_hmac == self.buyer_hmac),
        }

    def bank_matches(self, code: bytes) -> list[dict[str, Any]]:
        with self.sessions() as session:
            self._refreshed(session)
            out = []
            for ident, distance in self.cache.bank.search(code, self.max_distance):
                row = session.get(BankEntry, ident)
                if row is None or row.claim_id == self.claim_id:
                    continue
                out.append({**self._bank_entry(row), "distance": distance})
            return out

    def bank_print_matches(self, photo: npt.NDArray[np.uint8]) -> list[dict[str, Any]]:
        with self.sessions() as session:
            self._refreshed(session)
        if not len(self.cache.bank_prints):
            return []  # no bank here carries prints: the photo's own are not computed
        # Outside a transaction: on SQLite every one takes the write lock, and ORB and RANSAC
        # take tens of milliseconds.
        found = self.cache.bank_prints.search(self._query(photo))
        if not found:
            return []
        out = []
        with self.sessions() as session:
            for ident, match in found:
                row = session.get(BankEntry, ident)
                if row is None or row.claim_id == self.claim_id:
                    continue
                out.append({**self._bank_entry(row), **bank_print_facts(match), "pdq": row.pdq})
        return out

    def buyer_summary(self) -> dict[str, Any]:
        """The buyer's other claims: counts, outcomes, confirmed forgeries and their value."""
        from ..store.sql.models import Order

        with self.sessions() as session:
            # Values in the claim's own currency only (yen were added to yuan: a review).
            currency = session.execute(
                select(Order.currency)
                .join(Claim, Claim.order_id == Order.id)
                .where(Claim.id == self.claim_id)
            ).scalar_one_or_none()
            return buyer_summary(session, self.buyer_id, self.claim_id, currency=currency)


def buyer_summary(
    session: Session,
    buyer_id: str,
    exclude_claim: str | None = None,
    merchant_id: str | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """A buyer's ledger: other claims, the outcomes persons decided (a decision under appeal
    stands until the next), forgeries a person confirmed (rejected as forged),
    their total value, and what was refunded on claims later found forged. Across the platform,
    or with ``merchant_id`` at that shop only (what a shop may see). With ``currency``, the
    values add up claims on orders in that currency only, and ``confirmed_in_other_currencies``
    counts the confirmed forgeries left out: 3,000 JPY once counted as 3,000 CNY towards a legal
    threshold in a report for the police (a security review)."""
    from ..store.sql.models import Order

    query = (
        select(Claim, Order.currency)
        .join(Order, Order.id == Claim.order_id)
        .where(Claim.buyer_id == buyer_id, Claim.id != exclude_claim)
    )
    if merchant_id is not None:
        query = query.where(Claim.merchant_id == merchant_id)
    rows = [(claim, code) for claim, code in session.execute(query).all()]
    claims = [claim for claim, _ in rows]
    currencies = {claim.id: order_currency for claim, order_currency in rows}
    outcomes: dict[str, int] = {}
    forged_value = 0.0
    refunded_on_forged = 0.0
    confirmed = 0
    elsewhere = 0
    under_appeal = 0
    for claim in claims:
        decisions = list(
            session.execute(
                select(Decision).where(Decision.claim_id == claim.id).order_by(Decision.created_at)
            ).scalars()
        )
        # An appeal reopens a claim, but its decision stands until a person decides again: a
        # buyer could otherwise clear the record by appealing every rejection before filing the
        # next claim. Approved by the analysis after it (a live capture), it no longer stands.
        if not decisions or claim.state == "approved":
            continue
        final = decisions[-1]
        outcomes[final.outcome] = outcomes.get(final.outcome, 0) + 1
        # Rejected for another reason than forged evidence (not eligible, the buyer's own
        # doing) is no forgery.
        if final.outcome == "rejected" and final.forgery:
            confirmed += 1
            counted = currency is None or currencies[claim.id] == currency
            elsewhere += not counted
            forged_value += claim.amount if counted else 0.0
            # Still counted (see above), and said: a person reads "confirmed" beside "being
            # reviewed again" rather than as settled.
            under_appeal += claim.state not in ("decided", "final")
            # Refunded first (approved), found forged later (rejected on review or appeal).
            if any(d.outcome in ("approved", "partial") for d in decisions[:-1]) or (
                claim.state == "final" and claim.action == "approve"
            ):
                refunded_on_forged += claim.amount if counted else 0.0
    return {
        "other_claims": len(claims),
        "outcomes": outcomes,
        "confirmed_forgeries": confirmed,
        "confirmed_under_appeal": under_appeal,
        "confirmed_forged_value": round(forged_value, 2),
        "currency": currency,
        "confirmed_in_other_currencies": elsewhere,
        "refunded_on_forged": round(refunded_on_forged, 2),
    }


def repeats_on_file(history: History, photo: Any, min_quality: int) -> dict[str, Any] | None:
    """What picture on file ``photo`` (a decoded :class:`~refundlens.media.Media`) repeats
    beyond its own claim: a photo of another claim (PDQ of the 8 orientations and the centre
    crops, as the analysis' reuse check), a frame of another claim's video, or a bank entry
    (PDQ, then its local print). None when it is new. The live capture's replay check asks this after the claim's own photos and the
    SKU's references (:func:`refundlens.cases.capture_repeats`)."""

    codes = {h.bits for h in photo.pdq_dihedral} | {photo.pdq.bits}
    codes |= {h.bits for h in photo.pdq_centre_crops.values() if h.quality >= min_quality}
    for code in codes:
        for match in history.seen_before(code):
            return {
                "repeats": "a picture already on file",
                "how": "pdq",
                "pdq_distance": match["distance"],
                "other_claim": match["claim"],
                "same_buyer": match["same_buyer"],
            }
        # A frame of another claim's unboxing video (a clip cut from it, or a frame as a photo).
        for match in history.video_frame_matches(code):
            return {
                "repeats": "a picture already on file",
                "how": "video_frame",
                "pdq_distance": match["distance"],
                "other_claim": match["claim"],
                "same_buyer": match["same_buyer"],
                "seconds": match["seconds"],
            }
        for match in history.bank_matches(code):
            return {
                "repeats": "a picture already on file",
                "how": "bank_pdq",
                "pdq_distance": match["distance"],
                "bank": match["bank"],
                "confirmed_at": match["confirmed_at"],
            }
    for match in history.bank_print_matches(photo.analysis):
        return {
            "repeats": "a picture already on file",
            "how": "bank_local_print",
            "bank": match["bank"],
            "confirmed_at": match["confirmed_at"],
            "inliers": match.get("inliers"),
        }
    return None
