"""C2PA manifests signed offline with a throw-away test CA made here (no file, no network), for
the detectors' examples and the tests. Never a trusted signer: its CA is on no trust list."""

from __future__ import annotations

import datetime
import io
from functools import lru_cache

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


@lru_cache(maxsize=4)
def signing_chain(
    ca: str = "refundlens test CA", signer: str = "Test AI Image Service"
) -> tuple[bytes, bytes, bytes]:
    """(private key PEM, leaf + CA chain PEM, CA PEM) for an ES256 signer under a test root."""
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    later = now + datetime.timedelta(days=3650)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, ca),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refundlens tests"),
        ]
    )
    root = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, signer),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refundlens tests"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, leaf.public_bytes(pem) + root.public_bytes(pem), root.public_bytes(pem)


def _signer(chain: tuple[bytes, bytes, bytes] | None = None) -> c2pa.Signer:
    key, chain_pem, _ = chain or signing_chain()
    return c2pa.Signer.from_info(
        c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain_pem, private_key=key, ta_url=None)
    )


def sign_jpeg(
    jpeg: bytes,
    source_type: str = "trainedAlgorithmicMedia",
    action: str = "c2pa.created",
    chain: tuple[bytes, bytes, bytes] | None = None,
    generator: str = "refundlens-test-generator",
    more_actions: int = 0,
) -> bytes:
    """``jpeg`` with an embedded C2PA manifest declaring ``action`` with ``source_type``, signed
    by ``chain`` (default: the test AI service under the test CA), made by ``generator``, with
    ``more_actions`` edits listed after it."""
    signer = _signer(chain)
    actions = [
        {
            "action": action,
            "digitalSourceType": IPTC + source_type,
            "softwareAgent": "TestDiffusion 2",
        }
    ]
    if action != "c2pa.created":  # C2PA requires the first action to be created or opened
        actions.insert(0, {"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"})
    actions += [{"action": "c2pa.color_adjustments"}] * more_actions
    manifest = {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "generated.jpg",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}}],
    }
    out = io.BytesIO()
    c2pa.Builder(manifest).sign(signer, "image/jpeg", io.BytesIO(jpeg), out)
    return out.getvalue()


def sign_jpeg_remote(jpeg: bytes, url: str = "https://manifests.example/claim.c2pa") -> bytes:
    """``jpeg`` pointing to a manifest kept at ``url`` (not embedded): refundlens never fetches it."""
    manifest = {
        "claim_generator_info": [{"name": "refundlens-test-generator", "version": "1.0"}],
        "title": "remote.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": IPTC + "digitalCapture"}
                    ]
                },
            }
        ],
    }
    builder = c2pa.Builder(manifest)
    builder.set_no_embed()
    builder.set_remote_url(url)
    out = io.BytesIO()
    builder.sign(_signer(), "image/jpeg", io.BytesIO(jpeg), out)
    return out.getvalue()
