"""Docs are specs: every finding code, setting, error code and command is documented."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from refundlens.config import Settings
from refundlens.detectors import all_detector_classes

ROOT = Path(__file__).resolve().parents[1]


def test_every_finding_code_is_in_the_finding_table() -> None:
    table = (ROOT / "docs" / "findings.md").read_text()
    for cls in all_detector_classes():
        for code in cls.codes:
            assert f"`{code}`" in table, code


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "settings.md").read_text()
    for field in dataclasses.fields(Settings):
        assert f"`{field.name}`" in doc, field.name


def test_every_error_code_raised_in_the_source_is_documented() -> None:
    doc = (ROOT / "docs" / "errors.md").read_text()
    codes = set()
    for path in (ROOT / "src" / "refundlens").rglob("*.py"):
        codes |= set(
            re.findall(r'"((?:media|batch|policy|settings|usage)\.[a-z_]+)"', path.read_text())
        )
        text = path.read_text()
        codes |= set(re.findall(r'Error\(\s*"([a-z_]+\.[a-z_]+)"', text))
        codes |= {f"{what}.not_found" for what in re.findall(r'NotFound\("([a-z_]+)"', text)}
    assert codes
    for code in codes:
        assert f"`{code}`" in doc, code


def test_readme_starts_with_the_two_quick_start_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("## Usage")]
    assert "make demo" in head and "make test" in head


def test_the_checked_in_openapi_document_matches_the_api(tmp_path: Path) -> None:
    """docs/openapi.json is regenerated with `make openapi` whenever the API changes."""
    import json

    from refundlens.service import create_app

    spec = create_app(Settings(data_dir=str(tmp_path))).openapi()
    checked_in = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert checked_in == json.loads(json.dumps(spec)), (
        "run `make openapi` and commit docs/openapi.json"
    )
    # How a request authenticates is a security scheme generated clients read, not an optional
    # header named on every route (an integrator's walkthrough).
    assert spec["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    listed = spec["paths"]["/v1/claims"]["get"]
    assert listed["security"] == [{"ApiKey": []}]
    assert "authorization" not in {p["name"].lower() for p in listed["parameters"]}


def test_every_doctest_in_the_package_runs_and_passes() -> None:
    """A usage example in a docstring is a test: every module holding one is run here."""
    import doctest
    import importlib

    ran = 0
    for path in sorted((ROOT / "src" / "refundlens").rglob("*.py")):
        if ">>> " not in path.read_text():
            continue
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        module = importlib.import_module(".".join(p for p in parts if p != "__init__"))
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, f"{path}: {result.failed} doctest(s) failed"
        ran += result.attempted
    assert ran > 0
