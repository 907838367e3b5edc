"""report: Assessment -> versioned JSON, pictures (masks, overlays) and human text."""

from .json import SCHEMA_VERSION, assessment_to_dict, load_schema, report_for_shop
from .pictures import (
    overlay_image,
    picture_blobs,
    write_file,
    write_finding_pictures,
    write_pictures,
)

__all__ = [
    "SCHEMA_VERSION",
    "assessment_to_dict",
    "load_schema",
    "overlay_image",
    "picture_blobs",
    "report_for_shop",
    "write_file",
    "write_finding_pictures",
    "write_pictures",
]
