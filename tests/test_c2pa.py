"""C2PA through c2pa-python: manifests signed here with a test CA, and real fixtures from
c2pa-python's test suite read from ../shared/data (skipped with the reason where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from refundlens.config import Settings
from refundlens.detectors import ProvenanceDetector
from refundlens.detectors.base import Context
from refundlens.detectors.provenance._examples import camera_jpeg
from refundlens.fusion import fuse, load_policy
from refundlens.media import load_media, media_from_bytes

from .support.c2pa_signing import sign_jpeg, signing_chain

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "c2pa-python-fixtures"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"real C2PA fixtures not found at {FIXTURES}"
)


def _findings(data: bytes, settings: Settings | None = None):  # type: ignore[no-untyped-def]
    return ProvenanceDetector().analyze(
        media_from_bytes(data, "x.jpg"), Context(settings=settings or Settings())
    )


def test_trained_algorithmic_media_manifest_escalates_and_names_an_untrusted_signer() -> None:
    findings = _findings(sign_jpeg(camera_jpeg()))
    (finding,) = [f for f in findings if f.code == "provenance.c2pa_ai"]
    assert finding.facts["declared_source_type"] == "trainedAlgorithmicMedia"
    assert (
        finding.facts["state"] == "valid"
        and "signingCredential.untrusted" in finding.facts["status_codes"]
    )
    assert "not on the trust list" in finding.reason.en
    assert fuse(findings, load_policy()).action == "escalate"


def test_signer_under_a_configured_trust_anchor_is_reported_trusted(tmp_path: Path) -> None:
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(signing_chain()[2])
    findings = _findings(sign_jpeg(camera_jpeg()), Settings(c2pa_trust_anchors_path=str(anchors)))
    (finding,) = [f for f in findings if f.code == "provenance.c2pa_ai"]
    assert finding.facts["state"] == "trusted" and "on the trust list" in finding.reason.en


def test_composite_with_ai_is_declared_as_ai_editing() -> None:
    findings = _findings(
        sign_jpeg(camera_jpeg(), "compositeWithTrainedAlgorithmicMedia", "c2pa.edited")
    )
    (finding,) = [f for f in findings if f.code == "provenance.c2pa_ai"]
    assert finding.facts["declared_action"] == "c2pa.edited"


@needs_fixtures
def test_real_fixture_declaring_algorithmic_media_is_found() -> None:
    findings = ProvenanceDetector().analyze(load_media(FIXTURES / "C.jpg"), Context())
    assert [f.code for f in findings] == ["provenance.c2pa_algorithmic"]


@needs_fixtures
def test_real_fixture_with_a_broken_signature_is_reported_invalid() -> None:
    findings = ProvenanceDetector().analyze(
        load_media(FIXTURES / "files-for-reading-tests" / "E-sig-CA.jpg"), Context()
    )
    (finding,) = [f for f in findings if f.code == "provenance.c2pa_invalid"]
    assert "claimSignature.mismatch" in finding.facts["status_codes"]


@needs_fixtures
def test_remote_manifest_is_not_fetched() -> None:
    findings = ProvenanceDetector().analyze(
        load_media(FIXTURES / "files-for-reading-tests" / "cloud.jpg"), Context()
    )
    assert [f.code for f in findings] == ["provenance.c2pa_remote"]


def test_only_a_trusted_signers_camera_capture_vouches_for_a_claim_photo(tmp_path: Path) -> None:
    # A buyer can sign any photo with a certificate of its own making: what vouches for a photo
    # (and spares a claim the live capture) is a manifest signed under the platform's trust
    # anchors that declares a camera capture and no edit.
    from refundlens.cases.routing import facts_from_report
    from refundlens.pipeline import analyze
    from refundlens.report import assessment_to_dict

    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(signing_chain()[2])
    trusting = Settings(c2pa_trust_anchors_path=str(anchors), ocr_enabled=False)
    stranger = signing_chain(ca="Totally Real Camera CA", signer="Pixel Camera")
    photo = camera_jpeg()

    def vouched(data: bytes, settings: Settings) -> bool:
        report = assessment_to_dict(
            analyze([media_from_bytes(data, "p.jpg", settings)], settings=settings)
        )
        codes = {f["code"] for image in report["images"] for f in image["findings"]}
        assert "provenance.c2pa_manifest" in codes, codes
        return facts_from_report(report, [False])[0]

    assert vouched(sign_jpeg(photo, "digitalCapture"), trusting)
    assert not vouched(sign_jpeg(photo, "digitalCapture", chain=stranger), trusting)
    assert not vouched(sign_jpeg(photo, "digitalCapture"), Settings(ocr_enabled=False))
    assert not vouched(sign_jpeg(photo, "minorHumanEdits", "c2pa.edited"), trusting)
