"""Signed bank files of confirmed forgeries, exchanged between platforms.

A bank file is JSON: ``format``, ``bank``, ``signer``, ``public_key`` (raw Ed25519, base64),
``created_at``, ``entries`` (PDQ hash, finding codes, confirmation date, the buyer only as
HMAC-SHA256 under a key the platforms agree on, and from format 2 on the photo's local print:
keypoint descriptors that still match a cropped copy, ``reuse.prints``), and ``signature``:
Ed25519 over the canonical JSON (sorted keys, no spaces) of everything else. No image and no
personal data leaves: an entry with any other field is refused. Format 1 files (whole-image
PDQ only) still import.
Import checks that the public key belongs to a trusted signer and that the signature holds;
anything else is refused with a clear error and nothing is stored.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import RefundlensError
from ..store.crypto import load_signing_key, new_signing_key, public_key_b64

__all__ = [
    "ENTRY_FIELDS",
    "FORMAT",
    "FORMATS",
    "MAX_FILE_BYTES",
    "BankError",
    "buyer_hmac",
    "generate_key",
    "read_trusted",
    "sign_bank",
    "verify_bank",
]

FORMAT = "refundlens-bank/2"
FORMATS = ("refundlens-bank/1", FORMAT)
"""Formats read: 1 (PDQ only) and 2 (PDQ and an optional local print per entry)."""
ENTRY_FIELDS = frozenset({"pdq", "codes", "confirmed_at", "buyer", "local"})
MAX_ENTRIES = 1_000_000
"""Entries one bank file may hold: every service process keeps every entry in memory."""
MAX_FILE_BYTES = 2 * 1024**3
"""A bank file's size, checked before it is read: about 330,000 entries with local prints
(about 6 KB each), or a million without."""
MAX_CODES = 16
"""Finding codes one entry may name (what the partner's reviewers confirmed)."""
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CODE = re.compile(r"[a-z][a-z0-9_]{0,30}(\.[a-z0-9_]{1,40}){1,3}")


class BankError(RefundlensError):
    pass


def buyer_hmac(key: str, buyer_id: str) -> str | None:
    if not key:
        return None
    return hmac.new(key.encode(), buyer_id.encode(), hashlib.sha256).hexdigest()


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def generate_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 600) and return its public key (base64)."""
    return new_signing_key(path)


def _public_b64(key: Ed25519PublicKey) -> str:
    return public_key_b64(key)


def load_private(path: str) -> Ed25519PrivateKey:
    try:
        return load_signing_key(path, "bank.no_signing_key", "bank signing key")
    except RefundlensError as exc:
        raise BankError(exc.code, exc.message) from exc


def sign_bank(
    bank: str, signer: str, entries: list[dict[str, Any]], key: Ed25519PrivateKey
) -> dict[str, Any]:
    body = {
        "format": FORMAT,
        "bank": bank,
        "signer": signer,
        "public_key": _public_b64(key.public_key()),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "entries": entries,
    }
    return {**body, "signature": base64.b64encode(key.sign(_canonical(body))).decode()}


def read_trusted(path: str) -> dict[str, str]:
    """{base64 public key: signer name} from a file of ``name key`` lines (# comments allowed)."""
    if not path:
        return {}
    trusted: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise BankError(
            "bank.no_trusted_keys", f"Cannot read the trusted signers file {path!r}: {exc}."
        ) from exc
    for line in lines:
        parts = line.split("#", 1)[0].split()
        if len(parts) == 2:
            trusted[parts[1]] = parts[0]
    return trusted


def _check_entry(entry: dict[str, Any]) -> None:
    """An entry's facts in the shapes export writes, else BankError."""
    codes = entry.get("codes", [])
    if (
        not isinstance(codes, list)
        or len(codes) > MAX_CODES
        or not all(isinstance(c, str) and _CODE.fullmatch(c) for c in codes)
    ):
        raise BankError(
            "bank.malformed",
            f"A bank entry's codes are not a list of at most {MAX_CODES} finding codes.",
        )
    buyer = entry.get("buyer")
    if buyer is not None and not (isinstance(buyer, str) and _HEX64.fullmatch(buyer)):
        raise BankError("bank.malformed", "A bank entry's buyer is not a keyed hash (64 hex).")
    confirmed = entry.get("confirmed_at", "1970-01-01")
    try:
        if not isinstance(confirmed, str):
            raise ValueError(confirmed)
        dt.datetime.fromisoformat(confirmed)
    except ValueError:
        raise BankError(
            "bank.malformed", "A bank entry's confirmed_at is not an ISO 8601 date."
        ) from None


def verify_bank(
    document: Any, trusted: dict[str, str], own_bank: str | None = None
) -> dict[str, Any]:
    """The document if it is a well-formed bank signed by a trusted signer, naming itself as that
    signer's own bank (the name the trusted signers file gives the key, never a name the file
    asserts), and not ``own_bank`` (this platform's bank, which only its reviewers fill); else
    BankError."""
    if not isinstance(document, dict) or document.get("format") not in FORMATS:
        raise BankError(
            "bank.malformed", f"Not a refundlens bank file (formats {', '.join(FORMATS)})."
        )
    body = {k: v for k, v in document.items() if k != "signature"}
    public = document.get("public_key")
    if not isinstance(public, str) or public not in trusted:
        raise BankError(
            "bank.untrusted_signer",
            f"The bank is signed by {document.get('signer')!r} with a key that is not in the trusted signers: refused.",
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(str(public)))
        key.verify(base64.b64decode(str(document.get("signature", ""))), _canonical(body))
    except (InvalidSignature, ValueError) as exc:
        raise BankError(
            "bank.bad_signature",
            "The bank file's signature does not match its content: it was altered. Refused.",
        ) from exc
    # The key proves who signed; the names in the file are the signer's claim. A partner signs
    # only its own bank: a file that names another bank (or this platform's) would let one
    # trusted partner replace or plant another's entries.
    name = trusted[str(public)]
    if document.get("signer") != name or document.get("bank") != name:
        raise BankError(
            "bank.wrong_signer",
            f"The bank is signed with the key of {name!r} but names itself bank "
            f"{document.get('bank')!r} signed by {document.get('signer')!r}: a platform signs "
            "only its own bank. Refused.",
        )
    if own_bank is not None and name == own_bank:
        raise BankError(
            "bank.wrong_signer",
            f"The bank {name!r} is this platform's own: it is filled by its reviewers, never "
            "imported. Refused.",
        )
    # A trusted signer is still not trusted to be well-formed: one entry that the services
    # cannot read would stop every claim's analysis, and its words reach reviewers as facts.
    entries = document.get("entries")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("pdq"), str) and _HEX64.fullmatch(e["pdq"])
        for e in entries
    ):
        raise BankError(
            "bank.malformed", "The bank's entries are not PDQ hashes (64 lowercase hex digits)."
        )
    if len(entries) > MAX_ENTRIES:
        raise BankError(
            "bank.malformed", f"The bank holds {len(entries)} entries; at most {MAX_ENTRIES}."
        )
    for entry in entries:
        extra = set(entry) - ENTRY_FIELDS
        if extra:
            raise BankError(
                "bank.malformed",
                f"A bank entry carries fields a bank may not hold ({', '.join(sorted(extra))}): refused.",
            )
        _check_entry(entry)
        if "local" in entry:
            from .prints import LocalPrint

            try:
                LocalPrint.from_text(str(entry["local"]))
            except ValueError as exc:
                raise BankError(
                    "bank.malformed", f"A bank entry's local print cannot be read: {exc}."
                ) from exc
    return document
