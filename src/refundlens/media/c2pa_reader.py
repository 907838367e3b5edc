"""C2PA manifests through c2pa-python, offline: remote manifests and OCSP are never fetched, and
trust anchors come only from a PEM bundle named in settings.

Absent evidence is not an error: a file without a manifest gives None.
"""

from __future__ import annotations

import dataclasses
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["C2paAction", "C2paFacts", "read_c2pa"]

_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "HEIF": "image/heif"}
# JUMBF box type and the C2PA label: a cheap byte scan spares the native reader on most files
_MARKERS = (b"jumb", b"c2pa", b"dcterms:provenance")


FACTS_LISTED = 20
"""Actions and assertion labels a finding's facts list; the rest are counted."""


@dataclasses.dataclass(frozen=True, slots=True)
class C2paAction:
    action: str
    software_agent: str | None
    digital_source_type: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class C2paFacts:
    """What the active manifest declares and how far it can be trusted."""

    state: str
    """valid | invalid | trusted | remote | unreadable | unavailable (reader not installed)."""
    status_codes: tuple[str, ...] = ()
    claim_generator: str | None = None
    signer_issuer: str | None = None
    signer_name: str | None = None
    signed_at: str | None = None
    actions: tuple[C2paAction, ...] = ()
    assertion_labels: tuple[str, ...] = ()
    message: str | None = None

    @property
    def signer_trusted(self) -> bool:
        return self.state == "trusted"

    def as_dict(self) -> dict[str, Any]:
        """The facts a finding keeps: the first ``FACTS_LISTED`` actions and assertion labels,
        and how many there are (a manifest of 30,000 actions made a 14 MB report page and a
        PDF that failed to print: an attacker's probe)."""
        out = dataclasses.asdict(self)
        out["actions"] = [dataclasses.asdict(a) for a in self.actions[:FACTS_LISTED]]
        out["assertion_labels"] = list(self.assertion_labels[:FACTS_LISTED])
        if len(self.actions) > FACTS_LISTED:
            out["actions_in_all"] = len(self.actions)
        if len(self.assertion_labels) > FACTS_LISTED:
            out["assertion_labels_in_all"] = len(self.assertion_labels)
        return out


@lru_cache(maxsize=4)
def _context(anchors_path: str) -> Any:
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if anchors_path:
        settings["trust"] = {"trust_anchors": Path(anchors_path).read_text(encoding="utf-8")}
    return c2pa.Context(c2pa.Settings.from_dict(settings))


def _generator(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info:
        parts = [
            f"{i.get('name', '')} {i.get('version', '')}".strip()
            for i in info
            if isinstance(i, dict)
        ]
        return ", ".join(p for p in parts if p) or None
    generator = manifest.get("claim_generator")
    return str(generator) if generator else None


def read_c2pa(data: bytes, fmt: str, trust_anchors_path: str = "") -> C2paFacts | None:
    """The active C2PA manifest of a file's bytes, or None when the file carries none."""
    if not any(marker in data for marker in _MARKERS):
        return None
    try:
        import c2pa
    except ImportError:
        return C2paFacts("unavailable", message="c2pa-python is not installed")
    try:
        reader = c2pa.Reader(
            _MIME.get(fmt, "image/jpeg"), io.BytesIO(data), context=_context(trust_anchors_path)
        )
        report = json.loads(reader.json())
    except Exception as exc:  # c2pa raises its own error types; every one is a fact here
        text = str(exc)
        if "ManifestNotFound" in type(exc).__name__ or "no JUMBF" in text:
            return None
        if "remote" in text.lower():
            return C2paFacts(
                "remote",
                message="the manifest is stored remotely and was not fetched (offline by design)",
            )
        return C2paFacts("unreadable", message=text[:200])
    manifest = report.get("manifests", {}).get(report.get("active_manifest"), {})
    codes = tuple(str(s.get("code")) for s in report.get("validation_status", []) if s.get("code"))
    state = str(report.get("validation_state", "")).lower() or ("invalid" if codes else "valid")
    actions: list[C2paAction] = []
    labels: list[str] = []
    for assertion in manifest.get("assertions", []):
        label = str(assertion.get("label", ""))
        labels.append(label)
        if label.startswith("c2pa.actions"):
            for act in (assertion.get("data") or {}).get("actions", []):
                agent = act.get("softwareAgent")
                if isinstance(agent, dict):
                    agent = agent.get("name")
                actions.append(
                    C2paAction(str(act.get("action", "")), agent, act.get("digitalSourceType"))
                )
    signature = manifest.get("signature_info") or {}
    return C2paFacts(
        state=state,
        status_codes=codes,
        claim_generator=_generator(manifest),
        signer_issuer=signature.get("issuer"),
        signer_name=signature.get("common_name"),
        signed_at=signature.get("time"),
        actions=tuple(actions),
        assertion_labels=tuple(labels),
    )
