"""Personal data (buyer name, phone, address) encrypted at rest with Fernet (AES-128-CBC + HMAC).

Rotation (docs/operations.md): ``pii_key`` may name several keys, comma-separated, newest first
(the key file of the embedded default: one per line). The first seals; every one opens.
:meth:`PiiCipher.reseal` seals a token again under the first, so once every row is resealed
(``refundlens keys rotate-pii``) the older keys can be dropped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ..config import Settings
from ..errors import RefundlensError
from .private import private_folder, tighten

__all__ = ["PiiCipher"]


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
