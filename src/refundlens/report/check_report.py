"""The report of a check run on one's own computer (``refundlens check --out``): one HTML file a
merchant can read, print or send with an appeal, made from the check's report.json and its
pictures, and optionally the same as PDF.

It is not the service's evidence report (report/evidence.py): a check has no claim, no
decisions and no audit trail, so it says so on its first line and lists only what a check can
honestly state: which version ran when, the sha256 of every file it read, what each check found
and with which numbers, what it did not run and why, and the pictures. Everything in it is
inline (``data:`` URIs), so the file travels alone and prints as the PDF renderer blocks every
request."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Settings
from .evidence import _data_uri, _photo_src, _with_report_csp, file_facts, weight_of

__all__ = ["CheckedFile", "IndexRow", "render_check_html", "render_check_index", "shareable"]


@dataclass(frozen=True)
class CheckedFile:
    """A file the check read: a claim photo or a reference (the merchant's listing photo)."""

    kind: str  # claim | reference
    path: str
    """As the check named it (report.json's ``path``); the report shows its file name only."""
    sha256: str
    data: bytes
    damage_box: tuple[float, float, float, float] | None = None

    @property
    def name(self) -> str:
        return Path(self.path).name


def _without_folders(value: Any, paths: dict[str, str]) -> Any:
    """``value`` (a finding's facts) with every file path the check was given shown as its
    file name: a report sent to a platform or the police need not show where on the merchant's
    computer the photos were."""
    if isinstance(value, str):
        return paths.get(value, value)
    if isinstance(value, dict):
        return {k: _without_folders(v, paths) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_folders(v, paths) for v in value]
    return value


def shareable(result: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """``result`` as report.json is sent: each file the check was given (``paths``) named by its
    file name, and each picture by its name in the report's folder. The report said "file
    names, never the folders of your computer" and report.json, sent with it, held
    ``/home/<user>/...`` (a merchant's walkthrough)."""
    shared: dict[str, Any] = _without_folders(result, {p: Path(p).name for p in paths})
    for image in shared.get("images", []):
        for finding in image.get("findings", []):
            if finding.get("region"):
                finding["region"] = Path(str(finding["region"])).name
            if finding.get("pictures"):
                finding["pictures"] = {k: Path(str(v)).name for k, v in finding["pictures"].items()}
    return shared


# The pictures a finding may bring, in the order a reader wants them (docs/findings.md).
_PICTURE_ORDER = ("overlay", "mask", "aligned_reference")


def _picture(out: Path, written: str, name: str) -> dict[str, Any] | None:
    """A picture the check wrote into ``out``, inline; None where it is not there (a file
    deleted since, or a name outside ``out``: only the folder's own files are read)."""
    path = out / Path(written).name
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return {
        "name": name,
        "src": _data_uri(data, "image/png"),
        "sha256": hashlib.sha256(data).hexdigest(),
        "file": path.name,
    }


def _images(
    result: dict[str, Any], out: Path, stems: Sequence[str], files: Sequence[CheckedFile]
) -> list[dict[str, Any]]:
    by_sha = {f.sha256: f for f in files if f.kind == "claim"}
    paths = {f.path: f.name for f in files}
    images = []
    for image, stem in zip(result.get("images", []), stems, strict=True):
        pictures: dict[str, dict[str, Any]] = {}
        # The side-by-side (or the claim photo outlined) is written per image, not per finding:
        # report.json names no file of it.
        if overlay := _picture(out, f"{stem}.overlay.png", "overlay"):
            pictures["overlay"] = overlay
        for finding in image.get("findings", []):
            named = dict(finding.get("pictures") or {})
            if finding.get("region"):
                named.setdefault("mask", finding["region"])
            for name, written in named.items():
                if name not in pictures and (shown := _picture(out, str(written), name)):
                    pictures[name] = shown
        ordered = sorted(
            pictures.values(),
            key=lambda p: (
                _PICTURE_ORDER.index(p["name"]) if p["name"] in _PICTURE_ORDER else 9,
                p["name"],
            ),
        )
        source = by_sha.get(str(image.get("sha256")))
        photo = None
        if source is not None:
            src, copy = _photo_src(source.data, source.name, None)
            photo = {"src": src, "copy": copy, "sha256": source.sha256} if src else None
        images.append(
            {
                **image,
                "path": Path(str(image.get("path", ""))).name,
                "findings": sorted(
                    (
                        {**f, "facts": _without_folders(f.get("facts") or {}, paths)}
                        for f in image.get("findings", [])
                    ),
                    key=lambda f: -abs(weight_of(f)),
                ),
                "photo": photo,
                "wide": [p for p in ordered if p["name"] == "overlay"],
                "pictures": [p for p in ordered if p["name"] != "overlay"],
                "outlined": "mask" in pictures,
                "aligned": "aligned_reference" in pictures,
            }
        )
    return images


def _key(images: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The image page one is about: the riskiest with a finding, else the riskiest."""
    ranked = sorted(images, key=lambda i: -float(i.get("risk", 0)))
    return next((i for i in ranked if i.get("findings")), None) or next(iter(ranked), None)


def render_check_html(
    result: dict[str, Any],
    files: Sequence[CheckedFile],
    out: Path,
    stems: Sequence[str],
    lang: str,
    order: dict[str, str] | None = None,
    settings: Settings | None = None,
) -> str:
    """The check report of ``result`` (the dict written as ``out``/report.json) in ``lang``
    (``zh_CN`` or ``en``). ``files`` are the claim photos and references the check read;
    ``stems`` the file stem of each image's pictures in ``out``; ``order`` the order's times as
    given (``shipped_at``, ``delivered_at``, ``claimed_at``)."""
    from .. import __version__
    from ..rendering.i18n import environment

    images = _images(result, out, stems, files)
    tz = _zone(settings)
    key = _key(images)
    key_finding = (
        max(key["findings"], key=lambda f: abs(weight_of(f))) if key and key["findings"] else None
    )
    summary = next(iter(key["wide"]), None) if key else None
    report_json = out / "report.json"
    try:
        json_sha256 = hashlib.sha256(report_json.read_bytes()).hexdigest()
    except OSError:
        json_sha256 = ""
    anchors = settings.c2pa_trust_anchors_path if settings is not None else ""
    return _with_report_csp(
        environment(lang)
        .get_template("check_report.html")
        .render(
            result=result,
            made_by=result.get("made_by") or {"version": __version__},
            images=images,
            key=key,
            key_finding=key_finding,
            summary_picture=summary,
            files=files,
            facts={f.sha256: file_facts(f.data, f.name, anchors) for f in files},
            order={k: v for k, v in (order or {}).items() if v},
            json_sha256=json_sha256,
            reason_lang="zh" if lang.startswith("zh") else "en",
            tz=tz,
        )
    )


def _zone(settings: Settings | None) -> Any:
    """The time zone of the jurisdiction's rules (``jurisdiction``; Asia/Shanghai for cn), as
    the evidence report states its times: a check time in UTC alone read eight hours off to a
    receiver in China (a merchant's walkthrough)."""
    from ..rendering.readable import zone
    from .evidence import jurisdiction_rules

    rules = jurisdiction_rules(settings.jurisdiction if settings is not None else "cn")
    return zone(rules.get("time_zone"))


@dataclass(frozen=True)
class IndexRow:
    """One claim of a folder of checks: its id, and its suggestion or why it was not checked."""

    id: str
    folder: str | None = None
    """Its folder under the index's (where its report.html is); None: none was written."""
    action: str = ""
    risk: float = 0.0
    error: dict[str, str] | None = None
    error_zh: str = ""
    """The refusal's sentence in Chinese, where it has one (web/refusals.py)."""


def render_check_index(
    rows: Sequence[IndexRow], lang: str, settings: Settings | None = None
) -> str:
    """``index.html`` of a folder of checks: one line per claim, linked to its report. A new
    user of ``make demo`` found four folders of files and no page to start from."""
    import datetime as dt

    from .. import __version__
    from ..rendering.i18n import environment

    return _with_report_csp(
        environment(lang)
        .get_template("check_index.html")
        .render(
            rows=rows,
            version=__version__,
            made_at=dt.datetime.now(dt.UTC),
            tz=_zone(settings),
        )
    )
