"""What every text a user sends must be, for the API and the web forms alike (one rule each).

Each text field has a maximum length (docs/security.md lists them); ids are short and plain;
no text may carry a NUL byte (PostgreSQL refuses it) or a lone UTF-16 surrogate (not Unicode:
no encoder writes it). A value that breaks a rule is a coded 422, never a 500.
"""

from __future__ import annotations

import re

from ..cases.workflow import EVIDENCE_KINDS
from ..errors import RefundlensError

__all__ = [
    "EVIDENCE_KINDS",
    "MAX_CURRENCY",
    "MAX_EXTERNAL_ID",
    "MAX_FILE_NAME",
    "MAX_ID",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_STATEMENT",
    "MAX_TITLE",
    "MAX_URL",
    "FieldError",
    "check_id",
    "check_text",
]

MAX_ID = 100
"""Ids sent by a client: tenant, SKU, order, buyer, claim, reviewer key."""
MAX_EXTERNAL_ID = 100
"""A merchant's own SKU or order number."""
MAX_NAME = 200
"""A tenant's name."""
MAX_TITLE = 300
"""A SKU's title."""
MAX_FILE_NAME = 300
"""An uploaded file's name (longer names are cut, not refused: phones make long ones)."""
MAX_REASON = 4000
"""A buyer's reason, a decision's or an appeal's reason."""
MAX_STATEMENT = 8000
"""A statement given as evidence."""
MAX_URL = 500
"""A webhook URL."""
MAX_CURRENCY = 3


_ID = re.compile(r"[A-Za-z0-9_.:@-]+")


class FieldError(RefundlensError):
    """A field a user sent breaks its rule (code ``request.bad_field``, 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__("request.bad_field", f"{field}: {message}")
        self.field = field


def _unicode_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL byte"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode (a lone surrogate)"
    return None


def check_text(field: str, value: str, max_length: int) -> str:
    """``value`` if it is valid Unicode without NUL and at most ``max_length`` characters."""
    problem = _unicode_problem(value)
    if problem:
        raise FieldError(field, problem)
    if len(value) > max_length:
        raise FieldError(field, f"is {len(value)} characters; the limit is {max_length}")
    return value


def check_id(field: str, value: str, max_length: int = MAX_ID) -> str:
    """A plain id: letters, digits and ``_ . : @ -``, at most ``max_length`` characters."""
    check_text(field, value, max_length)
    if not _ID.fullmatch(value):
        raise FieldError(field, "may hold only letters, digits and _ . : @ -")
    return value
