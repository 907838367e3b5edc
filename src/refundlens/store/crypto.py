"""Personal data (buyer name, phone, address) encrypted at rest with Fernet (AES-128-CBC + HMAC)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from ..config import Settings
from ..errors import RefundlensError

__all__ = ["PiiCipher"]


class PiiCipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> PiiCipher:
        """The key from ``pii_key``; for the embedded default, a key file made once in ``data_dir``."""
        if settings.pii_key:
            return cls(settings.pii_key.encode())
        path = Path(settings.data_dir) / "pii.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def seal(self, data: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(data, ensure_ascii=False).encode("utf-8"))

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise RefundlensError(
                "pii.undecryptable", "Personal data cannot be decrypted with the configured key."
            ) from exc
