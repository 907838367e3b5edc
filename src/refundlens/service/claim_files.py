"""A claim's files and its evidence report, as the web pages and the API serve them alike.

The web pages (``web/claim.py``) and the API (``routes/reports.py``) answer the same question
with the same rules: who may read which of a claim's files, and what its evidence report is in
each format. Each front end turns a refusal into its own answer (a page, or the API's error).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import select

from ..errors import RefundlensError
from ..report.evidence import (
    REPORT_CSP,
    CaseFile,
    add_pictures,
    content_json,
    gather,
    render_html,
    render_pdf,
    warm_file_facts,
)
from ..runtime import Runtime
from ..store.sql.models import ClaimPhoto
from .auth import Principal

__all__ = [
    "REPORT_FORMATS",
    "REPORT_STATUS",
    "FileRoles",
    "Report",
    "file_roles",
    "report",
    "shop_of",
    "warm_file_facts_of",
]

log = logging.getLogger(__name__)

REPORT_FORMATS = ("html", "pdf", "json")

REPORT_STATUS = {
    "report.not_for_buyers": 403,
    "report.no_browser": 503,
    "report.no_chinese_font": 503,
}
"""The HTTP status of a report's refusals, on the API and the web page alike."""


def shop_of(user: Principal) -> str | None:
    """The shop a merchant reads a claim as: the buyer's claims at other shops are not its own
    (``report.evidence.gather``)."""
    return user.tenant_id if user.role == "merchant" else None


@dataclass(frozen=True)
class FileRoles:
    """The claim's files ``user`` may read, by what they are (sha256 sets)."""

    photos: frozenset[str]
    """The claim's photos (filed and live)."""
    references: frozenset[str]
    """The shop's photos of the item (empty for a buyer)."""
    pictures: frozenset[str]
    """The analysis' pictures: heatmaps, outlines, side-by-side (empty for a buyer)."""
    evidence: frozenset[str]
    """Evidence files: every one for staff, a buyer's own for a buyer."""
    names: dict[str, str]
    """The name each photo and reference was sent under."""

    def all(self) -> frozenset[str]:
        return self.photos | self.references | self.pictures | self.evidence


def file_roles(case: CaseFile, user: Principal) -> FileRoles:
    """What of ``case`` (gathered as ``user`` may see the claim) ``user`` may read: a buyer its
    photos and its own evidence files, never the analysis' pictures or the shop's photos."""
    staff = user.role != "buyer"
    return FileRoles(
        photos=frozenset(p["sha256"] for p in case.photos),
        references=frozenset(r.sha256 for r in case.references) if staff else frozenset(),
        pictures=frozenset(p["sha256"] for p in case.pictures) if staff else frozenset(),
        evidence=frozenset(
            e.sha256 for e in case.evidence if e.sha256 and (staff or e.submitted_by == "buyer")
        ),
        names={p["sha256"]: p["name"] for p in case.photos}
        | ({r.sha256: r.name for r in case.references} if staff else {}),
    )


@dataclass(frozen=True)
class Report:
    data: bytes
    media_type: str
    headers: dict[str, str]


def report(
    runtime: Runtime,
    user: Principal,
    claim_id: str,
    fmt: str,
    heavy: Callable[[], AbstractContextManager[object]],
    lang: str,
) -> Report:
    """The claim's evidence report in ``fmt`` (``html``, ``pdf``, or ``json``: the case data
    its content sha256 covers), as ``user`` may read it (a shop: its own view). ``heavy`` holds
    one of the process's heavy-work slots (or refuses, busy) while the HTML or PDF report is
    made: its photos' file facts and a HEIC photo's JPEG copy decode them, Chromium prints it. Refused to a buyer (``report.not_for_buyers``: the report
    carries the analysis' numbers, cases/buyer.py). ``lang`` is the reader's language, and
    part of the file's name: a merchant who saves the Chinese and the English report for an
    appeal keeps both (a walkthrough found the second overwrite the first)."""
    if user.role == "buyer":
        raise RefundlensError(
            "report.not_for_buyers",
            "The evidence report carries the analysis' findings: it is for the platform, the "
            "reviewers and the shop, not the buyer.",
        )
    if fmt not in REPORT_FORMATS:  # the routes answer another format themselves (404, 422)
        raise ValueError(f"a report's format is one of {', '.join(REPORT_FORMATS)}, not {fmt!r}")
    shop = shop_of(user)
    with runtime.db.session() as session:  # rows only: the photos are decoded after it closed
        case = gather(
            session,
            runtime.blobs,
            claim_id,
            inline=False,
            shop=shop,
            settings=runtime.settings,
            with_file_facts=False,
        )
    if fmt == "json":
        # The case data a report's content sha256 covers, byte for byte: kept beside the PDF,
        # it lets anyone check the printed value without access to the service. It holds the
        # pictures' hashes, not their bytes, and no file facts: nothing is decoded.
        return Report(
            content_json(case, runtime.settings.jurisdiction),
            "application/json",
            {"Content-Disposition": f'attachment; filename="refundlens-{claim_id}-content.json"'},
        )
    # Every HTML or PDF report is made in one of the process's heavy-work slots (none free:
    # busy at once). A photo whose file facts are not kept yet is decoded to read them, a HEIC
    # photo into its JPEG copy, and a PDF starts Chromium; and even a report whose photos were
    # read before holds each photo several times over (read, base64 in the page, the page's
    # copies): a security review saw 8 such reports at once take a process from 869 MB to
    # 1.8 GB on a claim of 67 MB of photos, with both slots held.
    with heavy():
        html = render_html(
            add_pictures(case, runtime.blobs, runtime.settings),
            lang,
            runtime.settings.jurisdiction,
        )
    if fmt == "html":
        return Report(
            html.encode("utf-8"),
            "text/html; charset=utf-8",
            {
                "Content-Disposition": f'attachment; filename="refundlens-{claim_id}-{lang}.html"',
                # Opened in a browser, the report may show its own inline pictures and style,
                # and nothing else: no script, no fetch, no frame.
                "Content-Security-Policy": REPORT_CSP,
            },
        )
    with heavy():
        try:
            pdf = render_pdf(html, runtime.settings.chromium_path)
        except RefundlensError as exc:  # report.no_browser: this server has no Chromium
            log.warning("PDF report of claim %s not rendered: %s", claim_id, exc)
            raise
    return Report(
        pdf,
        "application/pdf",
        {"Content-Disposition": f'attachment; filename="refundlens-{claim_id}-{lang}.pdf"'},
    )


def warm_file_facts_of(runtime: Runtime, claim_id: str) -> None:
    """Read the claim photos' file facts (each decodes its photo) before a page's or a report's
    transaction, not inside it: on SQLite every transaction holds the write lock, and a page that
    decoded three 64 MP photos in one kept every shop's requests waiting. Kept per photo
    afterwards."""
    with runtime.db.session() as session:
        photos = [
            (sha, name)
            for sha, name in session.execute(
                select(ClaimPhoto.sha256, ClaimPhoto.name).where(ClaimPhoto.claim_id == claim_id)
            )
        ]
    warm_file_facts(runtime.blobs, photos, runtime.settings.c2pa_trust_anchors_path)
