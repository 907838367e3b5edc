"""Back up and restore the service's data: the database and the content-addressed blob store.

A backup is a folder::

    manifest.json     what was taken, when, from which kind of database, the audit head, the
                      sha256 of the database file and of the features folder's listing
    manifest.sig      the manifest's Ed25519 signature (base64), where ``backup_signing_key_path``
                      is set
    database.sqlite   the embedded SQLite database (SQLite's online backup API), or
    database.pgdump   PostgreSQL's custom-format dump (``pg_dump -Fc``; restored by pg_restore)
    blobs/ab/cdef...  every blob, by its sha256 (as in ``<data_dir>/blobs``)
    features/...      reference features (``<data_dir>/features``), where present

The database is taken first, the blobs after: a blob is written before the row that names it
commits, so every blob the database copy refers to is already there when the blobs are copied
(blobs written meanwhile are extra and harmless: nothing refers to them). The PII key is never
in a backup (``pii_key``, or ``<data_dir>/pii.key`` for the embedded default): keep it in your
secret store, apart from the backups, and give it back to the restored service.

:func:`restore` refuses a non-empty target, checks the manifest's signature where a key to
check it is set (``backup_trusted_keys``, or the signing key's own), every blob against its name
and the features against the manifest while copying, then verifies the audit chain and that
every file a claim, SKU, order or evidence names is present and intact. The signature is what
makes the rest hold against a person who can write where backups are kept: without it, a dump
changed and its sha256 in the manifest written again restores as intact.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from ..config import Settings
from ..errors import RefundlensError
from .crypto import load_signing_key, public_key_b64, signature_valid
from .private import private_file, private_folder
from .sql.db import Database, sqlite_path

__all__ = ["BackupReport", "create_backup", "restore_backup"]

FORMAT = 1
DUMP_FILES = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
"""The database file a backup of each kind holds (by SQLAlchemy's dialect name)."""


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds or a restore brought back."""

    folder: Path
    database: str  # sqlite | postgresql
    blobs: int
    audit_entries: int
    audit_head: str
    missing_blobs: tuple[str, ...] = ()
    checkpoints_matched: int = 0
    """Checkpoints of ``audit_checkpoint_path`` (kept outside the database) the restored log was
    compared with: those of entries it holds."""
    checkpoints_after: int = 0
    """Checkpoints of entries after the restored log's last: entries written after the backup,
    which the restore does not bring back."""
    signed_by: str = ""
    """The public key (base64) whose signature of the manifest was checked; empty where none was
    (no key set to sign, or to check)."""
    damaged_blobs: tuple[str, ...] = ()
    """Blobs of the live service that did not match their sha256, left out of the backup."""


def _libpq_url(url: str) -> str:
    """``postgresql+psycopg://...`` as pg_dump and pg_restore read it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RefundlensError(
            "backup.tool_missing",
            f"{name} is not on PATH: install PostgreSQL's client tools (Debian: postgresql-client) "
            "of the server's major version or newer.",
        )
    return found


def _audit_head(database: Database) -> tuple[int, str]:
    from .sql.models import AuditHead

    with database.session() as session:
        head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar_one_or_none()
        return (head.seq, head.entry_hash) if head is not None else (0, "0" * 64)


def _sha256_of(path: Path) -> str:
    """A file's sha256, read in chunks (a backup's files may be large)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _regular_files(source: Path) -> list[Path]:
    """Every file below ``source``, refusing a link or anything but files and folders: refundlens
    writes none, and a restore that followed one would copy any file the restoring user can
    read into the data folder (and from there into the next backup)."""
    found = []
    for root, folders, files in os.walk(source, followlinks=False):
        for name in [*folders, *files]:
            mode = os.lstat(os.path.join(root, name)).st_mode
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise RefundlensError(
                    "backup.unreadable",
                    f"{os.path.join(root, name)} is a link or a special file; a refundlens backup "
                    "holds none: refusing it.",
                )
        found += [Path(root) / name for name in files]
    return sorted(found)


def _copy_tree_checked(
    source: Path,
    target: Path,
    blobs: bool = False,
    damaged: list[str] | None = None,
    made: list[Path] | None = None,
) -> list[tuple[str, str]]:
    """Copy a folder file by file; each file's (path, sha256) as copied, the hash read from
    the copy (hashing the source and then copying it let a file swapped in between through: a
    review). With ``blobs``, a temporary file of an interrupted write is left out and each
    copy's sha256 must be its name: a copy that is not is refused (``backup.blob_corrupt``), or,
    given ``damaged``, left out and named there. ``made`` gathers the files written."""
    copied: list[tuple[str, str]] = []
    if not source.is_dir():  # a live data folder may be a link to another disk: followed
        return copied
    check = blobs
    for path in _regular_files(source):
        relative = path.relative_to(source)
        name = "".join(relative.parts)
        if blobs and len(name) != 64:
            continue
        destination = target / relative
        private_folder(destination.parent)
        private_file(destination)
        if made is not None:
            made.append(destination)
        shutil.copyfile(path, destination, follow_symlinks=False)
        digest = _sha256_of(destination)
        if check and digest != name:
            destination.unlink()
            if damaged is not None:
                damaged.append(name)
                continue
            raise RefundlensError(
                "backup.blob_corrupt",
                f"blob {name} in {source} does not match its sha256: refusing it.",
            )
        copied.append((relative.as_posix(), digest))
    return copied


def _copy_verified(source: Path, target: Path, sha256: object) -> None:
    """Copy ``source`` to ``target`` (made private first) and check the copy's sha256."""
    private_file(target)
    shutil.copyfile(source, target, follow_symlinks=False)
    if _sha256_of(target) != sha256:
        target.unlink()
        raise RefundlensError(
            "backup.blob_corrupt", f"{source} changed while it was restored: refused."
        )


def _listing_sha256(files: list[tuple[str, str]]) -> str:
    """The sha256 of a folder's listing: each file's path (``/``-separated) and sha256, sorted.
    The manifest holds it for the blobs and the features, so that a signed manifest covers
    every file (a backup with files added was restored as signed: a review)."""
    digest = hashlib.sha256()
    for relative, sha in sorted(files):
        digest.update(f"{relative}\0{sha}\n".encode())
    return digest.hexdigest()


def _tree_sha256(folder: Path) -> str:
    """:func:`_listing_sha256` of the files under ``folder`` as they are."""
    if not folder.is_dir():
        return _listing_sha256([])
    return _listing_sha256(
        [(path.relative_to(folder).as_posix(), _sha256_of(path)) for path in _regular_files(folder)]
    )


def trusted_backup_keys(settings: Settings) -> list[str]:
    """The public keys (base64) a backup's manifest must be signed with: ``backup_trusted_keys``
    and the signing key's own. None: backups are restored unsigned (with a note)."""
    keys = [k.strip() for k in settings.backup_trusted_keys.split(",") if k.strip()]
    if settings.backup_signing_key_path:
        key = load_signing_key(
            settings.backup_signing_key_path, "backup.no_signing_key", "backup signing key"
        )
        keys.append(public_key_b64(key.public_key()))
    return keys


def _sqlite_copy(source: Path, target: Path) -> None:
    # SQLite's online backup API: a consistent copy while the service keeps writing (WAL).
    private_file(target)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def create_backup(settings: Settings, out: Path) -> BackupReport:
    """Write a backup of ``settings``' database and blobs into the new folder ``out``."""
    if out.exists() and any(out.iterdir()):
        raise RefundlensError("backup.target_not_empty", f"{out} exists and is not empty.")
    # Read before anything is written: a key that cannot be read stops the backup at once.
    signing_key = (
        load_signing_key(
            settings.backup_signing_key_path, "backup.no_signing_key", "backup signing key"
        )
        if settings.backup_signing_key_path
        else None
    )
    private_folder(out)
    database = Database(settings)
    # Before the head is read: a checkpoint taken before this saw entries the dump holds.
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        seq, head = _audit_head(database)
        kind = database.engine.dialect.name
        if kind == "sqlite":
            path = sqlite_path(settings)
            assert path is not None
            dump = out / DUMP_FILES["sqlite"]
            _sqlite_copy(path, dump)
        else:
            dump = out / DUMP_FILES["postgresql"]
            private_file(dump)
            subprocess.run(
                [
                    _tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--file={dump}",
                    _libpq_url(database.url),
                ],
                check=True,
                capture_output=True,
            )
    except subprocess.CalledProcessError as exc:
        raise RefundlensError(
            "backup.failed", f"pg_dump failed: {exc.stderr.decode(errors='replace').strip()}"
        ) from exc
    finally:
        database.dispose()
    data_dir = Path(settings.data_dir)
    # A damaged blob of the live service is left out and named (a restore then names it among
    # the files the database names that are missing): a backup that stopped on it would leave
    # the rest without one, and one that held it could not be restored (a review).
    damaged: list[str] = []
    blob_files = _copy_tree_checked(data_dir / "blobs", out / "blobs", blobs=True, damaged=damaged)
    feature_files = _copy_tree_checked(data_dir / "features", out / "features")
    blobs = len(blob_files)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "started_at": started_at,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": kind,
        "database_file": dump.name,
        "database_sha256": _sha256_of(dump),
        "audit_entries": seq,
        "audit_head": head,
        "blobs": blobs,
        "blobs_sha256": _listing_sha256(blob_files),
        "damaged_blobs": sorted(damaged),
        "features_sha256": _listing_sha256(feature_files),
    }
    text = (json.dumps(manifest, indent=1) + "\n").encode("utf-8")
    private_file(out / "manifest.json")
    (out / "manifest.json").write_bytes(text)
    signed_by = ""
    if signing_key is not None:
        private_file(out / "manifest.sig")
        (out / "manifest.sig").write_text(
            base64.b64encode(signing_key.sign(text)).decode() + "\n", encoding="ascii"
        )
        signed_by = public_key_b64(signing_key.public_key())
    return BackupReport(
        out, kind, blobs, seq, head, signed_by=signed_by, damaged_blobs=tuple(sorted(damaged))
    )


BACKUP_ENTRIES = frozenset(
    {"manifest.json", "manifest.sig", "blobs", "features", *DUMP_FILES.values()}
)
"""What a backup's folder holds, and nothing else."""


def _only_backup_entries(folder: Path) -> None:
    """Refuse a folder that holds anything a backup does not: SQLite reads a write-ahead log or
    journal beside the dump (``database.sqlite-wal``) with it, so a log planted there changed
    the restored database while the dump still matched its sha256 (a review)."""
    try:
        names = sorted(entry.name for entry in folder.iterdir())
    except OSError as exc:
        raise RefundlensError(
            "backup.unreadable", f"{folder} is not a refundlens backup: {exc}"
        ) from exc
    for name in names:
        if name not in BACKUP_ENTRIES:
            raise RefundlensError(
                "backup.unreadable",
                f"{folder / name} is not part of a refundlens backup (which holds "
                f"{', '.join(sorted(BACKUP_ENTRIES))}): refusing the folder.",
            )


def _signature_checked(folder: Path, text: bytes, trusted: list[str]) -> str:
    """The trusted key that signed ``text`` (the manifest), or "" where no key is trusted.
    With a trusted key, an unsigned or wrongly signed manifest is refused."""
    if not trusted:
        return ""
    path = folder / "manifest.sig"
    try:
        signature = path.read_text("ascii").strip()
    except (OSError, ValueError):
        raise RefundlensError(
            "backup.unsigned",
            f"{folder} holds no readable manifest.sig, and this service restores only backups "
            "signed by a trusted key (backup_trusted_keys, backup_signing_key_path): refused.",
        ) from None
    for key in trusted:
        if signature_valid(key, signature, text):
            return key
    raise RefundlensError(
        "backup.bad_signature",
        f"the manifest in {folder} is not signed by a trusted key (backup_trusted_keys, "
        "backup_signing_key_path): it was altered, or signed by another key. Refused.",
    )


def _read_manifest(folder: Path, trusted: list[str]) -> tuple[dict[str, Any], str]:
    """The backup's manifest, checked, and the key that signed it ("" where none was checked)."""
    try:
        text = (folder / "manifest.json").read_bytes()
        signed_by = _signature_checked(folder, text, trusted)
        manifest: dict[str, Any] = json.loads(text.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise RefundlensError(
            "backup.unreadable", f"{folder} is not a refundlens backup: {exc}"
        ) from exc
    if not isinstance(manifest, dict):
        raise RefundlensError("backup.unreadable", f"{folder} is not a refundlens backup.")
    if manifest.get("format") != FORMAT:
        raise RefundlensError("backup.unreadable", f"unknown backup format in {folder}")
    # The file hashed is the file restored: only the name this module writes for its kind.
    expected = DUMP_FILES.get(str(manifest.get("database")))
    if expected is None or manifest.get("database_file") != expected:
        raise RefundlensError(
            "backup.unreadable",
            f"the manifest in {folder} names database file {manifest.get('database_file')!r}; "
            f"a refundlens backup holds {' or '.join(DUMP_FILES.values())}.",
        )
    entries, head = manifest.get("audit_entries"), manifest.get("audit_head")
    if (
        not isinstance(entries, int)
        or isinstance(entries, bool)
        or entries < 0
        or not isinstance(head, str)
        or len(head) != 64
    ):
        raise RefundlensError(
            "backup.unreadable", f"the manifest in {folder} records no audit head it can read."
        )
    dump = folder / expected
    if dump.is_symlink() or not dump.is_file():
        raise RefundlensError("backup.unreadable", f"{dump} is missing, or a link: refusing it.")
    if _sha256_of(dump) != manifest.get("database_sha256"):
        raise RefundlensError(
            "backup.blob_corrupt", f"{dump} does not match the sha256 in its manifest."
        )
    # Backups made before manifests recorded it have none: their features are copied unchecked
    # (a cache the service recomputes from the references where a file does not read).
    if "features_sha256" in manifest and _tree_sha256(folder / "features") != manifest.get(
        "features_sha256"
    ):
        raise RefundlensError(
            "backup.blob_corrupt",
            f"the features in {folder} do not match the sha256 in its manifest.",
        )
    return manifest, signed_by


def restore_backup(settings: Settings, folder: Path) -> BackupReport:
    """Restore the backup in ``folder`` into ``settings``' (empty) database and data folder,
    then verify the audit chain and the files the database names."""
    _only_backup_entries(folder)
    _regular_files(folder)  # no link anywhere in it, before anything is read or restored
    manifest, signed_by = _read_manifest(folder, trusted_backup_keys(settings))
    made: list[Path] = []  # the files copied into the data folder, removed if refused
    database = Database(settings)
    kind = database.engine.dialect.name
    try:
        if manifest["database"] != kind:
            raise RefundlensError(
                "backup.wrong_database",
                f"this backup holds a {manifest['database']} database; the target is {kind}.",
            )
        try:
            tables = inspect(database.engine).get_table_names()
        except OperationalError as exc:
            raise RefundlensError(
                "backup.failed", f"cannot reach the target database: {exc.orig}"
            ) from exc
        if tables:
            raise RefundlensError(
                "backup.target_not_empty",
                "the target database already has tables: restore into a new, empty one.",
            )
        # The files first, each hashed as copied, then checked against the signed listing:
        # nothing of a backup changed where it is kept reaches the database.
        data_dir = Path(settings.data_dir)
        private_folder(data_dir)
        blob_files = _copy_tree_checked(folder / "blobs", data_dir / "blobs", True, made=made)
        feature_files = _copy_tree_checked(folder / "features", data_dir / "features", made=made)
        # Backups made before manifests listed them have no such key.
        for key, files in (("blobs_sha256", blob_files), ("features_sha256", feature_files)):
            if key in manifest and _listing_sha256(files) != manifest.get(key):
                raise RefundlensError(
                    "backup.blob_corrupt",
                    f"the {key.split('_')[0]} in {folder} are not those its manifest lists "
                    "(files added, missing or changed): refused before the database.",
                )
        # The dump, byte for byte, and its sha256 checked again on the copy, which alone is
        # restored: opened in the backup folder, SQLite wrote its -shm and -wal there and read
        # any log found beside it; pg_restore read a file hashed a moment before (a review).
        if kind == "sqlite":
            database.dispose()
            path = sqlite_path(settings)
            assert path is not None
            for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                leftover.unlink(missing_ok=True)
            _copy_verified(folder / DUMP_FILES["sqlite"], path, manifest["database_sha256"])
        else:
            copy = data_dir / f".restoring-{DUMP_FILES['postgresql']}"
            _copy_verified(folder / DUMP_FILES["postgresql"], copy, manifest["database_sha256"])
            try:
                subprocess.run(
                    [
                        _tool("pg_restore"),
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        f"--dbname={_libpq_url(database.url)}",
                        str(copy),
                    ],
                    check=True,
                    capture_output=True,
                )
            finally:
                copy.unlink(missing_ok=True)
    except BaseException as exc:
        # Refused: nothing it copied stays in the data folder (a swapped features file stayed
        # in the service's cache after a refused restore: a review).
        for path in made:
            path.unlink(missing_ok=True)
        if isinstance(exc, subprocess.CalledProcessError):
            said = exc.stderr.decode(errors="replace").strip()
            raise RefundlensError("backup.failed", f"pg_restore failed: {said}") from exc
        raise
    finally:
        database.dispose()
    blobs = len(blob_files)
    report = _verify_restored(
        settings,
        folder,
        blobs,
        int(manifest["audit_entries"]),
        str(manifest["audit_head"]),
        str(manifest.get("started_at") or ""),
    )
    return dataclasses.replace(report, signed_by=signed_by)


def _before(moment: str, than: str) -> bool:
    """Whether the ISO 8601 time ``moment`` is before ``than``; an unreadable ``moment`` is
    (the checkpoint is compared, never waved through). Without ``than`` (a backup made before
    manifests recorded their start) none is: only checkpoints of entries it holds are compared."""
    if not than:
        return False
    try:
        a, b = dt.datetime.fromisoformat(moment), dt.datetime.fromisoformat(than)
        if a.tzinfo is None:
            a = a.replace(tzinfo=dt.UTC)
        if b.tzinfo is None:
            b = b.replace(tzinfo=dt.UTC)
        return a < b
    except (TypeError, ValueError):
        return True


def _verify_restored(
    settings: Settings,
    folder: Path,
    blobs: int,
    manifest_entries: int,
    manifest_head: str,
    taken_at: str,
) -> BackupReport:
    from .blobs import BlobStore
    from .sql import audit
    from .sql.models import AuditEntry, ClaimPhoto, Evidence, OrderReference, ReferencePhoto

    database = Database(settings)
    store = BlobStore(Path(settings.data_dir) / "blobs")
    try:
        with database.session() as session:
            # The chain alone cannot tell a log rewritten before the backup was taken (every
            # hash recomputed): the checkpoints kept outside can, as `audit verify` compares
            # them (restore said "intact" where verify named the entry: a security review).
            last, _ = audit.current_head(session)
            # As `audit verify` reads them: a missing file is an error unless the log is empty
            # (an unmounted share must not read as "no checkpoints": a review).
            points = audit.configured_checkpoints(session, settings.audit_checkpoint_path)
            # A checkpoint taken before the backup began saw the log the backup holds: every one
            # must match it, one past its end included (entries cut before the backup: a review).
            # One taken after may be of entries the backup never held (an older backup restored).
            held = [point for point in points if point.seq <= last or _before(point.at, taken_at)]
            _checked, problem = audit.verify(session, checkpoints=held)
            recorded = (
                session.execute(
                    select(AuditEntry.entry_hash).where(AuditEntry.seq == manifest_entries)
                )
                .scalars()
                .first()
                if manifest_entries > 0
                else None
            )
            if problem is None and manifest_entries > 0 and recorded != manifest_head:
                # The head read when the backup began (a live service may add entries while
                # the database is dumped, so the log may go on after it).
                problem = audit.AuditProblem(
                    manifest_entries,
                    "the entry is not the one the backup's manifest recorded "
                    f"({manifest_head[:12]}): the dump was altered after it was taken",
                )
            if problem is not None:
                raise RefundlensError(
                    "backup.audit_broken",
                    f"the restored audit log is broken at entry {problem.seq}: {problem.problem}",
                )
            named: set[str] = set()
            for column in (
                ClaimPhoto.sha256,
                ReferencePhoto.sha256,
                OrderReference.sha256,
                Evidence.sha256,
            ):
                named |= {sha for sha in session.execute(select(column)).scalars() if sha}
        missing = tuple(sorted(sha for sha in named if not store.exists(sha)))
        seq, head = _audit_head(database)
    finally:
        database.dispose()
    return BackupReport(
        folder,
        database.engine.dialect.name,
        blobs,
        seq,
        head,
        missing,
        checkpoints_matched=len(held),
        checkpoints_after=len(points) - len(held),
    )
