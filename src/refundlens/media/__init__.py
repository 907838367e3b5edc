"""media: the only code that opens files. Decoding, limits, metadata and fingerprints."""

from .decode import SUPPORTED_FORMATS, Media, MetadataBlocks, load_media, media_from_bytes
from .exif import ExifFacts, parse_exif_datetime
from .fingerprint import PdqHash, hamming, pdq, pdq_dihedral
from .jpeg import estimate_jpeg_quality

__all__ = [
    "SUPPORTED_FORMATS",
    "ExifFacts",
    "Media",
    "MetadataBlocks",
    "PdqHash",
    "estimate_jpeg_quality",
    "hamming",
    "load_media",
    "media_from_bytes",
    "parse_exif_datetime",
    "pdq",
    "pdq_dihedral",
]
