"""media: the only code that opens files. Decoding, limits, metadata and fingerprints."""

from .decode import (
    SUPPORTED_FORMATS,
    AnimatedMediaError,
    Media,
    MetadataBlocks,
    load_media,
    media_from_bytes,
    metadata_facts,
)
from .exif import ExifFacts, is_generator_payload, parse_exif_datetime, utc_offset
from .fingerprint import PdqHash, hamming, pdq, pdq_dihedral
from .jpeg import estimate_jpeg_quality
from .metadata import TextChunk, decode_user_comment, parse_xmp, png_text_chunks

__all__ = [
    "SUPPORTED_FORMATS",
    "AnimatedMediaError",
    "ExifFacts",
    "Media",
    "MetadataBlocks",
    "PdqHash",
    "TextChunk",
    "decode_user_comment",
    "estimate_jpeg_quality",
    "hamming",
    "is_generator_payload",
    "load_media",
    "media_from_bytes",
    "metadata_facts",
    "parse_exif_datetime",
    "parse_xmp",
    "pdq",
    "pdq_dihedral",
    "png_text_chunks",
    "utc_offset",
]
