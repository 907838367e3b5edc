"""Perceptual fingerprints: PDQ (Meta's 256-bit hash, via pdqhash) and its eight dihedral forms.

References
----------
.. [1] Meta, "The TMK+PDQF Video-Hashing Algorithm and the PDQ Image Similarity Algorithm",
       https://github.com/facebook/ThreatExchange/blob/main/hashing/hashing.pdf
"""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pdqhash

__all__ = ["PdqHash", "hamming", "pdq", "pdq_dihedral"]


@dataclasses.dataclass(frozen=True, slots=True)
class PdqHash:
    """A PDQ hash as 256 bits packed into 32 bytes, with PDQ's quality (0-100; < 50 is unreliable)."""

    bits: bytes
    quality: int

    @property
    def hex(self) -> str:
        return self.bits.hex()


def _pack(vector: npt.NDArray[np.int64]) -> bytes:
    return np.packbits(vector.astype(np.uint8)).tobytes()


def pdq(rgb: npt.NDArray[np.uint8]) -> PdqHash:
    """PDQ hash of an RGB uint8 image of shape (rows, cols, 3)."""
    vector, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    return PdqHash(_pack(vector), int(quality))


def pdq_dihedral(rgb: npt.NDArray[np.uint8]) -> tuple[PdqHash, ...]:
    """PDQ hashes of the 8 dihedral transforms (rotations by 90 degrees, with and without mirror)."""
    vectors, quality = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
    return tuple(PdqHash(_pack(v), int(quality)) for v in vectors)


CENTRE_CROPS = (0.95, 0.9, 0.8)
"""Centre crops hashed beside the whole picture: a cropped copy of a photo is close to one of
them in PDQ even when its whole-picture hash has moved past the match radius."""


def pdq_centre_crops(
    rgb: npt.NDArray[np.uint8], shares: tuple[float, ...] = CENTRE_CROPS
) -> dict[str, PdqHash]:
    """PDQ of centred crops keeping ``share`` of each side, keyed ``c95``, ``c90``, ``c80``."""
    rows, cols = rgb.shape[:2]
    out = {}
    for share in shares:
        dy, dx = int(rows * (1 - share) / 2), int(cols * (1 - share) / 2)
        out[f"c{round(share * 100)}"] = pdq(rgb[dy : rows - dy, dx : cols - dx])
    return out


def hamming(a: PdqHash, b: PdqHash) -> int:
    """Number of differing bits (0-256) between two PDQ hashes."""
    x = np.frombuffer(a.bits, np.uint8) ^ np.frombuffer(b.bits, np.uint8)
    return int(np.unpackbits(x).sum())
