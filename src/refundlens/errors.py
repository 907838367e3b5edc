"""Errors that refundlens reports to users: a stable code and one sentence."""

from __future__ import annotations

from .storable import storable, storable_text

__all__ = ["MediaError", "NotFound", "RefundlensError"]


class RefundlensError(Exception):
    """Base of every error refundlens raises on purpose: ``code`` is stable, ``message`` one sentence."""

    code: str = "refundlens.error"

    def __init__(self, code: str, message: str, facts: dict[str, object] | None = None) -> None:
        message = storable_text(message)  # it may quote a file's name or what a file says
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.facts: dict[str, object] = storable(dict(facts or {}))
        """What was learnt about the input before it was refused (JSON-safe), for the response and
        the audit entry; e.g. the metadata of an animated file (``media.animated``)."""
        self.file: dict[str, object] | None = None
        """Which file of a request it was about (``index`` from 0, ``name``), where it was one."""

    def about_file(self, index: int, name: str, field: str = "photos") -> RefundlensError:
        """This error, naming the file of a request it was about (and saying so in its message)."""
        name = storable_text(name)
        self.file = {"field": field, "index": index, "name": name}
        self.message = f"{field}[{index}] ({name}): {self.message}"
        self.args = (f"[{self.code}] {self.message}",)
        return self

    def as_dict(self) -> dict[str, object]:
        found: dict[str, object] = {"code": self.code, "message": self.message}
        if self.file is not None:
            found["file"] = self.file
        if self.facts:
            found["facts"] = self.facts
        return found


class MediaError(RefundlensError):
    """A file that cannot be analysed as an image; codes are listed in ``docs/errors.md``."""


class NotFound(RefundlensError):
    """``<what>.not_found``: no such record, or not one the caller may see (the two are not told
    apart, so that an id cannot be probed)."""

    def __init__(self, what: str, ident: str) -> None:
        super().__init__(f"{what}.not_found", f"No {what} {ident!r} (or it is not yours to see).")
