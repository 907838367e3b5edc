"""Stored values as text a person reads: a finding's facts as table rows with units, times with
their zone, and codes that wrap only between their parts.

The evidence report goes to a platform, a court or the police; it must never print a Python
value (``{'scale': 1.096}``, ``[317, 344]``, ``True``) or break ``reference.derived`` inside a
word. These functions are registered as Jinja2 filters in :mod:`refundlens.service.i18n`.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape

__all__ = [
    "WORDED_FACTS",
    "FactRow",
    "breakable",
    "fact_rows",
    "hours",
    "money",
    "number",
    "when",
    "zone",
]


class FactRow(NamedTuple):
    """One line of a facts table: what (``transform › scale``), its value, its unit ("" when
    none) and whether the value is an identifier or hash (printed in a fixed-width font)."""

    label: str
    value: str
    unit: str
    mono: bool


# Units by fact name, for names that do not carry their unit (docs/findings.md and
# docs/settings.md give them). Grey levels: 0-255 steps of an 8-bit channel.
_NAMED_UNITS = {
    "noise_level": "grey levels",
    "envelope_level": "grey levels",
    "envelope_for_quality": "grey levels",
    "tolerance": "grey levels",
    "residual_median_outside_edit": "grey levels",
    "damage_noise_inside": "grey levels",
    "damage_noise_around": "grey levels",
    "seconds": "s",
    "duration_s": "s",
    "distance": "bits",
    "pdq_distance": "bits",
    "pdq_max_distance": "bits",
    "peak_cycles_per_pixel": "cycles/px",
    "thumbnail_size": "px",
    "image_size": "px",
    "exif_pixel_dimensions": "px",
}
# Units a fact name carries at its end (``damage_repeat_offset_px``) or inside it
# (``edited_percent_of_object``); the unit leaves the label for the unit column.
_SUFFIX_UNITS = (
    ("_percent", "%"),
    ("_px", "px"),
    ("_deg", "°"),
    ("_seconds", "s"),
    ("_s", "s"),
    ("_hours", "h"),
    ("_bytes", "bytes"),
)
_INFIX_UNITS = (("_percent_", "%"), ("_px_", "px"))
_BOX = re.compile(r"box_row_col_height_width$")
_HEX_ID = re.compile(r"[0-9a-f]{32,}|[a-z]{2,6}_[0-9a-f]{16,}")


def _unit(name: str) -> tuple[str, str]:
    """(label, unit) of one fact name."""
    if name in _NAMED_UNITS:
        return name, _NAMED_UNITS[name]
    if _BOX.search(name):
        return name, "px"
    for suffix, unit in _SUFFIX_UNITS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], unit
    for infix, unit in _INFIX_UNITS:
        if infix in name:
            return name, unit
    return name, ""


def hours(value: float | None) -> str:
    """Hours left before a deadline, as a person says them: whole hours from two on, tenths
    below (a buyer with 20 minutes left read "about 0 h"); never below zero."""
    left = max(0.0, value or 0.0)
    return f"{left:.0f}" if left >= 2 else f"{left:.1f}"


def number(value: float | int, digits: int = 4) -> str:
    """A number as a person writes it: integers with thousands separators, at most ``digits``
    decimals without trailing zeros, very small values in three significant digits."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number here")
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "—"
    if value != 0 and abs(value) < 10 ** (-digits):
        return f"{value:.3g}"
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def money(value: float | int | None, currency: str = "") -> str:
    """An amount with two decimals and its currency: ``1,234.50 CNY``; "—" when unknown."""
    if value is None:
        return "—"
    return f"{float(value):,.2f} {currency}".strip()


def _scalar(value: object, gettext: Callable[[str], str]) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int | float):
        return number(value)
    return str(value)


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


# Facts whose text values the detectors write themselves (a verdict, how a match was found, a
# note): shown in the reader's language (the catalogs' context ``fact value``). Never a value
# read from a file or typed by a person: those are shown as they are.
WORDED_FACTS = frozenset(
    {
        "level",
        "note",
        "watermark_note",
        "matched_by",
        "verdict",
        "reason_cannot_tell",
        "how",
        "matched_filter",  # "blur 0.7" among Chinese facts (a merchant's walkthrough)
        "time_zone",  # "from OffsetTimeOriginal" (a reviewer's walkthrough)
    }
)


def _natural(name: object) -> list[tuple[int, int | str]]:
    """A name's sort key with its numbers read as numbers: "period 3" before "period 10" (they
    read 10, 11, 12, 3: a merchant's walkthrough)."""
    return [
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", str(name))
    ]


def fact_rows(
    facts: Mapping[str, Any] | None,
    gettext: Callable[[str], str] = str,
    prefix: str = "",
    label: Callable[[str], str] = str,
    worded: Callable[[str], str] = str,
) -> list[FactRow]:
    """A finding's ``facts`` as rows a person reads, in name order.

    Nested mappings become rows labelled ``outer › inner``; a list of plain values becomes one
    value joined by commas; a list of mappings (reuse matches, C2PA actions) becomes numbered
    groups ``matches 1 › distance``; an empty list or mapping reads "none"; booleans read
    "yes"/"no" and None "—". Units come from the fact's name (``_px``, ``_percent``, ``_deg``,
    ``_s``, ``_hours``; grey levels and bits for the names that measure them). Nothing is ever
    printed as a Python value. ``label`` gives a name's words in the reader's language (the
    catalogs' context ``fact``); a name it does not know reads as its words. ``worded`` gives
    the text values of :data:`WORDED_FACTS` in the reader's language."""
    rows: list[FactRow] = []
    for name in sorted(facts or {}, key=_natural):
        value = (facts or {})[name]
        base, unit = _unit(name)
        named = prefix + label(base.replace("_", " "))
        if isinstance(value, Mapping):
            if value:
                rows.extend(fact_rows(value, gettext, named + " › ", label, worded))
            else:
                rows.append(FactRow(named, gettext("none"), "", False))
        elif isinstance(value, list | tuple):
            if not value:
                rows.append(FactRow(named, gettext("none"), "", False))
            elif all(_is_scalar(v) for v in value):
                text = ", ".join(_scalar(v, gettext) for v in value)
                rows.append(FactRow(named, text, unit, _mono(value)))
            else:
                for index, item in enumerate(value, 1):
                    if isinstance(item, Mapping):
                        rows.extend(fact_rows(item, gettext, f"{named} {index} › ", label, worded))
                    else:
                        rows.extend(
                            fact_rows({str(index): item}, gettext, named + " › ", label, worded)
                        )
        elif base in WORDED_FACTS and isinstance(value, str):
            rows.append(FactRow(named, worded(value), unit, False))
        else:
            rows.append(FactRow(named, _scalar(value, gettext), unit, _mono([value])))
    return rows


def _mono(values: list[Any] | tuple[Any, ...]) -> bool:
    return any(isinstance(v, str) and _HEX_ID.fullmatch(v) for v in values)


def breakable(text: object) -> Markup:
    """``text`` escaped, with a line-break opportunity (``<wbr>``) after every dot, underscore,
    slash and hyphen: ``reference.near_copy_unresolved`` may wrap between its parts, never
    inside a word. Escaping comes first, so only the ``<wbr>`` tags are markup."""
    escaped = str(escape("" if text is None else str(text)))
    return Markup(re.sub(r"([._/-])", r"\1<wbr>", escaped))


def zone(name: str | None) -> dt.tzinfo:
    """The time zone called ``name`` (IANA, e.g. ``Asia/Shanghai``); UTC when empty or unknown."""
    if not name or name == "UTC":
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def when(moment: dt.datetime | str | None, tz: dt.tzinfo = dt.UTC, seconds: bool = True) -> str:
    """``moment`` in ``tz`` with its offset: ``2026-11-03 16:00:00 UTC+08:00`` (``UTC`` when
    the zone is UTC). A naive datetime is UTC (SQLite returns them so; they were written as
    UTC). An ISO string is parsed; any other text is returned as it is."""
    if moment is None or moment == "":
        return "—"
    if isinstance(moment, str):
        text = moment
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(tz)
    offset = local.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    label = "UTC"
    if minutes:
        sign = "+" if minutes > 0 else "-"
        label = f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    return f"{local:%Y-%m-%d %H:%M{':%S' if seconds else ''}} {label}"
