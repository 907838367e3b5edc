"""A claim's evidence report and its files, for API keys: what the web pages serve to a signed-in
person, under the same rules (``service/claim_files.py``).

A platform's risk team keeps the report with its own case file and hands it to a merchant, an
appeal or the police; it reads the analysis' pictures (heatmaps, outlines, side-by-side) that an
assessment names by sha256. Before these routes only the web pages (a session) and the CLI
served them: an integrator with an API key had none (a walkthrough).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response

from ...errors import RefundlensError
from ...rendering.i18n import LANGUAGES, pick_language
from ...report.evidence import gather
from ...report.pictures import file_extension, image_mime
from ...runtime import Runtime
from .. import claim_files
from ..deps import ClaimId, RuntimeDep, Who, visible_claim

__all__ = ["router"]

router = APIRouter()

_SHA256 = re.compile(r"[0-9a-f]{64}")

_REPORT_ANSWERS: dict[int | str, dict[str, object]] = {
    200: {
        "description": "The report: HTML (self-contained, its pictures inline), PDF, or the "
        "JSON its content sha256 covers.",
        "content": {"text/html": {}, "application/pdf": {}, "application/json": {}},
    },
    403: {"description": "`report.not_for_buyers`: a buyer's key."},
    404: {"description": "`claim.not_found`: no claim of that id the key may see."},
    503: {"description": "`service.busy` (every heavy-work slot taken) or `report.no_browser`."},
}


@contextlib.contextmanager
def _heavy_work(runtime: Runtime, holder: str) -> Iterator[None]:
    """One of the process's ``web_heavy_work_slots``, as a page's decode or PDF takes one (one
    a credential); none free is 503 ``service.busy`` with ``Retry-After`` at once."""
    with runtime.heavy_slot(holder) as taken:
        if not taken:
            raise RefundlensError(
                "service.busy",
                "Every report slot of this process is busy, or this key holds one already; "
                "ask again shortly.",
            )
        yield


@router.get(
    "/v1/claims/{claim_id}/report.{fmt}",
    response_class=Response,
    responses=_REPORT_ANSWERS,
)
def claim_report(
    claim_id: ClaimId,
    fmt: Annotated[Literal["html", "pdf", "json"], Path()],
    p: Who,
    runtime: RuntimeDep,
    lang: Annotated[str | None, Query(max_length=5, description="zh_CN or en")] = None,
    accept_language: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """The claim's evidence report, as the web page's download gives it: to the platform and
    reviewers whole, to a shop as the shop reads it (the buyer's claims at other shops without
    their numbers), never to the buyer (it carries the analysis' findings). ``json`` is the case
    data whose sha256 the report prints, to check a printed report against."""
    with runtime.db.session() as s:  # visibility only: the report opens its own sessions
        visible_claim(s, claim_id, p, lock=False)
    made = claim_files.report(
        runtime,
        p,
        claim_id,
        fmt,
        lambda: _heavy_work(runtime, p.key_id),
        pick_language(lang if lang in LANGUAGES else None, None, accept_language),
    )
    return Response(made.data, media_type=made.media_type, headers=made.headers)


@router.get(
    "/v1/claims/{claim_id}/files/{sha256}",
    response_class=Response,
    responses={
        200: {"description": "The file's bytes, as stored.", "content": {"*/*": {}}},
        404: {
            "description": "`claim.not_found`, or `file.not_found`: not a file of the claim "
            "this key may read."
        },
    },
)
def claim_file(
    claim_id: ClaimId,
    sha256: Annotated[str, Path(max_length=64)],
    p: Who,
    runtime: RuntimeDep,
) -> Response:
    """One file of the claim, by the sha256 the claim or its assessment names: a photo as sent,
    a live capture, an evidence file, and for staff the shop's reference photos and the
    analysis' pictures (``assessment.images[].pictures``). A buyer reads its photos and its own
    evidence. Always a download (``Content-Disposition: attachment``): the bytes are a sender's."""
    with runtime.db.session() as s:
        visible_claim(s, claim_id, p, lock=False)
        case = gather(s, runtime.blobs, claim_id, inline=False, with_file_facts=False)
    roles = claim_files.file_roles(case, p)
    if not _SHA256.fullmatch(sha256) or sha256 not in roles.all():
        raise RefundlensError("file.not_found", "No file of this claim with that sha256.")
    data = runtime.blobs.get(sha256)
    return Response(
        data,
        media_type=image_mime(data),
        headers={
            "Cache-Control": "private, no-store",
            # A name of ours: the sender's file name goes in no header.
            "Content-Disposition": (
                f'attachment; filename="{claim_id}-{sha256[:12]}.{file_extension(data)}"'
            ),
        },
    )
