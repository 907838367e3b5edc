"""Files and folders for the service's own user only, whatever the umask: claims, buyers'
personal data, photos and backups of them are not for every account on the host."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_file", "private_folder"]


def private_folder(path: Path) -> None:
    """Make ``path`` and its missing parents, each 0700 (``mkdir(parents=True)`` would give
    the parents the umask's mode). A folder that exists keeps the mode its operator gave it."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def private_file(path: Path) -> None:
    """Make ``path`` an empty 0600 file if it is missing, so that whatever writes it next
    (SQLite, a copy) writes into a file only its owner reads: opening an existing file for
    writing keeps its mode."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
