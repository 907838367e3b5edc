"""Errors that refundlens reports to users: a stable code and one sentence."""

from __future__ import annotations

__all__ = ["MediaError", "RefundlensError"]


class RefundlensError(Exception):
    """Base of every error refundlens raises on purpose: ``code`` is stable, ``message`` one sentence."""

    code: str = "refundlens.error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class MediaError(RefundlensError):
    """A file that cannot be analysed as an image; codes are listed in ``docs/errors.md``."""
