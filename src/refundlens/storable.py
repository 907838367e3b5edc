"""Text that can be stored and sent: no lone UTF-16 surrogate, no NUL.

A photo's metadata is the sender's to write. A JSON escape such as ``"\\ud800"`` in an AIGC
label (or ``"\\u0000"``) becomes a Python string that no UTF-8 encoder takes and PostgreSQL's
JSONB refuses: kept in a finding, it made the claim's page, its report and its decision fail for
everyone but the buyer who sent it (a security review). Each such character becomes U+FFFD,
the replacement character, wherever a finding or an error carries text read from a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["storable", "storable_text"]

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """``text`` with each lone surrogate and NUL replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def storable(value: Any) -> Any:
    """``value`` with every string in it (keys too, in mappings, lists and tuples) made
    :func:`storable_text`; the same object where nothing needed it."""
    if isinstance(value, str):
        return storable_text(value) if _UNSTORABLE.search(value) else value
    if isinstance(value, Mapping):
        pairs = [(k, v, storable(k), storable(v)) for k, v in value.items()]
        if all(k is k2 and v is v2 for k, v, k2, v2 in pairs):
            return value
        return {k2: v2 for _, _, k2, v2 in pairs}
    if isinstance(value, list | tuple):
        items = [storable(v) for v in value]
        if all(a is b for a, b in zip(value, items, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value
