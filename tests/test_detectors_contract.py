"""One contract test for every detector: its examples give the expected codes, and every finding
keeps the Finding contract (documented code, bilingual reason, JSON-safe facts, aligned region)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from refundlens.detectors import all_detector_classes
from refundlens.rendering.i18n import translations
from refundlens.rendering.readable import WORDED_FACTS, fact_rows
from refundlens.report.json import _plain

CASES = [(cls, ex) for cls in all_detector_classes() for ex in cls.examples()]
_CHINESE = translations("zh_CN")


def _chinese(label: str) -> bool:
    """Each part of a fact's label (``outer 1 › inner``) holds a Chinese character, or is a hash
    or a name no language translates (sha256, an index)."""
    parts = [part.strip().rstrip("0123456789").strip() for part in label.split(" › ")]
    return all(
        not part or part in ("sha256",) or any("\u4e00" <= ch <= "\u9fff" for ch in part)
        for part in parts
    )


def _word(value: str) -> str:
    return _CHINESE.pgettext("fact value", value)


def _worded_values(facts: object) -> list[str]:
    """The text values of :data:`WORDED_FACTS` anywhere in ``facts``."""
    out: list[str] = []
    if isinstance(facts, dict):
        for name, value in facts.items():
            if name in WORDED_FACTS and isinstance(value, str):
                out.append(value)
            else:
                out += _worded_values(value)
    elif isinstance(facts, list | tuple):
        for item in facts:
            out += _worded_values(item)
    return out


@pytest.mark.parametrize(("cls", "example"), CASES, ids=[f"{c.name}: {e.name}" for c, e in CASES])
def test_detector_example_gives_expected_codes_under_the_contract(cls, example) -> None:  # type: ignore[no-untyped-def]
    claim, context = example.build()
    findings = cls().analyze(claim, context)
    assert {f.code for f in findings} == set(example.expected_codes)
    for f in findings:
        assert f.code in cls.codes
        assert f.reason.en and f.reason.zh and f.reason.en != f.reason.zh
        assert 0.0 <= f.confidence <= 1.0 and np.isfinite(f.strength)
        json.dumps(_plain(f.facts))
        # Every fact's name reads in Chinese on a reviewer's page (the catalogs' context "fact").
        named = fact_rows(f.facts, label=lambda name: _CHINESE.pgettext("fact", name))
        assert [r.label for r in named if not _chinese(r.label)] == [], f.code
        # And the words the detector writes as values (a verdict, how it matched, a note).
        assert [v for v in _worded_values(f.facts) if not _chinese(_word(v))] == [], f.code
        # And every picture's name, on the page's picture layers and in the report.
        assert [n for n in f.pictures if not _chinese(_CHINESE.gettext(n))] == [], f.code
        if f.region is not None:
            assert f.region.array.shape[:2] == claim.analysis.shape[:2]


def test_every_finding_code_has_a_title_in_chinese_and_in_english() -> None:
    # Shown beside the code on the pages and in the report: a zh-CN merchant read only English
    # codes (consistency.damage_confirmed read as "damage confirmed" on an intact item).
    from refundlens.rendering.i18n import finding_title

    codes = {code for cls in all_detector_classes() for code in cls.codes}
    assert [c for c in sorted(codes) if not _chinese(finding_title(c, "zh_CN"))] == []
    assert [c for c in sorted(codes) if not finding_title(c, "en")] == []
    assert finding_title("made.up_code", "zh_CN") == ""


def test_building_every_detectors_examples_needs_no_database_or_service_code() -> None:
    """Detectors get what they need through Context protocols (history, feature store); the
    examples run with lists in memory, so neither SQLAlchemy nor the service is imported."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from refundlens.detectors import all_detector_classes\n"
        "for cls in all_detector_classes():\n"
        "    for example in cls.examples():\n"
        "        claim, context = example.build()\n"
        "        cls().analyze(claim, context)\n"
        "loaded = sorted(m for m in sys.modules if m == 'sqlalchemy' or m.startswith(\n"
        "    ('refundlens.store', 'refundlens.service', 'refundlens.cases', 'refundlens.workers')))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Codes whose example depends on the optional OCR extra (rapidocr): whether it is installed
# decides the answer. Tested in test_visible_marks.py. The list may only shrink.
WITHOUT_EXAMPLE = {
    "provenance.ocr_unavailable",
    "provenance.visible_ai_mark",
    "provenance.visible_generator_name",
}


def test_every_finding_code_has_an_example_with_a_known_answer() -> None:
    covered = {code for _, example in CASES for code in example.expected_codes}
    codes = {code for cls in all_detector_classes() for code in cls.codes}
    assert codes - covered == WITHOUT_EXAMPLE
