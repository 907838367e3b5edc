"""The evidence report: one self-contained document about one claim, for an appeal, a court or
the police. HTML with every picture inlined; PDF rendered from it by headless Chromium.

It holds the case facts, the photos with their sha256, overlays and heatmaps, every finding with
its numbers and sentences, the generating service and content ID where an AIGC label or C2PA
manifest names them, the audit trail with its chain hashes and how to verify them, and the rules
that may apply, in plain words, for the configured jurisdiction (information, never an accusation).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import hashlib
import re
import shutil
import subprocess
import threading
from importlib import resources
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import __version__
from ..config import Settings
from ..errors import RefundlensError
from ..storable import storable_text
from ..store.blobs import BlobStore
from ..store.sql.models import (
    ApiKey,
    AuditEntry,
    Claim,
    Decision,
    Evidence,
    Order,
    ReferencePhoto,
    Sku,
)
from ..store.sql.queries import latest_assessment
from .json import report_for_shop
from .pictures import image_mime, viewable_copy

__all__ = [
    "CONTENT_VERSION",
    "CONTENT_VERSIONS",
    "REPORT_CSP",
    "AuditLine",
    "CaseFile",
    "add_pictures",
    "canonical_content",
    "content_json",
    "content_sha256",
    "file_facts",
    "file_facts_kept",
    "gather",
    "jurisdiction_rules",
    "render_html",
    "render_pdf",
    "warm_file_facts",
    "weight_of",
]


def weight_of(finding: dict[str, Any]) -> float:
    """What a finding (as stored) added to its image's risk: its ``contribution`` as fused
    (calibrated weight times strength, since assessment JSON 1.3), else its strength."""
    return float(finding.get("contribution", finding["strength"]))


@dataclasses.dataclass(frozen=True)
class AuditLine:
    """An audit entry as its reader may see it. ``withheld`` names the details a shop is not
    shown (they name another shop's claim): the hash still covers them, so such an entry
    cannot be recomputed from what is printed, only checked by the platform, which holds it
    whole (``refundlens audit verify``)."""

    seq: int
    at: dt.datetime
    actor: str
    action: str
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str
    withheld: tuple[str, ...] = ()
    # The analysis an entry records (``claim.analysed``): its hash covers it, so a reader who
    # recomputes the chain from the report needs it (a new user's walkthrough could not).
    assessment_id: str | None = None


# Details of an audit entry that name another claim (a refused capture's replay check says
# whose photo it repeated, and whether the same buyer sent it): the platform's, where that
# claim is at another shop.
_OTHER_CLAIM_DETAILS = ("other_claim", "same_buyer")


def audit_lines(session: Session, rows: list[AuditEntry], shop: str | None) -> list[AuditLine]:
    """``rows`` as ``shop`` may read them (None: the platform, everything)."""
    named = {
        r.details["other_claim"]
        for r in rows
        if r.details and isinstance(r.details.get("other_claim"), str)
    }
    shops = (
        dict(session.execute(select(Claim.id, Claim.merchant_id).where(Claim.id.in_(named))).all())
        if shop is not None and named
        else {}
    )
    lines = []
    for r in rows:
        details = dict(r.details or {})
        withheld: tuple[str, ...] = ()
        if (
            shop is not None
            and "other_claim" in details
            and shops.get(details["other_claim"]) != shop
        ):
            withheld = tuple(k for k in _OTHER_CLAIM_DETAILS if k in details)
            details = {k: v for k, v in details.items() if k not in withheld}
            details["at_another_shop"] = True
        lines.append(
            AuditLine(
                r.seq,
                r.at,
                r.actor,
                r.action,
                details,
                r.prev_hash,
                r.entry_hash,
                withheld,
                r.assessment_id,
            )
        )
    return lines


@dataclasses.dataclass
class CaseFile:
    claim: Claim
    order: Order
    sku: Sku
    references: list[ReferencePhoto]
    report: dict[str, Any] | None
    evidence: list[Evidence]
    decisions: list[Decision]
    audit: list[AuditLine]
    photos: list[dict[str, Any]]
    pictures: list[dict[str, Any]]
    provenance_sources: list[dict[str, Any]]
    ledger: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The buyer's other claims and confirmed forgeries (``reuse.history.buyer_summary``)."""
    assessment_id: str | None = None
    """The id of the analysis ``report`` is (None before the first): a decision taken on the
    page names it, and is refused where a newer one came in (``claim.changed``)."""
    references_cutoff: dt.datetime | None = None
    """References added to the SKU after this time (the order's first claim's filing) are not
    compared by the analysis (they could be made from a claim's photo): the pages and the report
    show them apart, with when they were added (:attr:`later_references`)."""
    actor_roles: dict[str, str] = dataclasses.field(default_factory=dict)
    """The role of each API key that acted on the claim (``rlk_...`` -> reviewer), printed
    beside the key id so that a reader outside the platform knows who acted; not part of the
    report's content (the key ids are, and the platform holds their roles)."""

    @property
    def filed_references(self) -> list[ReferencePhoto]:
        """The SKU's photos the analysis compares the claim with: those that existed when the
        order's first claim was filed."""
        return [r for r in self.references if not self._later(r)]

    @property
    def later_references(self) -> list[ReferencePhoto]:
        """The SKU's photos added after that: shown as such, never as the listing photo (a shop
        that added a claim's photo, damage painted out, had it shown as "the SKU's listing
        photo" beside the claim: a security review)."""
        return [r for r in self.references if self._later(r)]

    def _later(self, reference: ReferencePhoto) -> bool:
        cutoff = self.references_cutoff
        if cutoff is None:
            return False
        added, limit = reference.created_at, cutoff
        if (added.tzinfo is None) != (limit.tzinfo is None):  # SQLite gives naive UTC times
            added, limit = added.replace(tzinfo=None), limit.replace(tzinfo=None)
        return added > limit

    @property
    def decision(self) -> Decision | None:
        """A person's latest decision on the claim; None while nobody has decided."""
        return self.decisions[-1] if self.decisions else None


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _photo_src(data: bytes, name: str, settings: Settings | None) -> tuple[str, bool]:
    """The claim photo as an inline picture, and whether it is a copy: a file no browser shows
    (HEIC) is drawn as its analysis copy in JPEG; one that no longer decodes is left out."""
    from ..errors import RefundlensError

    try:
        shown, mime = viewable_copy(data, name, settings)
    except RefundlensError:
        return "", False
    return _data_uri(shown, mime), shown is not data


_XMP_SHOWN = {
    "CreatorTool": "XMP CreatorTool",
    "DigitalSourceType": "IPTC DigitalSourceType",
    "softwareAgent": "XMP history: software",
    "DateCreated": "XMP DateCreated",
    "CreateDate": "XMP CreateDate",
}


FILE_FACTS_CACHED = 512
"""Photos whose file facts a process keeps (a few hundred bytes each): reading them decodes the
photo, and every view of a claim page showed them again."""

_file_facts_cache: collections.OrderedDict[str, list[tuple[str, str]]] = collections.OrderedDict()
_file_facts_lock = threading.Lock()


def file_facts_kept(sha256: str, trust_anchors_path: str = "") -> bool:
    """Whether :func:`file_facts` keeps the facts of the photo ``sha256``: reading them again
    decodes nothing."""
    with _file_facts_lock:
        return f"{sha256}:{trust_anchors_path}" in _file_facts_cache


def file_facts(data: bytes, name: str, trust_anchors_path: str = "") -> list[tuple[str, str]]:
    """:func:`read_file_facts`, kept per photo (its sha256): a reload of the claim page, its
    pictures and its report read them once (each read decodes the photo; a buyer's reloads of a
    page with three 64 MP PNGs took 4.6 s each, on SQLite holding the write lock)."""
    key = f"{hashlib.sha256(data).hexdigest()}:{trust_anchors_path}"
    with _file_facts_lock:
        if key in _file_facts_cache:
            _file_facts_cache.move_to_end(key)
            return list(_file_facts_cache[key])
    # What a file says about itself is the sender's to write: never text no page can encode.
    rows: list[tuple[str, str]] = [
        (storable_text(k), storable_text(v))
        for k, v in read_file_facts(data, name, trust_anchors_path)
    ]
    with _file_facts_lock:
        _file_facts_cache[key] = rows
        while len(_file_facts_cache) > FILE_FACTS_CACHED:
            _file_facts_cache.popitem(last=False)
    return list(rows)


def warm_file_facts(
    blobs: BlobStore, photos: list[tuple[str, str]], trust_anchors_path: str = ""
) -> None:
    """Read the file facts of ``photos`` ((sha256, name)) ahead, outside any transaction, so
    that :func:`gather` inside one finds them kept."""
    for sha256, name in photos:
        if blobs.exists(sha256):
            file_facts(blobs.get(sha256), name, trust_anchors_path)


# How the C2PA reader's state reads in the table. "valid" says only that the manifest matches
# the file: anyone can sign one, and a self-signed "Apple" camera manifest read "valid" beside
# the platform's trusted ones (an attacker's probe).
_C2PA_STATES = {
    "trusted": "trusted: intact, and its signer is on the platform's trust list",
    "valid": "intact, but its signer is not on the platform's trust list (anyone can sign one)",
    "invalid": "invalid: the manifest does not match the file, or its signature fails",
}


def _anchors(settings: Settings | None) -> str:
    return settings.c2pa_trust_anchors_path if settings is not None else ""


FACT_LIMIT = 300
"""Characters of one value of what a file says about itself shown (the EXIF fields are cut at
read, to 200)."""


def read_file_facts(data: bytes, name: str, trust_anchors_path: str = "") -> list[tuple[str, str]]:
    """What a photo's file says about itself, as (field, value) rows a person reads: format and
    size, EXIF camera and capture time, the XMP fields that name tools and sources, every GB 45438
    AIGC label, and the C2PA manifest's state, generator, signer and actions. Unreadable
    metadata is a row saying so, never an error: this table informs a reviewer."""
    from ..detectors.provenance import aigc_labels, xmp_properties
    from ..errors import RefundlensError
    from ..media import media_from_bytes
    from ..media.c2pa_reader import read_c2pa

    try:
        media = media_from_bytes(data, name)
    except RefundlensError as exc:
        return [("file", f"{exc.code}: {exc}")]
    rows: list[tuple[str, str]] = [
        ("format", f"{media.format}, {media.width}x{media.height}"),
        # Its own row, its unit in the label the page translates ("131,631 bytes" in a Chinese
        # report: a merchant's walkthrough).
        ("size (bytes)", f"{len(data):,}"),
    ]
    exif = media.exif
    for label, value in (
        ("EXIF Make", exif.make),
        ("EXIF Model", exif.model),
        ("EXIF Software", exif.software),
        ("EXIF DateTimeOriginal", exif.datetime_original),
        (
            "EXIF OffsetTimeOriginal"
            if exif.offset_source in (None, "OffsetTimeOriginal")
            else f"UTC offset ({exif.offset_source})",
            exif.offset_time_original,
        ),
    ):
        if value:
            rows.append((label, str(value)))
    if not exif.present:
        rows.append(("EXIF", "none"))
    xmp = xmp_properties(media)
    for key, values in sorted(xmp.items()):
        local = key.rsplit("}", 1)[-1]
        if local in _XMP_SHOWN:
            rows.append((_XMP_SHOWN[local], "; ".join(v for v in values if v)[:200]))
    for found in aigc_labels(media, xmp):
        facts = found.facts()
        summary = ", ".join(
            f"{k}={v}"
            for k, v in facts.items()
            if v and k in ("label", "label_meaning", "content_producer", "produce_id", "problem")
        )
        rows.append((f"AIGC label ({found.carrier})", summary))
    c2pa = read_c2pa(data, media.format, trust_anchors_path)
    if c2pa is not None:
        state = _C2PA_STATES.get(c2pa.state, c2pa.state)
        if c2pa.status_codes:
            state += f" ({', '.join(c2pa.status_codes[:4])})"
        rows.append(("C2PA manifest", state))
        if c2pa.claim_generator:
            rows.append(("C2PA claim generator", c2pa.claim_generator))
        if c2pa.signer_name or c2pa.signer_issuer:
            rows.append(("C2PA signer", f"{c2pa.signer_name or '?'} ({c2pa.signer_issuer or '?'})"))
        for action in c2pa.actions[:6]:
            source = (action.digital_source_type or "").rsplit("/", 1)[-1]
            rows.append(
                (
                    "C2PA action",
                    " · ".join(x for x in (action.action, source, action.software_agent) if x),
                )
            )
    # Every value is the file's own words, of any length (a manifest's generator, a signer's
    # name): cut, as the claim page and the report print each whole (a security review).
    return [
        (label, value if len(value) <= FACT_LIMIT else value[: FACT_LIMIT - 1] + "…")
        for label, value in rows
    ]


def gather(
    session: Session,
    blobs: BlobStore,
    claim_id: str,
    inline: bool = True,
    shop: str | None = None,
    settings: Settings | None = None,
    with_file_facts: bool = True,
) -> CaseFile:
    """Everything about a claim that its report shows. With ``shop`` (a merchant reads it), the
    buyer's record counts that shop's claims only, and findings about the buyer's claims at
    other shops keep no numbers (``report_for_shop``): those are the platform's. ``settings``:
    the limits and analysis size under which a photo no browser shows (HEIC) is decoded into
    its JPEG copy, the server's own (defaults otherwise). ``with_file_facts=False`` leaves the photos'
    file facts out (they decode each photo): a page that does not show them."""
    claim = session.get(Claim, claim_id)
    if claim is None:
        from ..errors import NotFound

        raise NotFound("claim", claim_id)
    if shop is not None and shop != claim.merchant_id:
        # A shop reads its own claims only: a report "as" another shop would show this buyer's
        # record at a shop that never saw the claim, and a content sha256 no one could download.
        raise RefundlensError(
            "report.not_the_shop",
            f"Claim {claim_id} is shop {claim.merchant_id}'s, not {shop}'s: --shop takes the "
            "claim's own shop.",
        )
    order = session.get(Order, claim.order_id)
    assert order is not None
    sku = session.get(Sku, order.sku_id)
    assert sku is not None
    latest = latest_assessment(session, claim.id)
    report = latest.report if latest is not None else None
    if report is not None and shop is not None:
        report = report_for_shop(report)
    photos = [
        {
            "name": photo.name,
            "sha256": photo.sha256,
            "live": photo.live_capture,
            "damage_box": photo.damage_box,
            "src": "",
            "copy": False,
            "facts": [],
        }
        for photo in claim.photos
    ]
    pictures: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for index, image in enumerate((report or {}).get("images", [])):
        for name, sha in (image.get("pictures") or {}).items():
            if blobs.exists(sha):
                pictures.append(
                    {
                        "image": image["path"],
                        # Names are the buyer's and need not be unique (the capture page names
                        # every live photo live-1.jpg): pictures go with their image by position.
                        "image_index": index,
                        "name": name,
                        "sha256": sha,
                        "src": "",
                    }
                )
        for finding in image.get("findings", []):
            facts = finding.get("facts", {})
            if finding["code"].startswith("provenance.") and any(
                facts.get(k)
                for k in ("content_producer", "produce_id", "claim_generator", "generator")
            ):
                sources.append(
                    {
                        "code": finding["code"],
                        "service": facts.get("content_producer")
                        or facts.get("claim_generator")
                        or facts.get("generator"),
                        "content_id": facts.get("produce_id") or facts.get("propagate_id"),
                        "credit_code": facts.get("producer_credit_code"),
                    }
                )
    audit = audit_lines(
        session,
        list(
            session.execute(
                select(AuditEntry).where(AuditEntry.claim_id == claim.id).order_by(AuditEntry.seq)
            ).scalars()
        ),
        shop,
    )
    case = CaseFile(
        claim=claim,
        order=order,
        sku=sku,
        references=list(sku.references),
        references_cutoff=session.execute(
            select(func.min(Claim.created_at)).where(Claim.order_id == order.id)
        ).scalar_one()
        or claim.created_at,
        report=report,
        assessment_id=latest.id if latest is not None else None,
        evidence=list(
            session.execute(select(Evidence).where(Evidence.claim_id == claim.id)).scalars()
        ),
        decisions=list(
            session.execute(
                select(Decision)
                .where(Decision.claim_id == claim.id)
                .order_by(Decision.created_at, Decision.id)
            ).scalars()
        ),
        audit=audit,
        photos=photos,
        pictures=pictures,
        provenance_sources=sources,
        ledger=_ledger(session, claim, order.currency, shop),
        actor_roles=actor_roles(session, [a.actor for a in audit]),
    )
    return add_pictures(case, blobs, settings, inline=inline, with_file_facts=with_file_facts)


def add_pictures(
    case: CaseFile,
    blobs: BlobStore,
    settings: Settings | None = None,
    *,
    inline: bool = True,
    with_file_facts: bool = True,
) -> CaseFile:
    """Fill in what :func:`gather` left out of ``case``: its photos and analysis pictures as
    inline pictures (a HEIC photo decoded into its JPEG copy) and the photos' file facts (each
    read decodes the photo). Call it outside any database session on a server: on SQLite an
    open session holds the write lock, and a report of nine large HEIC photos decoded in it made
    another client's request answer 503 after 5 s (a security review)."""
    for photo in case.photos:
        if not (inline or with_file_facts):
            break
        data = blobs.get(photo["sha256"])
        if inline:
            photo["src"], photo["copy"] = _photo_src(data, photo["name"], settings)
        if with_file_facts:
            photo["facts"] = file_facts(data, photo["name"], _anchors(settings))
    for picture in case.pictures if inline else []:
        data = blobs.get(picture["sha256"])
        picture["src"] = _data_uri(data, image_mime(data))
    return case


def actor_roles(session: Session, actors: list[str]) -> dict[str, str]:
    """The role of each of ``actors`` that is an API key (others, such as the system's own
    steps, have none)."""
    wanted = sorted({a for a in actors if a.startswith("rlk_")})
    if not wanted:
        return {}
    rows = session.execute(select(ApiKey.id, ApiKey.role).where(ApiKey.id.in_(wanted))).all()
    return {key: role for key, role in rows}


def _ledger(
    session: Session, claim: Claim, currency: str, shop: str | None = None
) -> dict[str, Any]:
    from ..reuse.history import buyer_summary

    summary = buyer_summary(session, claim.buyer_id, claim.id, shop, currency)
    if shop is not None:
        # Only a shop's report says so: the platform's report keeps the content (and content
        # sha256) it always had.
        summary["scope"] = "shop"
    # This claim counts too once a person has confirmed it as forged.
    own = session.execute(
        select(Decision)
        .where(Decision.claim_id == claim.id)
        .order_by(Decision.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    summary["this_claim_confirmed"] = (
        own is not None
        and own.outcome == "rejected"
        and own.forgery
        # settled: not approved by the analysis after it, nor reopened by an appeal
        and claim.state in ("decided", "final")
    )
    summary["cumulative_confirmed_value"] = round(
        summary["confirmed_forged_value"]
        + (claim.amount if summary["this_claim_confirmed"] else 0.0),
        2,
    )
    return summary


def jurisdiction_rules(code: str) -> dict[str, Any]:
    """The rules text for a jurisdiction (``report/jurisdictions.yaml``); empty when unknown."""
    table = yaml.safe_load(
        resources.files("refundlens")
        .joinpath("report/jurisdictions.yaml")
        .read_text(encoding="utf-8")
    )
    return dict(table.get(code) or {})


def _utc(moment: dt.datetime | None) -> str | None:
    """``moment`` as ISO 8601 UTC with microseconds, the audit log's form; naive means UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


CONTENT_VERSION = 3
"""The layout of :func:`canonical_content` reports are made with now; a change of layout
changes it. 3 (2026-12-07): ``references`` lists the SKU photos the analysis compared (those
that existed when the order's first claim was filed), ``references_added_later`` the others,
each with the time it was added. 2 (2026-12-06): each audit entry gives its ``assessment_id`` where it has one (the
entry hash covers it, and a reader could not recompute the analysis' entries without it).
1: the layout before. ``refundlens report --content-version 1`` writes a case's data in an
earlier layout, to check a report issued before the change."""
CONTENT_VERSIONS = (1, 2, 3)


def content_format(version: int = CONTENT_VERSION) -> str:
    return f"refundlens.report-content/{version}"


def canonical_content(
    case: CaseFile, jurisdiction: str = "cn", version: int = CONTENT_VERSION
) -> dict[str, Any]:
    """The case data a report is made from, as plain JSON values: what the report's
    ``content sha256`` covers (docs/web.md, "Evidence report").

    The claim, order and SKU as stored; the sha256 of every photo, reference photo, evidence
    file and analysis picture (the files themselves are covered through their hashes); the
    stored analysis (findings, facts, reasons); the parties' evidence and statements; every
    decision; every audit entry with its chain hash; the buyer's record; the jurisdiction.
    Not covered: the time the report was made, its language and layout, the rules' wording
    (``report/jurisdictions.yaml`` of the running version) and the file facts (read again
    from the photos, which the hashes cover). The same case gives the same hash in both
    languages and on every later run until something in it changes."""
    claim, order, sku = case.claim, case.order, case.sku
    return {
        "format": content_format(version),
        "claim": {
            "id": claim.id,
            "order_id": claim.order_id,
            "merchant_id": claim.merchant_id,
            "buyer_id": claim.buyer_id,
            "type": claim.claim_type,
            "reason": claim.reason,
            "amount": claim.amount,
            "state": claim.state,
            "risk": claim.risk,
            "action": claim.action,
            "routing_reason": claim.routing_reason,
            "created_at": _utc(claim.created_at),
        },
        "order": {
            "id": order.id,
            "external_id": order.external_id,
            "amount": order.amount,
            "currency": order.currency,
            "shipped_at": _utc(order.shipped_at),
            "delivered_at": _utc(order.delivered_at),
        },
        "sku": {"id": sku.id, "external_id": sku.external_id, "title": sku.title},
        "photos": [
            {
                "name": p["name"],
                "sha256": p["sha256"],
                "live": p["live"],
                # Only where the buyer drew one: a report made before boxes existed keeps its hash.
                **({"damage_box": p["damage_box"]} if p["damage_box"] else {}),
            }
            for p in case.photos
        ],
        **(
            {"references": [{"name": r.name, "sha256": r.sha256} for r in case.references]}
            if version < 3
            else {
                "references": [{"name": r.name, "sha256": r.sha256} for r in case.filed_references],
                "references_added_later": [
                    {"name": r.name, "sha256": r.sha256, "added_at": _utc(r.created_at)}
                    for r in case.later_references
                ],
            }
        ),
        "analysis": case.report,
        "pictures": [
            {"image": p["image"], "name": p["name"], "sha256": p["sha256"]} for p in case.pictures
        ],
        "evidence": [
            {
                "id": e.id,
                "kind": e.kind,
                "submitted_by": e.submitted_by,
                "name": e.name,
                "sha256": e.sha256,
                "statement": e.statement,
                "created_at": _utc(e.created_at),
            }
            for e in sorted(case.evidence, key=lambda e: (_utc(e.created_at) or "", e.id))
        ],
        "decisions": [
            {
                "id": d.id,
                "outcome": d.outcome,
                "amount": d.amount,
                "reason": d.reason,
                "decided_by": d.decided_by,
                "created_at": _utc(d.created_at),
                # Said only where a rejection found no forgery: every report made before
                # decisions said so keeps its content and its sha256.
                **({"forgery": False} if d.outcome == "rejected" and not d.forgery else {}),
                **({"buyer_note": d.buyer_note} if d.buyer_note else {}),
            }
            for d in case.decisions
        ],
        "audit": [
            {
                "seq": a.seq,
                "at": _utc(a.at),
                "actor": a.actor,
                "action": a.action,
                "details": a.details,
                "prev_hash": a.prev_hash,
                "entry_hash": a.entry_hash,
                # Said only where something was withheld, so that a report without such an
                # entry keeps its content and its sha256. (A shop's report made before shops
                # were told no other shop's claim, with such an entry or a reuse match at
                # another shop, no longer reproduces: docs/web.md.)
                **({"withheld": list(a.withheld)} if a.withheld else {}),
                **({"assessment_id": a.assessment_id} if a.assessment_id and version >= 2 else {}),
            }
            for a in case.audit
        ],
        "buyer_record": case.ledger,
        "jurisdiction": jurisdiction,
    }


def content_json(case: CaseFile, jurisdiction: str = "cn", version: int = CONTENT_VERSION) -> bytes:
    """:func:`canonical_content` as canonical JSON: sorted keys, no spaces, UTF-8."""
    import json

    return json.dumps(
        canonical_content(case, jurisdiction, version),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")


def content_sha256(case: CaseFile, jurisdiction: str = "cn") -> str:
    """The sha256 printed on every page of the report: of :func:`content_json`.

    A document cannot hold its own hash; this one names the data the document was made from.
    ``refundlens report CLAIM_ID --content case.json`` writes that JSON, and ``sha256sum
    case.json`` gives the same value while the case is unchanged."""
    import hashlib

    return hashlib.sha256(content_json(case, jurisdiction)).hexdigest()


def _photo_of(case: CaseFile, image: dict[str, Any]) -> dict[str, Any] | None:
    """The claim photo an analysed image is, by its bytes' hash: the buyer names files, and two
    may share a name (a filed photo named live-1.jpg beside the live capture's live-1.jpg)."""
    return next((p for p in case.photos if p["sha256"] == image.get("sha256")), None)


def _key_image(case: CaseFile) -> tuple[int, dict[str, Any]] | None:
    """(position, image) page one is about: the riskiest image with a finding, else the
    riskiest; the summary sentence and the summary picture both show it."""
    images = sorted(
        enumerate((case.report or {}).get("images", [])), key=lambda i: -float(i[1].get("risk", 0))
    )
    return next(((i, image) for i, image in images if image.get("findings")), None) or next(
        iter(images), None
    )


def _has_picture(case: CaseFile, index: int, name: str) -> bool:
    return any(p.get("image_index") == index and p["name"] == name for p in case.pictures)


def _outlined(case: CaseFile, index: int) -> bool:
    """Whether the image at ``index`` has a region outlined (its mask): only then do its
    overlay's panels show a change in red."""
    return _has_picture(case, index, "mask")


def _aligned(case: CaseFile, index: int) -> bool:
    """Whether the image's overlay has the merchant's photo aligned beside the claim (else it is
    the claim photo alone, with what the analysis outlined)."""
    return _has_picture(case, index, "aligned_reference")


def _summary_picture(case: CaseFile) -> dict[str, Any] | None:
    """The one picture that shows the case, of the image the summary sentence names: its
    overlay (the claim beside the merchant's photo, any change outlined), else its photo."""
    key = _key_image(case)
    if key is not None:
        index, image = key
        for picture in case.pictures:
            if picture.get("image_index") == index and picture["name"] == "overlay":
                return {
                    **picture,
                    "outlined": _outlined(case, index),
                    "aligned": _aligned(case, index),
                }
        photo = _photo_of(case, image)
        if photo is not None:
            return {**photo, "image": image["path"], "name": "claim"}
    if case.photos:
        return {**case.photos[0], "image": case.photos[0]["name"], "name": "claim"}
    return None


def _key_finding(case: CaseFile) -> tuple[str, dict[str, Any]] | None:
    """(photo, finding) that moved the key image's risk most, either way."""
    key = _key_image(case)
    if key is None or not key[1].get("findings"):
        return None
    image = key[1]
    strongest = max(image["findings"], key=lambda f: abs(weight_of(f)))
    return image["path"], strongest


def _images_for_report(case: CaseFile) -> list[dict[str, Any]]:
    """Each analysed image with its findings strongest first and its pictures beside it."""
    out = []
    for index, image in enumerate((case.report or {}).get("images", [])):
        pictures = [p for p in case.pictures if p.get("image_index") == index]
        out.append(
            {
                **image,
                "photo": _photo_of(case, image),
                "findings": sorted(image.get("findings", []), key=lambda f: -abs(weight_of(f))),
                "wide": [p for p in pictures if p["name"] == "overlay"],
                "outlined": _outlined(case, index),
                "aligned": _aligned(case, index),
                "pictures": [p for p in pictures if p["name"] != "overlay"],
            }
        )
    return out


def render_html(case: CaseFile, lang: str, jurisdiction: str = "cn") -> str:
    from ..rendering.i18n import environment
    from ..rendering.readable import zone

    template = environment(lang).get_template("report.html")
    rules = jurisdiction_rules(jurisdiction)
    threshold = float(rules.get("threshold_yuan") or 0)
    # The threshold is in yuan: a ledger in another currency is not compared with it (3,000 JPY
    # read as "at or above" 3,000 CNY: a security review). No exchange rate is guessed.
    threshold_currency = str(rules.get("threshold_currency") or "CNY")
    comparable = case.order.currency == threshold_currency
    value = float(case.ledger.get("cumulative_confirmed_value", 0.0))
    decision = case.decision
    refunded = None
    if decision is not None:
        refunded = {"approved": case.claim.amount, "partial": decision.amount, "rejected": 0.0}.get(
            decision.outcome
        )
    return _with_report_csp(
        template.render(
            case=case,
            rules=rules,
            lang_rules=rules.get("zh" if lang.startswith("zh") else "en", {}),
            threshold=threshold,
            above_threshold=bool(threshold) and comparable and value >= threshold,
            threshold_comparable=comparable,
            threshold_currency=threshold_currency,
            generated_at=dt.datetime.now(dt.UTC),
            tz=zone(rules.get("time_zone")),
            content_sha256=content_sha256(case, jurisdiction),
            decision=decision,
            refunded=refunded,
            summary_picture=_summary_picture(case),
            original_files=_original_files(case),
            key_finding=_key_finding(case),
            images=_images_for_report(case),
            reason_lang="zh" if lang.startswith("zh") else "en",
            version=__version__,
        )
    )


def _original_files(case: CaseFile) -> list[dict[str, Any]]:
    """Page 1's list of original files: each file once, by its sha256, with every part it plays
    (a reference photo the merchant also sent as evidence was listed twice, and with six files
    the list no longer fit page 1)."""
    rows: dict[str, dict[str, Any]] = {}

    def add(sha256: str, part: dict[str, Any]) -> None:
        rows.setdefault(sha256, {"sha256": sha256, "parts": []})["parts"].append(part)

    for photo in case.photos:
        add(
            photo["sha256"],
            {
                "kind": "claim",
                "name": photo["name"],
                "live": photo.get("live"),
                "damage_box": photo.get("damage_box"),
            },
        )
    for reference in case.filed_references:
        add(reference.sha256, {"kind": "reference", "name": reference.name})
    for reference in case.later_references:
        add(
            reference.sha256,
            {"kind": "reference_later", "name": reference.name, "added_at": reference.created_at},
        )
    for evidence in case.evidence:
        if evidence.sha256:
            add(
                evidence.sha256,
                {
                    "kind": "evidence",
                    "name": evidence.name,
                    "evidence_kind": evidence.kind,
                    "by": evidence.submitted_by,
                },
            )
    return list(rows.values())


REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""The evidence report is one self-contained file: inline pictures and style, nothing fetched,
no script. Set on the HTML download, and in the file's own head (a copy saved and opened from
disk has no headers), which the PDF renderer loads."""


# Chinese characters, and the punctuation and full-width forms Chinese text uses.
_CHINESE = re.compile("[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
_FONT_FOUND = False  # kept once found; an answer of none is asked again (fonts get installed)


def chinese_font_installed() -> bool:
    """Whether Chromium will find a font with Chinese glyphs: fontconfig's own answer where it
    is installed (Chromium asks it), else one of the fonts the pictures' captions look for."""
    global _FONT_FOUND
    if _FONT_FOUND:
        return True
    found = False
    fc_list = shutil.which("fc-list")
    if fc_list is not None:
        try:
            listed = subprocess.run(
                [fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=20
            )
            found = bool(listed.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            fc_list = None
    if fc_list is None:
        from .pictures import caption_font

        found = caption_font() is not None
    _FONT_FOUND = found
    return found


def render_pdf(html: str, chromium_path: str) -> bytes:
    """Render ``html`` to PDF (A4) in headless Chromium; fonts (CJK included) are embedded.

    The report holds text that buyers and merchants wrote, so Chromium renders it as an
    attacker's page: JavaScript off, every request it tries aborted (the report's pictures are
    inline ``data:`` URIs and need none), and a Content-Security-Policy that allows nothing
    else. A fetch of a loopback or intranet URL from the server (SSRF) finds no way out."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    from ..errors import RefundlensError

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(
                executable_path=chromium_path or None,
                args=[
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
        except PlaywrightError as exc:
            # Chromium is a system package (`make system-deps`), not a Python one: a machine
            # set up with `make demo` or a bare `pip install` has none.
            raise RefundlensError(
                "report.no_browser",
                f"The PDF report needs Chromium, which could not be started at "
                f"{chromium_path or 'playwright default'!r} (setting chromium_path; `make "
                f"system-deps` installs it). The HTML report needs no browser.",
                {"chromium_path": chromium_path, "reason": str(exc).splitlines()[0][:200]},
            ) from exc
        try:
            if _CHINESE.search(html) and not chinese_font_installed():
                # Chromium would draw each Chinese character as an empty box and say nothing:
                # a PDF for the police that no one can read (a new user's walkthrough). Asked
                # once Chromium has started, so that a machine with neither is told first of
                # the browser, which `make system-deps` installs together with the font.
                raise RefundlensError(
                    "report.no_chinese_font",
                    "The report holds Chinese text and this machine has no font with Chinese "
                    "glyphs: the PDF would show empty boxes. Install one (`make system-deps` "
                    "installs WenQuanYi Micro Hei; on Debian fonts-wqy-microhei or "
                    "fonts-noto-cjk), or send the HTML report, which the reader's browser draws "
                    "with its own fonts.",
                )
            context = browser.new_context(
                java_script_enabled=False, offline=True, service_workers="block"
            )
            context.route("**/*", lambda route: route.abort("blockedbyclient"))
            page = context.new_page()
            page.set_content(_with_report_csp(html), wait_until="load")
            header, footer = _page_marks(html)
            return page.pdf(
                format="A4",
                print_background=True,
                display_header_footer=True,
                header_template=header,
                footer_template=footer,
                margin={"top": "14mm", "bottom": "16mm", "left": "12mm", "right": "12mm"},
            )
        finally:
            browser.close()


_MARK_STYLE = (
    "font-family:'WenQuanYi Micro Hei','DejaVu Sans',sans-serif;font-size:7pt;color:#333;"
    "width:100%;margin:0 12mm;display:flex;justify-content:space-between;gap:4mm"
)


def _meta(html: str, name: str) -> str:
    """The unescaped ``content`` of ``<meta name="refundlens:NAME">`` in ``html``; "" if none."""
    import html as html_lib

    found = re.search(rf'<meta name="refundlens:{name}" content="([^"]*)">', html)
    return html_lib.unescape(found.group(1)) if found else ""


def _page_marks(html: str) -> tuple[str, str]:
    """Chromium's header and footer templates for every page: the title and the claim id at
    the top; the claim id, the report's content sha256 and "page N of M" at the foot.

    Their words come from the report's own ``refundlens:`` meta tags (so the service's and the
    CLI's one call, ``render_pdf(html, chromium_path)``, needs nothing else), escaped again
    here; the page numbers are Chromium's ``pageNumber``/``totalPages`` classes, filled in
    without JavaScript."""
    from html import escape

    def part(name: str) -> str:
        return escape(_meta(html, name))

    page = part("page").replace("{page}", '<span class="pageNumber"></span>')
    page = page.replace("{pages}", '<span class="totalPages"></span>')
    header = (
        f'<div style="{_MARK_STYLE}"><span>{part("title")}</span><span>{part("claim")}</span></div>'
    )
    footer = (
        f'<div style="{_MARK_STYLE}"><span>{part("claim")}</span>'
        f"<span>{part('sha-label')} {part('content-sha256')}</span><span>{page}</span></div>"
    )
    return header, footer


_REFRESH = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*[\"']?refresh[^>]*>", re.IGNORECASE)


def _with_report_csp(html: str) -> str:
    """``html`` with the report's policy as the first thing in its head (or document), and
    without any ``<meta http-equiv="refresh">``: a refresh starts a navigation (refused, like
    every request) that raced ``page.pdf`` and failed the print now and then ("Printing
    failed"). The report never has one; text in it is escaped and cannot make one."""
    html = _REFRESH.sub("", html)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{REPORT_CSP}">'
    if meta in html:  # render_html put it there: a saved copy opened from disk keeps the policy
        return html
    head = html.find("<head>")
    if head == -1:
        return meta + html
    return html[: head + len("<head>")] + meta + html[head + len("<head>") :]
