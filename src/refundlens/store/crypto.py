"""Personal data (buyer name, phone, address) encrypted at rest with Fernet (AES-128-CBC + HMAC),
and the Ed25519 keys that sign what leaves the service (a bank of forgeries, a backup's manifest).

Rotation (docs/operations.md): ``pii_key`` may name several keys, comma-separated, newest first
(the key file of the embedded default: one per line). The first seals; every one opens.
:meth:`PiiCipher.reseal` seals a token again under the first, so once every row is resealed
(``refundlens keys rotate-pii``) the older keys can be dropped.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..config import Settings
from ..errors import RefundlensError
from .private import private_folder, tighten

__all__ = [
    "PiiCipher",
    "load_signing_key",
    "new_signing_key",
    "public_key_b64",
    "signature_valid",
]


def new_signing_key(path: Path) -> str:
    """Write a new Ed25519 private key (PEM, mode 600) and return its public key (base64).
    The file is created with that mode and only if it does not exist (FileExistsError): never
    readable by others for a moment, never over an existing key."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(pem)
    return public_key_b64(key.public_key())


def public_key_b64(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key, base64: the line a verifier keeps."""
    return base64.b64encode(
        key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).decode()


def load_signing_key(path: str, code: str, what: str) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``path``; ``code`` is the error's code where it
    cannot be read or is another kind of key, ``what`` names the key in its sentence."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # TypeError: a key protected by a password, which refundlens does not ask for.
        raise RefundlensError(code, f"Cannot read the {what} {path!r}: {exc}.") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise RefundlensError(code, f"{path} is not an Ed25519 private key.")
    return key


def signature_valid(public_b64: str, signature_b64: str, data: bytes) -> bool:
    """Whether ``signature_b64`` is the Ed25519 signature of ``data`` by ``public_b64``."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64, validate=True))
        key.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


class PiiCipher:
    def __init__(self, key: bytes | list[bytes]) -> None:
        keys = [key] if isinstance(key, bytes) else key
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiCipher:
        """The keys from ``pii_key`` (comma-separated, newest first); for the embedded default, a
        key file made once in ``data_dir`` (one key a line, newest first)."""
        if settings.pii_key:
            return cls([k.strip().encode() for k in settings.pii_key.split(",") if k.strip()])
        path = Path(settings.data_dir) / "pii.key"
        if not path.exists():
            private_folder(path.parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        tighten(path)  # a key put back after a restore, as `cat key > pii.key` leaves it
        return cls(path.read_bytes().split())

    def seal(self, data: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def reseal(self, token: bytes) -> bytes:
        """The same data sealed under the first key (a no-op for the content)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken as exc:
            raise RefundlensError(
                "pii.undecryptable", "Personal data cannot be decrypted with the configured key."
            ) from exc

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise RefundlensError(
                "pii.undecryptable", "Personal data cannot be decrypted with the configured key."
            ) from exc
