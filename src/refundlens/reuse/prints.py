"""Local prints: a photo's keypoints as compact binary descriptors, for bank entries that still
match a cropped, resized, re-encoded or mirrored copy on another platform.

A whole-image PDQ hash moves past its match radius under a crop of a few percent (a 6% crop a
side: distance 114). A local print keeps the photo's ``max_points`` strongest ORB keypoints [1]_
on a copy reduced to 512 px: each a 256-bit rBRIEF descriptor (intensity comparisons around the
point, not pixels) and its position (normalised by the longest side). A copy is recognised when
enough descriptors match under one similarity transform found by RANSAC [2]_, they are a large
share of the prints' points, and they spread over the picture: two different photos of one
product share the label's points but not the rest of the picture.

Privacy: no pixel, colour or size of the photo is kept, only comparisons of local brightness at
about 160 points; inverting such descriptors yields at best a coarse grey impression of the
textured areas [3]_. Bank entries carry nothing else (``reuse.bank``).

References
----------
.. [1] E. Rublee, V. Rabaud, K. Konolige, G. Bradski, "ORB: an efficient alternative to SIFT or
       SURF", ICCV 2011.
.. [2] M. A. Fischler, R. C. Bolles, "Random sample consensus", Comm. ACM 24(6), 1981.
.. [3] F. Pittaluga et al., "Revealing scenes by inverting structure from motion
       reconstructions", CVPR 2019 (what descriptors can leak).
"""

from __future__ import annotations

import base64
import dataclasses
import struct
import threading
from collections.abc import Collection

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "PRINT_FORMAT",
    "LocalPrint",
    "PrintIndex",
    "PrintMatch",
    "SketchIndex",
    "best_match",
    "local_print",
    "match_prints",
    "query_prints",
]

PRINT_FORMAT = "orb1"
"""Version tag written before every encoded print: ``orb1:<base64>``."""
PRINT_SIDE = 512
MAX_POINTS = 160
MIN_INLIERS = 30
"""Matching rule (bench/run_bank.py, chosen on split dev): at least 30 descriptors agree under
one similarity transform (a grid over the thresholds below on all 299 dev photos: the best mean
recall with no match among 75,882 unrelated pairs), ..."""
MIN_SHARE = 0.3
"""... they are at least 30% of the smaller print's points, ..."""
MIN_COVERAGE = 0.4
"""... and they spread over at least 40% of the area the query's points span (the convex hull
of the agreeing points): another product of the same brand agrees on its logo only, a copy
agrees across the picture. The first rule (20%, chosen on 80 dev photos) matched an Alpro soy
milk's listing photo to photos of Alpro soyghurt at 22-34%: 7 false matches on the full dev
split, 15 on test."""
CLEAR_SHARE = 0.5
"""... unless they are at least half of the smaller print's points, where the spread is not
needed: a crop brings new strongest keypoints at its edges, so a true copy's agreeing points can
cover less of the query's hull (101 of 160 points agreeing, 34% of the hull, in a 20% crop),
while the logo matches above agreed on at most 43% of the points."""
_HEADER = struct.Struct(">H")


@dataclasses.dataclass(frozen=True, eq=False)
class LocalPrint:
    """Keypoint positions (n, 2) as (x, y) / longest side, and their ORB descriptors (n, 32)."""

    points: npt.NDArray[np.float32]
    descriptors: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return len(self.descriptors)

    def to_text(self) -> str:
        """``orb1:`` + base64 of: count (uint16), positions (uint16 x, y in 1/65535 of the
        longest side), descriptors (32 bytes each). About 6 KB of text for 160 points."""
        q = np.clip(np.rint(self.points * 65535), 0, 65535).astype(">u2")
        body = _HEADER.pack(len(self)) + q.tobytes() + self.descriptors.tobytes()
        return f"{PRINT_FORMAT}:" + base64.b64encode(body).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> LocalPrint:
        """Parse :meth:`to_text`; ValueError for anything else (a bank file is refused then)."""
        tag, _, payload = text.partition(":")
        if tag != PRINT_FORMAT:
            raise ValueError(f"not a local print ({tag!r})")
        body = base64.b64decode(payload, validate=True)
        if len(body) < _HEADER.size:
            raise ValueError("a local print too short to read")
        (n,) = _HEADER.unpack_from(body)
        if n > 4 * MAX_POINTS or len(body) != _HEADER.size + n * 4 + n * 32:
            raise ValueError("a local print of the wrong length")
        points = np.frombuffer(body, ">u2", 2 * n, _HEADER.size).astype(np.float32) / np.float32(
            65535
        )
        descriptors = np.frombuffer(body, np.uint8, 32 * n, _HEADER.size + 4 * n)
        return cls(points.reshape(n, 2), descriptors.reshape(n, 32).copy())


def local_print(rgb: npt.NDArray[np.uint8], *, max_points: int = MAX_POINTS) -> LocalPrint:
    """The local print of an RGB photo (rows, cols, 3): ORB on a grey copy resized to 512 px."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    # Every print at one scale (512 px), small photos enlarged: a copy reduced by half then
    # finds its points at the entry's pyramid levels, not below ORB's smallest patch.
    factor = PRINT_SIDE / max(grey.shape)
    if factor != 1:
        size = (max(1, round(grey.shape[1] * factor)), max(1, round(grey.shape[0] * factor)))
        interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
        grey = cv2.resize(grey, size, interpolation=interp)
    orb = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=max_points + max_points // 2, fastThreshold=10, edgeThreshold=15
    )
    keypoints, descriptors = orb.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return LocalPrint(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:max_points]
    points = np.asarray([keypoints[i].pt for i in order], np.float32) / np.float32(max(grey.shape))
    return LocalPrint(points.reshape(-1, 2), np.ascontiguousarray(descriptors[order]))


@dataclasses.dataclass(frozen=True, slots=True)
class PrintMatch:
    inliers: int
    share: float
    """Inliers as a share of the smaller print's points."""
    scale: float
    """Query size relative to the entry under the fitted similarity."""
    coverage: float = 0.0
    """Area of the agreeing points' convex hull over that of all the query's points."""

    @property
    def is_copy(self) -> bool:
        return (
            self.inliers >= MIN_INLIERS
            and self.share >= MIN_SHARE
            and (self.coverage >= MIN_COVERAGE or self.share >= CLEAR_SHARE)
        )


def match_prints(
    query: LocalPrint, entry: LocalPrint, *, ratio: float = 0.85, max_distance: int = 64
) -> PrintMatch:
    """How well ``query`` matches ``entry``: nearest descriptors passing Lowe's ratio test and a
    Hamming distance of at most ``max_distance`` bits, then a similarity transform by RANSAC
    (1% of the longest side); scales outside 0.4-2.5 count as no match."""
    none = PrintMatch(0, 0.0, 1.0)
    if len(query) < 8 or len(entry) < 8:
        return none
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(query.descriptors, entry.descriptors, k=2)
    good = [
        p[0]
        for p in pairs
        if len(p) == 2 and p[0].distance <= max_distance and p[0].distance < ratio * p[1].distance
    ]
    if len(good) < 6:
        return none
    src = query.points[[g.queryIdx for g in good]]
    dst = entry.points[[g.trainIdx for g in good]]
    cv2.setRNGSeed(20251)  # reproducible verdicts whatever ran before in this process
    model, inliers = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=0.01
    )
    if model is None or inliers is None:
        return none
    scale = float(np.hypot(model[0, 0], model[1, 0]))
    if not 0.4 < scale < 2.5:
        return none
    agreeing = inliers.ravel().astype(bool)
    count = int(agreeing.sum())
    coverage = 0.0
    if count >= 3:
        hull = cv2.convexHull(np.ascontiguousarray(src[agreeing], np.float32))
        every = cv2.convexHull(np.ascontiguousarray(query.points, np.float32))
        coverage = float(cv2.contourArea(hull)) / max(float(cv2.contourArea(every)), 1e-9)
    return PrintMatch(count, count / min(len(query), len(entry)), 1.0 / scale, coverage)


def query_prints(rgb: npt.NDArray[np.uint8]) -> tuple[LocalPrint, LocalPrint]:
    """The prints a claim photo is looked up with: as it is, and mirrored (ORB descriptors are
    not mirror-symmetric, so a mirrored copy is matched through the mirrored photo's print)."""
    return local_print(rgb), local_print(np.ascontiguousarray(rgb[:, ::-1]))


def best_match(query: tuple[LocalPrint, LocalPrint], entry: LocalPrint) -> PrintMatch:
    """The better of the plain and mirrored query's matches with ``entry``."""
    return max(
        (match_prints(q, entry) for q in query), key=lambda m: (m.is_copy, m.inliers, m.share)
    )


class PrintIndex:
    """Bank entries' local prints, searched as the bank is: every descriptor in one FAISS binary
    index (exact Hamming k-NN); an entry whose descriptors are among the nearest of at least
    ``MIN_INLIERS // 2`` of the query's is verified by :func:`match_prints`. Exact candidates,
    so the rule measured pair by pair in bench/run_reuse.py is the rule applied here.

    Safe to share between threads (the service's index cache): adds and the k-NN step hold a
    lock; the RANSAC verification runs outside it."""

    def __init__(self) -> None:
        import faiss

        self._index = faiss.IndexBinaryFlat(256)
        self._owner: list[int] = []
        self._owner_array: npt.NDArray[np.int64] | None = None
        self._prints: dict[int, LocalPrint] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._prints)

    def add(self, ident: int, entry: LocalPrint) -> None:
        if len(entry) == 0:
            return
        with self._lock:
            self._prints[ident] = entry
            self._index.add(np.ascontiguousarray(entry.descriptors))
            self._owner.extend([ident] * len(entry))
            self._owner_array = None

    def search(
        self, query: tuple[LocalPrint, LocalPrint], k: int = 4
    ) -> list[tuple[int, PrintMatch]]:
        """(entry id, match) for every entry the query (or its mirror) is a copy of, best first."""
        votes: dict[int, int] = {}
        with self._lock:
            if not self._owner:
                return []
            if self._owner_array is None:  # once per change, not per search
                self._owner_array = np.asarray(self._owner, np.int64)
            owner = self._owner_array
            for side in query:
                if len(side) == 0:
                    continue
                _, found = self._index.search(np.ascontiguousarray(side.descriptors), k)
                for row in found:
                    for ident in set(int(owner[i]) for i in row if i >= 0):
                        votes[ident] = votes.get(ident, 0) + 1
            candidates = {
                ident: self._prints[ident]
                for ident, count in votes.items()
                if count >= MIN_INLIERS // 2
            }
        out = []
        for ident, entry in candidates.items():
            match = best_match(query, entry)
            if match.is_copy:
                out.append((ident, match))
        return sorted(out, key=lambda pair: (-pair[1].inliers, pair[0]))


SKETCH_POINTS = 32
"""Descriptors of each claim photo kept in :class:`SketchIndex`: its strongest (a print lists
its points strongest first). Chosen on split ``dev`` of bench/run_bank.py: 32 find as many
copies as 48 (and the full print) at two thirds of the memory; 16 lose a tenth of the 15-25%
crops."""
SKETCH_QUERY_POINTS = 48
"""The query's strongest descriptors looked up (each side, plain and mirrored): as many copies
found on ``dev`` as with all 160, at a third of the search time."""
SKETCH_MAX_DISTANCE = 48
"""A neighbour within this many bits (of 256) is a vote. Among 12,600 prints (dev photos, and
other photos of ../shared/data with crops and turns of them), the photo a 25% crop came from was
among the 8 with most votes for 82% of dev queries at 48 bits, 73% at 56 and 63% at 64 (other
photos of the same products gather votes with the looser radius); 100%, 98% and 97% for a 5%
crop."""
SKETCH_MIN_VOTES = 3
"""Query descriptors that must find a photo for it to be a candidate."""
SKETCH_CANDIDATES = 16
"""Candidates (most votes first, one per claim) verified with the whole print by
:func:`best_match`, about 1 ms each: at 8 the photo a 25% crop came from was among them for 82%
of those queries, at 16 for 88%. A ring that files pictures made to gather the copy's votes
before the copy needs as many claims (orders) as this to crowd the original out."""


class _Generation:
    def __init__(self) -> None:
        import faiss

        self.index = faiss.IndexBinaryFlat(256)
        self.owner: list[int] = []
        self.owner_array: npt.NDArray[np.int64] | None = None
        self.photos = 0
        self.group: dict[int, str] = {}


class SketchIndex:
    """Where an earlier claim photo, at any shop, for any product and by any buyer, may have
    been copied from: each photo's :data:`SKETCH_POINTS` strongest descriptors in a FAISS binary
    index (exact Hamming range search), searched with the query's strongest; the candidates it names are
    verified with the whole prints (kept in the database) by :func:`best_match`, the rule the bank
    applies. A ring's photo cropped by 5% and filed by another buyer at another shop passed PDQ
    and every per-buyer and per-SKU check (a security review).

    Bounded: it holds the latest ``capacity`` photos at most and ``capacity // 2`` at least, in
    two generations (the older one is dropped whole when the newer fills: FAISS's flat binary
    index removes nothing cheaply). About 1.3 KB of memory a photo (32 descriptors of 32 bytes
    and their owners); a search visits every descriptor held: about 60 ms at 20,000 photos on
    one core (bench/results/reuse_bank.md). ``capacity`` 0 holds nothing.

    Safe to share between threads (the service's index cache): adds and searches hold a lock."""

    def __init__(self, capacity: int, points: int = SKETCH_POINTS) -> None:
        self.capacity = max(0, capacity)
        self.points = points
        self._generations: list[_Generation] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return sum(g.photos for g in self._generations)

    def add(self, ident: int, entry: LocalPrint, group: str = "") -> None:
        """Hold ``entry`` under ``ident``; photos of one ``group`` (a claim) take one candidate
        place between them."""
        if self.capacity <= 0 or len(entry) == 0:
            return
        with self._lock:
            if not self._generations or self._generations[-1].photos >= max(1, self.capacity // 2):
                self._generations = [*self._generations[-1:], _Generation()]
            newest = self._generations[-1]
            kept = np.ascontiguousarray(entry.descriptors[: self.points])
            newest.index.add(kept)
            newest.owner.extend([ident] * len(kept))
            newest.owner_array = None
            newest.photos += 1
            newest.group[ident] = group or str(ident)

    def candidates(
        self,
        query: tuple[LocalPrint, LocalPrint],
        most: int = SKETCH_CANDIDATES,
        skip: Collection[int] = (),
        below: int | None = None,
    ) -> list[int]:
        """Ids of the photos the query (or its mirror) may copy, most votes first: a photo's
        votes are the query descriptors with one of its descriptors within
        :data:`SKETCH_MAX_DISTANCE` bits. ``skip``'s ids, and ids from ``below`` up (rows added
        after the claim's own: claims filed after it), are left out before the ``most`` are
        taken. Every neighbour within the distance counts, not the nearest few: copies filed
        after the claim took the nearest places of every descriptor, and the photo it was
        copied from got no vote (a security review)."""
        votes: dict[int, int] = {}
        group: dict[int, str] = {}
        with self._lock:
            for generation in self._generations:
                if not generation.owner:
                    continue
                group.update(generation.group)
                if generation.owner_array is None:  # once per change, not per search
                    generation.owner_array = np.asarray(generation.owner, np.int64)
                owner = generation.owner_array
                for side in query:
                    if len(side) == 0:
                        continue
                    looked_up = np.ascontiguousarray(side.descriptors[:SKETCH_QUERY_POINTS])
                    limits, _, found = generation.index.range_search(
                        looked_up, SKETCH_MAX_DISTANCE + 1
                    )
                    if not len(found):
                        continue
                    # One vote per query descriptor and photo, however many of the photo's
                    # descriptors are near it.
                    asked = np.repeat(np.arange(len(limits) - 1), np.diff(limits).astype(np.int64))
                    pairs = np.unique(np.stack([asked, owner[found]], axis=1), axis=0)
                    idents, counts = np.unique(pairs[:, 1], return_counts=True)
                    for ident, count in zip(idents.tolist(), counts.tolist(), strict=True):
                        votes[ident] = votes.get(ident, 0) + count
        ranked = sorted(votes.items(), key=lambda pair: (-pair[1], pair[0]))
        out: list[int] = []
        taken: set[str] = set()
        for ident, count in ranked:
            if len(out) >= most or count < SKETCH_MIN_VOTES:
                break
            if ident in skip or (below is not None and ident >= below):
                continue
            # One place per claim: 12 pictures made to gather votes, filed in two claims
            # before the copy, took every place, and the copy was paid (a security review).
            if group.get(ident, "") in taken:
                continue
            taken.add(group.get(ident, ""))
            out.append(ident)
        return out
