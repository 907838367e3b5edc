"""Backup and restore (docs/operations.md): back up, wipe, restore; the audit chain verifies and
a claim's photos load, byte for byte. On SQLite, and on PostgreSQL where it is reachable."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from refundlens.cli import app
from refundlens.config import Settings
from refundlens.media import media_from_bytes
from refundlens.store import BlobStore, Database
from refundlens.store.crypto import PiiCipher

from .service_support import (
    PG_ADMIN_URL,
    add_tenants,
    assessed,
    backend,
    file_claim,
    listed_sku,
    running_server,
)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "postgresql" and (
        shutil.which("pg_dump") is None or shutil.which("pg_restore") is None
    ):
        pytest.skip("pg_dump / pg_restore not on PATH (Debian: postgresql-client)")
    with backend(request.param) as url:
        yield url


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def _wipe(data_dir: Path, database_url: str) -> None:
    """Everything the service kept is gone: its folder, and the database (dropped, made anew)."""
    shutil.rmtree(data_dir)
    if database_url:
        import psycopg

        name = database_url.rsplit("/", 1)[1]
        admin = PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


def test_a_backup_restored_after_a_wipe_verifies_and_its_claims_photos_load(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    with running_server(data_dir, database_url) as server:
        add_tenants(server, "shop")
        merchant = server.key("merchant", "shop")
        buyer = server.key("buyer", subject="b1")
        sku = listed_sku(server, merchant)
        with server.client(merchant) as client:
            r = client.post(
                "/v1/orders",
                json={
                    "external_id": "o-1",
                    "sku_id": sku,
                    "buyer_id": "b1",
                    "amount": 300,
                    "buyer": {"name": "张三", "phone": "13800138000"},
                },
            )
            assert r.status_code == 201, r.text
            order = r.json()["id"]
        claim = file_claim(server, buyer, order)
        assert assessed(server, claim["id"])["assessment"] is not None
    settings = Settings(data_dir=str(data_dir), database_url=database_url)
    with Database(settings).session() as session:
        from sqlalchemy import select

        from refundlens.store.sql.models import ClaimPhoto

        photos = set(
            session.execute(select(ClaimPhoto.sha256).where(ClaimPhoto.claim_id == claim["id"]))
            .scalars()
            .all()
        )
    assert photos
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": database_url}
    # The PII key is kept apart from the backups (the embedded default's key file here).
    pii_key = (data_dir / "pii.key").read_bytes()

    code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
    assert code == 0, out
    assert "blobs" in out and (tmp_path / "backup" / "manifest.json").exists()
    assert not (tmp_path / "backup" / "pii.key").exists()

    _wipe(data_dir, database_url)
    assert not data_dir.exists()

    code, out = _cli(env, "backup", "restore", str(tmp_path / "backup"))
    assert code == 0, out
    (data_dir / "pii.key").write_bytes(pii_key)
    code, out = _cli(env, "audit", "verify")
    assert code == 0 and "chain verified" in out, out

    blobs = BlobStore(data_dir / "blobs")
    for sha in photos:
        data = blobs.get(sha)
        assert hashlib.sha256(data).hexdigest() == sha
        assert media_from_bytes(data, "claim.jpg", settings).width > 0
    # The buyer's sealed personal data opens with the key kept apart; the restored service
    # answers with the claim and its assessment.
    from refundlens.store.crypto import PiiCipher
    from refundlens.store.sql.models import Order

    with Database(settings).session() as session:
        sealed = session.get(Order, order)
        assert sealed is not None and sealed.buyer_pii is not None
        assert PiiCipher.from_settings(settings).open(sealed.buyer_pii)["phone"] == "13800138000"
    with running_server(data_dir, database_url) as server, server.client(server.admin) as admin:
        assert admin.get(f"/v1/claims/{claim['id']}").json()["assessment"] is not None

    # A second restore into the now non-empty service is refused, changing nothing.
    code, out = _cli(env, "backup", "restore", str(tmp_path / "backup"))
    assert code == 2 and "backup.target_not_empty" in out, out


def test_a_backup_with_a_blob_altered_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": ""}
    assert _cli(env, "db", "upgrade")[0] == 0
    BlobStore(data_dir / "blobs").put(b"a photo")
    code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
    assert code == 0, out
    blob = next(p for p in (tmp_path / "backup" / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(b"another photo")
    shutil.rmtree(data_dir)
    code, out = _cli(env, "backup", "restore", str(tmp_path / "backup"))
    assert code == 2 and "backup.blob_corrupt" in out, out


def test_a_signed_backup_changed_where_it_is_kept_is_refused(tmp_path: Path) -> None:
    """Whoever can write where backups are kept could change the dump and write its sha256 in
    the manifest again: it restored as intact. Signed, the manifest cannot be written again."""
    import json
    import sqlite3

    key = tmp_path / "backup.pem"
    code, public = _cli({}, "backup", "keygen", "--out", str(key))
    assert code == 0 and key.stat().st_mode & 0o077 == 0, public
    public = public.strip()
    data_dir = tmp_path / "data"
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": ""}
    assert _cli(env, "db", "upgrade")[0] == 0
    BlobStore(data_dir / "blobs").put(b"a photo")
    backup = tmp_path / "backup"
    code, out = _cli(
        {**env, "REFUNDLENS_BACKUP_SIGNING_KEY_PATH": str(key)}, "backup", "create", str(backup)
    )
    assert code == 0 and f"signed by {public}" in out, out
    assert (backup / "manifest.sig").is_file()
    shutil.rmtree(data_dir)
    restoring = {**env, "REFUNDLENS_BACKUP_TRUSTED_KEYS": public}  # the public key alone
    kept = {p: p.read_bytes() for p in (backup / "manifest.json", backup / "database.sqlite")}

    # A write-ahead log planted beside the dump: SQLite reads it with the file, whose sha256
    # is unchanged (the restored database held a table the backup never had).
    db = sqlite3.connect(backup / "database.sqlite")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE planted (x)")
    db.commit()
    planted_log = (backup / "database.sqlite-wal").read_bytes()
    db.close()
    (backup / "database.sqlite").write_bytes(kept[backup / "database.sqlite"])
    (backup / "database.sqlite-wal").write_bytes(planted_log)
    code, out = _cli(restoring, "backup", "restore", str(backup))
    assert code == 2 and "backup.unreadable" in out and "database.sqlite-wal" in out, out
    assert not (data_dir / "refundlens.db").exists()
    (backup / "database.sqlite-wal").unlink()

    # The dump changed (a table added), its sha256 written into the manifest again.
    db = sqlite3.connect(backup / "database.sqlite")
    db.execute("CREATE TABLE planted (x)")
    db.commit()
    db.close()
    manifest = json.loads(kept[backup / "manifest.json"])
    manifest["database_sha256"] = hashlib.sha256(
        (backup / "database.sqlite").read_bytes()
    ).hexdigest()
    (backup / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    code, out = _cli(restoring, "backup", "restore", str(backup))
    assert code == 2 and "backup.bad_signature" in out, out
    assert not (data_dir / "refundlens.db").exists()  # refused before anything was restored
    # Without a key to check it, the same backup restores: the note says nothing checked it.
    code, out = _cli(env, "backup", "restore", str(backup))
    assert code == 0 and "no key is set to check backups' signatures" in out, out
    shutil.rmtree(data_dir)
    for path, data in kept.items():
        path.write_bytes(data)

    # The signature removed; another key trusted.
    sig = (backup / "manifest.sig").read_bytes()
    (backup / "manifest.sig").unlink()
    code, out = _cli(restoring, "backup", "restore", str(backup))
    assert code == 2 and "backup.unsigned" in out, out
    (backup / "manifest.sig").write_bytes(sig)
    other = tmp_path / "other.pem"
    _, other_public = _cli({}, "backup", "keygen", "--out", str(other))
    code, out = _cli(
        {**env, "REFUNDLENS_BACKUP_TRUSTED_KEYS": other_public.strip()},
        "backup",
        "restore",
        str(backup),
    )
    assert code == 2 and "backup.bad_signature" in out, out

    # The features (not named by their hash, as blobs are) changed: refused, signed or not.
    (backup / "features" / "ab").mkdir(parents=True, exist_ok=True)
    (backup / "features" / "ab" / "ab12.npz").write_bytes(b"planted")
    code, out = _cli(restoring, "backup", "restore", str(backup))
    assert code == 2 and "backup.blob_corrupt" in out and "features" in out, out
    shutil.rmtree(backup / "features" / "ab")
    # Refused: nothing it copied stays in the data folder (the swapped file stayed in the cache).
    assert not [p for p in data_dir.rglob("*") if p.is_file() and p.name != "refundlens.db"]
    if data_dir.exists():
        shutil.rmtree(data_dir)

    # A blob added, named by its own sha256 (each blob is checked against its name alone): the
    # signed manifest lists the blobs, so it is refused, before the database.
    extra = b"a planted photo"
    name = hashlib.sha256(extra).hexdigest()
    (backup / "blobs" / name[:2]).mkdir(exist_ok=True)
    (backup / "blobs" / name[:2] / name[2:]).write_bytes(extra)
    code, out = _cli(restoring, "backup", "restore", str(backup))
    assert code == 2 and "backup.blob_corrupt" in out and "blobs" in out, out
    with sqlite3.connect(data_dir / "refundlens.db") as db:  # reached, found empty, left so
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    shutil.rmtree(data_dir)
    (backup / "blobs" / name[:2] / name[2:]).unlink()

    # As it was made: restored, the signature named.
    code, out = _cli(restoring, "backup", "restore", str(backup))
    assert code == 0 and f"manifest signed by {public}" in out, out


def test_a_damaged_blob_of_the_service_is_left_out_of_the_backup_and_named(
    tmp_path: Path,
) -> None:
    """Copied as it was, a blob that no longer matched its name went into the backup and its
    signed listing, and no restore could pass it (a review). It is left out and named."""
    import json

    data_dir = tmp_path / "data"
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": ""}
    assert _cli(env, "db", "upgrade")[0] == 0
    store = BlobStore(data_dir / "blobs")
    good, bad = store.put(b"a photo"), store.put(b"another photo")
    damaged = next(p for p in (data_dir / "blobs").rglob("*") if p.is_file() and bad[2:] in p.name)
    damaged.write_bytes(b"bit rot")
    code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
    assert code == 0 and "warning" in out and bad in out, out
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["damaged_blobs"] == [bad] and manifest["blobs"] == 1
    shutil.rmtree(data_dir)
    code, out = _cli(env, "backup", "restore", str(tmp_path / "backup"))
    assert code == 0, out
    assert BlobStore(data_dir / "blobs").exists(good) and not BlobStore(data_dir / "blobs").exists(
        bad
    )


def test_a_signing_key_that_cannot_be_read_is_a_coded_error(tmp_path: Path) -> None:
    """A key protected by a password stopped backup create with a traceback (a review)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = tmp_path / "locked.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    env = {
        "REFUNDLENS_DATA_DIR": str(tmp_path / "data"),
        "REFUNDLENS_DATABASE_URL": "",
        "REFUNDLENS_BACKUP_SIGNING_KEY_PATH": str(key),
    }
    assert _cli(env, "db", "upgrade")[0] == 0
    code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
    assert code == 2 and "backup.no_signing_key" in out, out


def test_a_restore_compares_the_log_with_the_checkpoints_kept_outside(tmp_path: Path) -> None:
    """A log rewritten before the backup (every hash recomputed) verifies alone; restore said
    "intact" where `audit verify` named the entry (a security review). It now reads the
    checkpoints as verify does, and says when the backup predates some of them."""
    import json

    from refundlens.store.sql import audit
    from refundlens.store.sql.models import AuditEntry

    from .test_audit_log import _rechain

    data_dir = tmp_path / "data"
    points = tmp_path / "elsewhere.log"
    env = {
        "REFUNDLENS_DATA_DIR": str(data_dir),
        "REFUNDLENS_DATABASE_URL": "",
        "REFUNDLENS_AUDIT_CHECKPOINT_PATH": str(points),
    }
    assert _cli(env, "db", "upgrade")[0] == 0
    database = Database(Settings(data_dir=str(data_dir)))
    with database.session() as session:
        audit.append(session, "rlk_rev", "decision.reject", claim_id="clm_1", details={"r": 1})
        audit.append(session, "system", "claim.analysed", claim_id="clm_1", details={})
    assert _cli(env, "audit", "checkpoint")[0] == 0
    code, out = _cli(env, "backup", "create", str(tmp_path / "honest"))
    assert code == 0, out
    with database.session() as session:
        audit.append(session, "system", "claim.analysed", claim_id="clm_2", details={})
    assert _cli(env, "audit", "checkpoint")[0] == 0
    with database.session() as session:
        rows = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        rows[0].action = "decision.approve"
        _rechain(session, rows)
    database.dispose()
    code, out = _cli(env, "backup", "create", str(tmp_path / "rewritten"))
    assert code == 0, out
    shutil.rmtree(data_dir)
    code, out = _cli(env, "backup", "restore", str(tmp_path / "rewritten"))
    assert code == 2 and "backup.audit_broken" in out and "checkpointed" in out, out
    # The honest backup restores; it predates the second checkpoint, and says so.
    shutil.rmtree(data_dir)
    code, out = _cli(env, "backup", "restore", str(tmp_path / "honest"))
    assert code == 0, out
    assert "1 checkpoints matched" in out and "1 checkpoint is of entries after" in out, out
    # Entries cut before the backup was taken (the head moved back): a checkpoint taken before
    # the backup saw them, and the restore says so (it read "intact": a review).
    with database.session() as session:
        rows = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        session.delete(rows[-1])
        _rechain(session, rows[:-1])
    database.dispose()
    import time

    time.sleep(1.1)  # the checkpoint's time is to the second
    code, out = _cli(env, "backup", "create", str(tmp_path / "cut"))
    assert code == 0, out
    shutil.rmtree(data_dir)
    code, out = _cli(env, "backup", "restore", str(tmp_path / "cut"))
    assert code == 2 and "backup.audit_broken" in out and "deleted" in out, out
    # A checkpoint file that is missing is no "no checkpoints" (an unmounted share).
    shutil.rmtree(data_dir)
    gone = {**env, "REFUNDLENS_AUDIT_CHECKPOINT_PATH": str(tmp_path / "unmounted" / "cp.log")}
    code, out = _cli(gone, "backup", "restore", str(tmp_path / "honest"))
    assert code == 2 and "audit." in out, out
    # A dump altered after it was taken, its manifest's hash recomputed: the head it recorded.
    manifest = json.loads((tmp_path / "honest" / "manifest.json").read_text())
    manifest["audit_head"] = "f" * 64
    (tmp_path / "honest" / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(data_dir)
    code, out = _cli(
        {**env, "REFUNDLENS_AUDIT_CHECKPOINT_PATH": ""},
        "backup",
        "restore",
        str(tmp_path / "honest"),
    )
    assert code == 2 and "manifest recorded" in out, out


def test_a_hostile_backup_folder_is_refused_before_anything_is_restored(tmp_path: Path) -> None:
    """Whoever can write a backup folder must not make restore hash one file and restore
    another, nor copy files from outside it through links (a secret key into features/)."""
    import json

    data_dir = tmp_path / "data"
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": ""}
    assert _cli(env, "db", "upgrade")[0] == 0
    BlobStore(data_dir / "blobs").put(b"a photo")
    backup = tmp_path / "backup"
    assert _cli(env, "backup", "create", str(backup))[0] == 0
    shutil.rmtree(data_dir)
    manifest_path = backup / "manifest.json"
    manifest = json.loads(manifest_path.read_text())

    # The manifest names a decoy to hash while restore would read database.sqlite.
    decoy = backup / "decoy.sqlite"
    shutil.copyfile(backup / "database.sqlite", decoy)
    manifest_path.write_text(json.dumps({**manifest, "database_file": "decoy.sqlite"}))
    code, out = _cli(env, "backup", "restore", str(backup))
    assert code == 2 and "backup.unreadable" in out and "decoy.sqlite" in out, out
    decoy.unlink()
    # Named by the manifest alone, the file restored is still only database.sqlite.
    manifest_path.write_text(json.dumps({**manifest, "database_file": "manifest.json"}))
    code, out = _cli(env, "backup", "restore", str(backup))
    assert code == 2 and "backup.unreadable" in out and "manifest.json" in out, out
    manifest_path.write_text(json.dumps(manifest))

    # A link among the files to copy.
    secret = tmp_path / "pii.key"
    secret.write_text("the PII key")
    (backup / "features").mkdir(exist_ok=True)
    (backup / "features" / "stolen").symlink_to(secret)
    code, out = _cli(env, "backup", "restore", str(backup))
    assert code == 2 and "backup.unreadable" in out and "link" in out, out
    assert not (data_dir / "features" / "stolen").exists()
    assert not (data_dir / "refundlens.db").exists()  # refused before the database, too


def test_a_blob_folder_linked_to_another_disk_is_backed_up(tmp_path: Path) -> None:
    """Moving <data_dir>/blobs to another disk and linking it is the usual way to grow it: the
    backup follows the link (only a restore refuses links)."""
    import json

    data_dir = tmp_path / "data"
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": ""}
    assert _cli(env, "db", "upgrade")[0] == 0
    elsewhere = tmp_path / "big-disk" / "blobs"
    BlobStore(elsewhere).put(b"a photo")
    (data_dir / "blobs").symlink_to(elsewhere, target_is_directory=True)
    code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
    assert code == 0, out
    assert json.loads((tmp_path / "backup" / "manifest.json").read_text())["blobs"] == 1


def test_backup_create_refuses_a_folder_without_a_database(tmp_path: Path) -> None:
    env = {"REFUNDLENS_DATA_DIR": str(tmp_path / "nothing"), "REFUNDLENS_DATABASE_URL": ""}
    code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
    assert code == 2 and "no refundlens database" in out, out


def test_the_data_and_its_backup_are_readable_by_the_service_user_only(tmp_path: Path) -> None:
    """Under the usual umask 022 the database, its WAL, photos, the PII key and a backup of them
    were readable by every account on the host."""
    import os
    import stat

    def others_can_read(root: Path) -> list[str]:
        return [
            f"{p}: {stat.filemode(p.stat().st_mode)}"
            for p in [root, *root.rglob("*")]
            if p.stat().st_mode & 0o077
        ]

    data_dir = tmp_path / "data"
    env = {"REFUNDLENS_DATA_DIR": str(data_dir), "REFUNDLENS_DATABASE_URL": ""}
    before = os.umask(0o022)
    try:
        assert _cli(env, "db", "upgrade")[0] == 0
        settings = Settings(data_dir=str(data_dir), database_url="")
        PiiCipher.from_settings(settings)
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "pii.key").write_bytes((data_dir / "pii.key").read_bytes())
        BlobStore(data_dir / "blobs").put(b"a photo")
        database = Database(settings)
        with database.session() as session:  # a write: SQLite makes its -wal file
            session.execute(text("CREATE TABLE scratch (x INTEGER)"))
        assert (data_dir / "refundlens.db-wal").exists()
        assert others_can_read(data_dir) == []
        database.dispose()
        code, out = _cli(env, "backup", "create", str(tmp_path / "backup"))
        assert code == 0, out
        assert others_can_read(tmp_path / "backup") == []
        shutil.rmtree(data_dir)
        code, out = _cli(env, "backup", "restore", str(tmp_path / "backup"))
        assert code == 0, out
        assert others_can_read(data_dir) == []
        # A database an earlier release made under the umask is made private when opened, and
        # a PII key put back by `cat key > pii.key` when it is read.
        (data_dir / "refundlens.db").chmod(0o644)
        key = (tmp_path / "secrets" / "pii.key").read_bytes()
        (data_dir / "pii.key").write_bytes(key)  # put back as `cat key > pii.key` does
        (data_dir / "pii.key").chmod(0o644)
        Database(settings).dispose()
        PiiCipher.from_settings(settings)
        assert others_can_read(data_dir) == []
    finally:
        os.umask(before)


def test_a_linked_file_is_not_made_private_through_its_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import os

    from refundlens.store.private import tighten

    target = tmp_path / "elsewhere.db"
    target.write_bytes(b"")
    target.chmod(0o644)
    link = tmp_path / "refundlens.db"
    link.symlink_to(target)
    tighten(link)
    assert os.stat(target).st_mode & 0o777 == 0o644  # a link's target is the operator's
    assert "is a link" in caplog.text
