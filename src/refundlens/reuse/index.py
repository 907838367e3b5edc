"""PDQ near-duplicate search: FAISS binary multi-index hashing, exact within the search radius.

A 256-bit PDQ hash is cut into 11 substrings of 23 bits, each the key of one hash table. Two
hashes within Hamming distance 31 differ in at most 2 bits of at least one substring (11 x 3 > 31,
pigeonhole), so probing every key within 2 flips of the query's substrings (277 keys per table)
finds every stored hash within 31: recall is exact for radius <= 31, not approximate [1]_.
Candidates are then verified on all 256 bits.

Shards split the stored hashes by the first byte of the hash (balanced, rebuildable shard by
shard); a near-duplicate may sit in any shard, so a query visits all of them.

References
----------
.. [1] M. Norouzi, A. Punjani, D. J. Fleet, "Fast exact search in Hamming space with multi-index
       hashing", IEEE TPAMI 36(6), 2014.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt

__all__ = ["RADIUS_MAX", "HashIndex"]

RADIUS_MAX = 31
BITS, TABLES, KEY_BITS, FLIPS = 256, 11, 23, 2


class HashIndex:
    """Stored PDQ hashes (32 bytes) with int64 ids; ``search`` returns (id, distance) pairs."""

    def __init__(self, shards: int = 1) -> None:
        self.shards = max(1, int(shards))
        self._indexes = [self._new() for _ in range(self.shards)]
        self._ids: list[list[int]] = [[] for _ in range(self.shards)]
        self._lock = threading.Lock()

    @staticmethod
    def _new() -> faiss.IndexBinaryMultiHash:
        index = faiss.IndexBinaryMultiHash(BITS, TABLES, KEY_BITS)
        index.nflip = FLIPS
        return index

    def __len__(self) -> int:
        return sum(len(ids) for ids in self._ids)

    def _shard(self, code: npt.NDArray[np.uint8]) -> int:
        return int(code[0]) % self.shards

    def add(self, ids: Sequence[int], codes: npt.ArrayLike | Sequence[bytes]) -> None:
        if isinstance(codes, list | tuple) and codes and isinstance(codes[0], bytes | bytearray):
            codes = np.frombuffer(b"".join(bytes(c) for c in codes), np.uint8)
        array = np.ascontiguousarray(np.asarray(codes, dtype=np.uint8).reshape(-1, BITS // 8))
        with self._lock:
            for shard in range(self.shards):
                keep = [i for i in range(len(array)) if self._shard(array[i]) == shard]
                if keep:
                    self._indexes[shard].add(array[keep])
                    self._ids[shard].extend(int(ids[i]) for i in keep)

    def search(
        self, code: bytes | npt.ArrayLike, radius: int = RADIUS_MAX
    ) -> list[tuple[int, int]]:
        """Every stored id within ``radius`` bits (<= 31: exact), nearest first."""
        if radius > RADIUS_MAX:
            raise ValueError(
                f"radius {radius} is over {RADIUS_MAX}, where the search stops being exact"
            )
        query = (
            np.frombuffer(bytes(code), np.uint8).reshape(1, -1)
            if isinstance(code, bytes | bytearray)
            else np.asarray(code, np.uint8).reshape(1, -1)
        )
        out: list[tuple[int, int]] = []
        with self._lock:
            for shard, index in enumerate(self._indexes):
                if index.ntotal == 0:
                    continue
                lims, distances, labels = index.range_search(query, radius + 1)
                ids = self._ids[shard]
                out.extend(
                    (ids[int(label)], int(d))
                    for label, d in zip(
                        labels[lims[0] : lims[1]], distances[lims[0] : lims[1]], strict=True
                    )
                )
        return sorted(out, key=lambda pair: (pair[1], pair[0]))

    def save(self, folder: str | Path) -> None:
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for shard, index in enumerate(self._indexes):
                storage = index.storage  # type: ignore[attr-defined]
                codes = (
                    faiss.vector_to_array(storage.xb).reshape(-1, BITS // 8)
                    if index.ntotal
                    else np.zeros((0, 32), np.uint8)
                )
                np.save(target / f"shard-{shard:03d}.codes.npy", codes)
                np.save(
                    target / f"shard-{shard:03d}.ids.npy", np.asarray(self._ids[shard], np.int64)
                )

    @classmethod
    def load(cls, folder: str | Path, shards: int) -> HashIndex:
        """Rebuild from saved codes (the tables are rebuilt, not stored: smaller files)."""
        index = cls(shards)
        for shard in range(shards):
            codes_path = Path(folder) / f"shard-{shard:03d}.codes.npy"
            if codes_path.exists():
                index.add(
                    np.load(Path(folder) / f"shard-{shard:03d}.ids.npy").tolist(),
                    np.load(codes_path),
                )
        return index

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[int, str]], shards: int = 1) -> HashIndex:
        """Build from (id, PDQ hex) rows, e.g. straight from the store."""
        index = cls(shards)
        ids, codes = [], []
        for ident, hexcode in rows:
            ids.append(int(ident))
            codes.append(np.frombuffer(bytes.fromhex(hexcode), np.uint8))
        if ids:
            index.add(ids, np.stack(codes))
        return index
