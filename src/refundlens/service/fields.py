"""What every text a user sends must be, for the API and the web forms alike (one rule each).

Each text field has a maximum length (docs/security.md lists them); ids are short and plain;
no text may carry a NUL byte (PostgreSQL refuses it) or a lone UTF-16 surrogate (not Unicode:
no encoder writes it). A value that breaks a rule is a coded 422, never a 500.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, AllowInfNan, StringConstraints
from pydantic_core import PydanticCustomError

from ..cases.review import EVIDENCE_KINDS
from ..errors import RefundlensError
from ..store.interface import NAME_LENGTH

__all__ = [
    "EVIDENCE_KINDS",
    "MAX_AMOUNT",
    "MAX_BUYER_DETAIL",
    "MAX_BUYER_DETAILS",
    "MAX_CURRENCY",
    "MAX_EXTERNAL_ID",
    "MAX_FILE_NAME",
    "MAX_ID",
    "MAX_NAME",
    "MAX_REASON",
    "MAX_SECRET",
    "MAX_STATEMENT",
    "MAX_TITLE",
    "MAX_URL",
    "MAX_WORD",
    "BuyerDetail",
    "Currency",
    "ExternalId",
    "FieldError",
    "Finite",
    "Id",
    "Name",
    "Reason",
    "Secret",
    "Statement",
    "Title",
    "Url",
    "Word",
    "check_id",
    "check_text",
    "file_name",
    "parse_amount",
]

MAX_ID = 100
"""Ids sent by a client: tenant, SKU, order, buyer, claim, reviewer key."""
MAX_EXTERNAL_ID = 100
"""A merchant's own SKU or order number."""
MAX_NAME = 200
"""A tenant's name."""
MAX_TITLE = 300
"""A SKU's title."""
MAX_FILE_NAME = NAME_LENGTH
"""An uploaded file's name (longer names are cut, not refused: phones make long ones)."""
MAX_REASON = 4000
"""A buyer's reason, a decision's or an appeal's reason."""
MAX_STATEMENT = 8000
"""A statement given as evidence."""
MAX_URL = 500
"""A webhook URL."""
MAX_CURRENCY = 3
"""An ISO 4217 currency code."""
MAX_SECRET = 200
"""A webhook's signing secret."""
MAX_WORD = 40
"""One word from a fixed list: a claim type, a decision, a state or an action to filter by."""
MAX_BUYER_DETAIL = 500
"""One of an order's buyer details (name, phone, address), and the detail's name."""
MAX_BUYER_DETAILS = 10
"""Buyer details on one order (entries, not characters)."""


# Not starting with a dot: "." and ".." in a path are dot-segments that a client resolves away
# (GET /v1/claims/.. is GET /v1/), so such an id could be stored but never addressed.
_ID = re.compile(r"[A-Za-z0-9_:@-][A-Za-z0-9_.:@-]*")
# Not storable (lone surrogates, Cs; NUL), or misleading where a reviewer reads the name, by
# Unicode category: control characters (Cc: a newline in a log line or a report), the invisible
# format characters that reorder or hide text (Cf: bidi overrides, marks and isolates,
# "invoice\u202egpj.exe" shows as "invoiceexe.jpg"; zero-width and word joiners, soft hyphens,
# tag characters, a byte-order mark) and line and paragraph separators (Zl, Zp).
_UNWRITABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


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
        raise FieldError(field, "may hold only letters, digits and _ . : @ -, not first a dot")
    return value


def file_name(value: str | None, default: str = "upload") -> str:
    """An uploaded file's name as kept: cut to :data:`MAX_FILE_NAME`, a NUL byte, a lone
    surrogate, a control character, an invisible format character (bidi, zero-width, tags) or a
    line or paragraph separator replaced by U+FFFD (a name is a label a reviewer reads, not something to refuse a photo over)."""
    if not value:
        return default
    return "".join(
        "\ufffd" if unicodedata.category(c) in _UNWRITABLE_CATEGORIES else c
        for c in value[:MAX_FILE_NAME]
    )


def parse_amount(field: str, value: str) -> float | None:
    """A form's amount: ``None`` when empty, else a finite number, else :class:`FieldError`."""
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise FieldError(field, "is not a number") from None
    if not math.isfinite(number):
        raise FieldError(field, "is not a finite number")
    if abs(number) > MAX_AMOUNT:
        raise FieldError(field, f"is more than {MAX_AMOUNT:.0e}")
    return number


# The same rules as pydantic types, for the API's models and its Form/Query/Path parameters.
# The length and the id pattern are in the OpenAPI document (maxLength, pattern); a rule's
# error has the type ``request.bad_field``, which the API answers as that code.


def _valid_unicode(value: str) -> str:
    problem = _unicode_problem(value)
    if problem:
        raise PydanticCustomError("request.bad_field", problem)
    return value


_UNICODE = AfterValidator(_valid_unicode)

Id = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID, pattern=f"^{_ID.pattern}$"),
    _UNICODE,
]
"""An id: letters, digits and ``_ . : @ -`` (not first a dot), at most :data:`MAX_ID`
(:func:`check_id`)."""
IdOrNone = Annotated[
    str,
    StringConstraints(max_length=MAX_ID, pattern=f"^$|^{_ID.pattern}$"),
    _UNICODE,
]
"""An :data:`Id`, or "" where none is meant (a decision taken on no analysis)."""
ExternalId = Annotated[str, StringConstraints(max_length=MAX_EXTERNAL_ID), _UNICODE]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME), _UNICODE]
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE), _UNICODE]
Reason = Annotated[str, StringConstraints(max_length=MAX_REASON), _UNICODE]
Statement = Annotated[str, StringConstraints(max_length=MAX_STATEMENT), _UNICODE]
Url = Annotated[str, StringConstraints(max_length=MAX_URL), _UNICODE]
Secret = Annotated[str, StringConstraints(max_length=MAX_SECRET), _UNICODE]
# An ISO 4217 code, as the platform writes it ("usd" is read as USD): the amount limits apply
# to the policy's currency only (cases/routing.py), so "XY" or "元" must not pass as a code.
Currency = Annotated[
    str,
    StringConstraints(max_length=MAX_CURRENCY, to_upper=True, pattern=r"^[A-Za-z]{3}$"),
    _UNICODE,
]
Word = Annotated[str, StringConstraints(max_length=MAX_WORD), _UNICODE]
BuyerDetail = Annotated[str, StringConstraints(max_length=MAX_BUYER_DETAIL), _UNICODE]

MAX_AMOUNT = 1e12
"""The largest money amount taken (an order's, a claim's, a partial refund's): far above any
order, and still exact to the cent in a float (an amount is summed in cents; 1e308 overflowed
that sum into a 500)."""


def _within_max_amount(value: float) -> float:
    if abs(value) > MAX_AMOUNT:
        raise PydanticCustomError("request.bad_field", f"is more than {MAX_AMOUNT:.0e}")
    return value


# A validator, not Field(le=...): a model's own Field(ge=0) on the same field must still hold.
Finite = Annotated[float, AllowInfNan(False), AfterValidator(_within_max_amount)]
"""A number that is not NaN or infinite (JSON's ``NaN``, a form's ``nan``) and within
:data:`MAX_AMOUNT` either way: money amounts."""
