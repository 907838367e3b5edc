"""media: the only code that opens files. Decoding, limits, metadata and fingerprints."""

from .decode import SUPPORTED_FORMATS, Media, MetadataBlocks, load_media, media_from_bytes
from .exif import ExifFacts, parse_exif_datetime, utc_offset
from .fingerprint import PdqHash, hamming, pdq, pdq_dihedral
from .jpeg import estimate_jpeg_quality
from .metadata import TextChunk, decode_user_comment, parse_xmp, png_text_chunks

__all__ = [
    "SUPPORTED_FORMATS",
    "ExifFacts",
    "Media",
    "MetadataBlocks",
    "PdqHash",
    "TextChunk",
    "decode_user_comment",
    "estimate_jpeg_quality",
    "hamming",
    "load_media",
    "media_from_bytes",
    "parse_exif_datetime",
    "parse_xmp",
    "pdq",
    "pdq_dihedral",
    "png_text_chunks",
    "utc_offset",
]
