"""Files and folders for the service's own user only, whatever the umask: claims, buyers'
personal data, photos and backups of them are not for every account on the host."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["private_file", "private_folder", "tighten"]

log = logging.getLogger(__name__)


def private_folder(path: Path) -> None:
    """Make ``path`` and its missing parents, each 0700 (``mkdir(parents=True)`` would give
    the parents the umask's mode). A folder that exists keeps the mode its operator gave it."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def private_file(path: Path) -> None:
    """Make ``path`` an empty 0600 file if it is missing, so that whatever writes it next
    (SQLite, a copy) writes into a file only its owner reads: opening an existing file for
    writing keeps its mode. Never through a link: a link put there is refused
    (``FileExistsError`` is the race lost to another writer of the same file, and is fine)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
    except FileExistsError:
        if path.is_symlink():
            raise


def tighten(*paths: Path) -> None:
    """Files an earlier release made under the umask (0644 under the usual 022) made 0600 now;
    logged, since an operator who gave others access on purpose will see it gone."""
    for path in paths:
        try:
            mode = path.stat(follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) and mode & 0o077:
            try:
                path.chmod(0o600)
                log.warning("%s was readable by others (%s): made 0600", path, oct(mode & 0o777))
            except PermissionError:
                log.warning(
                    "%s is readable by others (%s) and not ours to change", path, oct(mode & 0o777)
                )
