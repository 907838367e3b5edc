"""The evidence report as a person reads it (issue 19): readable facts, times with zones, and the
PDF checked page by page with poppler (pdftotext word boxes, pdftoppm pictures).

The PDF tests render the report of a claim a reviewer rejected with a reason; page pictures land
in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re

from refundlens.report.readable import FactRow, breakable, fact_rows, money, number, when, zone

REPR = re.compile(r"[{}\[\]']|\b(True|False|None)\b")
"""What a Python value leaves in text: braces, brackets, quotes around keys, True/False/None."""


# --- readable values ----------------------------------------------------------------------


def test_facts_become_rows_with_units_and_no_python_value() -> None:
    facts = {
        "transform": {"scale": 1.096, "rotation_deg": -148.4, "mirrored": False},
        "damage_repeat_offset_px": [317, 344],
        "edited_percent_of_object": 3.84,
        "noise_level": 4.23,
        "double_jpeg_periods": {},
        "matches": [
            {"claim": "clm_0123456789abcdef0123", "distance": 12, "same_buyer": True},
            {"claim": "clm_fedcba9876543210fedc", "distance": 30, "same_buyer": False},
        ],
        "seconds": 2.5,
        "region": None,
        "reference_sha256": "ab" * 32,
        "inliers": 1234,
    }
    rows = fact_rows(facts, {"yes": "是", "no": "否", "none": "无"}.get)
    table = {row.label: row for row in rows}
    assert table["transform › scale"] == FactRow("transform › scale", "1.096", "", False)
    assert table["transform › rotation"].value == "-148.4"
    assert table["transform › rotation"].unit == "°"
    assert table["transform › mirrored"].value == "否"
    assert table["damage repeat offset"] == FactRow("damage repeat offset", "317, 344", "px", False)
    assert table["edited percent of object"].unit == "%"
    assert table["noise level"].unit == "grey levels"
    assert table["double jpeg periods"].value == "无"
    assert table["matches 1 › claim"].mono
    assert table["matches 2 › same buyer"].value == "否"
    assert table["matches 1 › distance"].unit == "bits"
    assert table["seconds"] == FactRow("seconds", "2.5", "s", False)
    assert table["region"].value == "—"
    assert table["reference sha256"].mono
    assert table["inliers"].value == "1,234"
    for row in rows:
        assert not REPR.search(row.label + row.value), row


def test_numbers_amounts_and_times_read_as_a_person_writes_them() -> None:
    assert number(0.95780) == "0.9578"
    assert number(10.0) == "10"
    assert number(-0.0) == "0"
    assert number(0.00001234) == "1.23e-05"
    assert money(120) == "120.00"
    assert money(3000, "CNY") == "3,000.00 CNY"
    naive_utc = dt.datetime(2026, 12, 4, 10, 39, 55, 782312)
    assert when(naive_utc) == "2026-12-04 10:39:55 UTC"
    assert when(naive_utc, zone("Asia/Shanghai")) == "2026-12-04 18:39:55 UTC+08:00"
    assert when("2026-11-01T08:00:00+08:00", dt.UTC, seconds=False) == "2026-11-01 00:00 UTC"
    assert when(None) == "—"
    assert zone("Nowhere/Atlantis") is dt.UTC


def test_codes_may_wrap_only_between_their_parts_and_stay_escaped() -> None:
    assert str(breakable("reference.near_copy_unresolved")) == (
        "reference.<wbr>near_<wbr>copy_<wbr>unresolved"
    )
    assert str(breakable("<img src=x onerror=alert(1)>.x")) == (
        "&lt;img src=x onerror=alert(1)&gt;.<wbr>x"
    )
