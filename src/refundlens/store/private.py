"""Files and folders for the service's own user only, whatever the umask: claims, buyers'
personal data, photos and backups of them are not for every account on the host."""

from __future__ import annotations

import contextlib
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
    writing keeps its mode. An existing file is left as it is (``tighten`` it); a link there is
    followed by nothing here (a database kept on another volume through a link is the
    operator's to make private)."""
    with contextlib.suppress(FileExistsError):  # there already, a file or a link: left as is
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def tighten(*paths: Path) -> None:
    """Files an earlier release made under the umask (0644 under the usual 022), or an operator
    put back with ``cat``, made 0600 now; logged, since an operator who gave others access on
    purpose will see it gone. A link is logged and left alone; a file that cannot be changed
    (not ours, a read-only volume) is logged too.

    By path, never by opening the file: closing any descriptor of a database file drops every
    POSIX lock this process holds on it, SQLite's included (a test's second connection lost
    its locks and read a stale database)."""
    for path in paths:
        try:
            mode = os.stat(path, follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("%s could not be checked for its mode: %s", path, exc)
            continue
        if stat.S_ISLNK(mode):
            log.warning("%s is a link: its target's mode is yours to keep private", path)
        elif stat.S_ISREG(mode) and mode & 0o077:
            try:
                path.chmod(0o600)
                log.warning("%s was readable by others (%s): made 0600", path, oct(mode & 0o777))
            except OSError as exc:
                log.warning(
                    "%s is readable by others (%s) and could not be changed: %s",
                    path,
                    oct(mode & 0o777),
                    exc,
                )
