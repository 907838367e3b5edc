"""The service's commands through real subprocesses: serve, db upgrade, keys create."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

from .service_support import free_port


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REFUNDLENS_DATA_DIR": str(tmp_path / "data"),
        "REFUNDLENS_OCR_ENABLED": "false",
    }


def test_db_upgrade_creates_the_database_and_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "refundlens", "db", "upgrade"],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "database at head" in result.stdout
    assert (tmp_path / "data" / "refundlens.db").exists()


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refundlens", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )


def _shop_with_order(session: Session) -> None:
    """Shop ``shop-a`` with SKU ``sku_1`` and order ``ord_1`` (buyer ``b1``), as rows."""
    from refundlens.store.sql.models import Order, Sku, Tenant

    session.add(Tenant(id="shop-a", kind="merchant", name="A"))
    session.flush()
    session.add(Sku(id="sku_1", merchant_id="shop-a", external_id="s", title="t"))
    session.flush()
    session.add(
        Order(id="ord_1", merchant_id="shop-a", external_id="o", sku_id="sku_1",
              buyer_id="b1", amount=10.0, currency="CNY")
    )  # fmt: skip


def test_keys_commands_refuse_to_make_a_database_or_a_tenant_of_their_own(tmp_path: Path) -> None:
    # Run where no server ever ran: no key, no new empty ./data, and the message says why.
    lost = _cli(tmp_path, "keys", "create", "--role", "admin")
    assert lost.returncode == 2 and "no refundlens database" in lost.stderr
    # In the CLI's one form, with its code (a new user's walkthrough found it without one).
    assert lost.stderr.startswith("refundlens: error [database.missing] "), lost.stderr
    assert not (tmp_path / "data").exists()
    for command in (("keys", "list"), ("audit", "verify"), ("report", "clm_x")):
        assert "no refundlens database" in _cli(tmp_path, *command).stderr, command
    assert not (tmp_path / "data").exists()
    assert _cli(tmp_path, "db", "upgrade").returncode == 0
    unknown = _cli(tmp_path, "keys", "create", "--role", "merchant", "--tenant", "no-such-shop")
    assert unknown.returncode == 2 and "no tenant no-such-shop" in unknown.stderr
    assert unknown.stderr.startswith("refundlens: error [tenant.not_found] "), unknown.stderr
    assert _cli(tmp_path, "keys", "create", "--role", "merchant").returncode == 2  # no --tenant
    # A reviewer assigned no shop sees no claim: made as asked, with a note that says so.
    alone = _cli(tmp_path, "keys", "create", "--role", "reviewer")
    assert alone.returncode == 0 and alone.stdout.startswith("rlk_")
    assert "assigned no shop" in alone.stderr and "--assign" in alone.stderr


def test_keys_are_created_listed_and_revoked(tmp_path: Path) -> None:
    assert _cli(tmp_path, "db", "upgrade").returncode == 0
    assert _cli(tmp_path, "tenants", "add", "shop-a").returncode == 0
    good = _cli(tmp_path, "keys", "create", "--role", "merchant", "--tenant", "shop-a")
    assert good.returncode == 0, good.stderr
    token = good.stdout.strip()
    assert token.startswith("rlk_") and "." in token
    key_id = token.split(".")[0]
    listed = _cli(tmp_path, "keys", "list")
    assert key_id in listed.stdout and "shop-a" in listed.stdout
    assert token.split(".")[1] not in listed.stdout  # never the secret
    assert _cli(tmp_path, "keys", "revoke", key_id).returncode == 0
    assert "yes" in _cli(tmp_path, "keys", "list").stdout
    assert _cli(tmp_path, "keys", "revoke", "rlk_nope").returncode == 2
    mistyped = _cli(tmp_path, "webhooks", "retry", "--tenant", "shop-b")
    assert mistyped.returncode == 2 and "no tenant shop-b" in mistyped.stderr
    retried = _cli(tmp_path, "webhooks", "retry", "--tenant", "shop-a")
    assert retried.returncode == 0 and "0 failed webhook event(s)" in retried.stdout
    # A buyer id the API's ids forbid would make a key that matches no order: refused, as there.
    hostile = _cli(tmp_path, "keys", "create", "--role", "buyer", "--subject", "b/../<i>x</i>")
    assert hostile.returncode == 2 and "[request.bad_field] subject:" in hostile.stderr
    assert (
        _cli(tmp_path, "keys", "create", "--role", "buyer", "--subject", "buyer-7").returncode == 0
    )
    from refundlens.config import Settings
    from refundlens.service.auth import AuthError, authenticate
    from refundlens.store import Database

    database = Database(Settings(data_dir=str(tmp_path / "data")))
    try:
        with database.session() as session:
            try:
                authenticate(session, f"Bearer {token}")
                revoked = False
            except AuthError:
                revoked = True
            # Each key's making is on the record, as its revoking is: an admin key made with
            # database access alone must leave a trace (a platform integrator's walkthrough).
            from sqlalchemy import select

            from refundlens.store.sql.models import AuditEntry

            entries = [
                (e.actor, e.action, e.details)
                for e in session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()
                if e.action.startswith("key.")
            ]
    finally:
        database.dispose()
    assert revoked
    assert entries[:2] == [
        ("cli", "key.created", {"key": key_id, "role": "merchant", "tenant": "shop-a"}),
        ("cli", "key.revoked", {"key": key_id, "role": "merchant"}),
    ]
    assert entries[2][:2] == ("cli", "key.created")
    assert entries[2][2]["subject"] == "buyer-7" and "secret" not in str(entries[2][2])


def test_serve_prints_the_url_and_an_admin_key_once_and_answers(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "refundlens", "serve", "--port", str(port)]
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path)
    )
    try:
        lines = []
        assert first.stdout is not None
        while not any("admin key" in line for line in lines):
            line = first.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert any(f"http://127.0.0.1:{port}" in line for line in lines)
        # Before the key: the migrations run, and none of Alembic's setup chatter.
        assert not any("setup plugin" in line or "Context impl" in line for line in lines)
        assert any("Running upgrade" in line for line in lines)
        key = next(line for line in lines if "admin key" in line).rsplit(" ", 1)[-1].strip()
        deadline = time.time() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.time() < deadline
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        claims = httpx.get(
            f"http://127.0.0.1:{port}/v1/claims", headers={"Authorization": f"Bearer {key}"}
        )
        assert claims.status_code == 200 and claims.json()["items"] == []
    finally:
        first.terminate()
        first.wait(timeout=60)
    # A second start on the same data prints no new admin key; nor, with a broker, the
    # broker's password (it was printed whole beside the database's masked one).
    seen = _banner(
        {**_env(tmp_path), "REFUNDLENS_BROKER_URL": "redis://:S3cretBroker@127.0.0.1:9/9"}
    )
    assert not any("admin key" in line for line in seen)
    assert any("celery at redis://:**@127.0.0.1:9/9" in line for line in seen), seen
    assert not any("S3cretBroker" in line for line in seen)


def _banner(env: dict[str, str]) -> list[str]:
    """What ``serve`` prints up to its banner and the two lines after it (where a first start
    prints the admin key); log lines (JSON) may come first. The server is stopped after."""
    served = subprocess.Popen(
        [sys.executable, "-m", "refundlens", "serve", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert served.stdout is not None
        seen: list[str] = []
        while not any("serving on" in line for line in seen):
            line = served.stdout.readline()
            assert line and len(seen) < 80, "".join(seen)
            seen.append(line)
        return seen + [served.stdout.readline() for _ in range(2)]
    finally:
        served.terminate()
        served.wait(timeout=60)


def test_serve_on_an_empty_database_server_prints_no_admin_key_but_how_to_make_one(
    tmp_path: Path,
) -> None:
    # The API's output goes to a log many people read: an integrator found a first-start admin
    # key there. On a database server the operator makes it (docs/service.md, step 8).
    from .service_support import postgres_database

    with postgres_database() as url:
        seen = _banner(
            {
                **_env(tmp_path),
                "REFUNDLENS_DATABASE_URL": url,
                "REFUNDLENS_PII_KEY_FILE_ALLOWED": "true",
            }
        )
        assert not any("admin key (shown once" in line for line in seen), seen
        assert any("refundlens keys create --role admin" in line for line in seen), seen


def test_db_index_captures_indexes_live_captures_accepted_before_they_were_indexed(
    tmp_path: Path,
) -> None:
    # A database from before live captures were indexed: a claim with a live photo and no
    # fingerprint of it. The command indexes it once; run again, it finds nothing to do.
    from importlib import resources

    from refundlens.config import Settings
    from refundlens.store import BlobStore, Database
    from refundlens.store.sql.models import (
        Claim,
        ClaimFingerprint,
        ClaimPhoto,
    )

    assert _cli(tmp_path, "db", "upgrade").returncode == 0
    photo = (resources.files("refundlens") / "samples" / "claim_genuine.jpg").read_bytes()
    sha = BlobStore(tmp_path / "data" / "blobs").put(photo)
    database = Database(Settings(data_dir=str(tmp_path / "data")))
    try:
        with database.session() as session:
            _shop_with_order(session)
            session.flush()
            session.add(
                Claim(id="clm_1", seq=1, order_id="ord_1", merchant_id="shop-a", buyer_id="b1",
                      claim_type="refund_only", amount=5.0, state="analysing")
            )  # fmt: skip
            session.flush()
            session.add(
                ClaimPhoto(id="pho_1", claim_id="clm_1", position=0, sha256=sha, name="live.jpg",
                           live_capture=True)
            )  # fmt: skip
        first = _cli(tmp_path, "db", "index-captures")
        assert first.returncode == 0 and "1 live capture picture(s) indexed" in first.stdout
        with database.session() as session:
            rows = session.query(ClaimFingerprint).filter_by(claim_id="clm_1").all()
            assert {r.photo_sha256 for r in rows} == {sha} and len(rows) >= 2  # full + crops
        again = _cli(tmp_path, "db", "index-captures")
        assert again.returncode == 0 and "0 live capture picture(s) indexed" in again.stdout
    finally:
        database.dispose()


def test_on_a_database_server_commands_refuse_an_empty_or_older_schema_and_say_so_in_a_line(
    tmp_path: Path,
) -> None:
    # A database server is changed by `db upgrade` once per release, never by whichever
    # command ran first; and a wrong URL is one line, not a traceback.
    import sqlalchemy as sa

    from .service_support import postgres_database

    with postgres_database() as url:
        env = {**_env(tmp_path), "REFUNDLENS_DATABASE_URL": url}

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "refundlens", *args],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip

        def tables() -> set[str]:
            engine = sa.create_engine(url)
            try:
                return set(sa.inspect(engine).get_table_names())
            finally:
                engine.dispose()

        for command in (("keys", "list"), ("keys", "create", "--role", "admin")):
            empty = cli(*command)
            assert empty.returncode == 2 and "(no schema)" in empty.stderr, empty.stderr
        assert tables() == set()
        assert cli("db", "upgrade").returncode == 0
        assert cli("keys", "list").returncode == 0
        engine = sa.create_engine(url)
        with engine.begin() as connection:  # as an older release left it
            connection.execute(sa.text("DROP TABLE sign_in_links"))
            connection.execute(sa.text("DROP INDEX ix_claim_fingerprints_created_at"))
            connection.execute(sa.text("ALTER TABLE decisions DROP COLUMN buyer_note"))
            connection.execute(sa.text("ALTER TABLE claims DROP COLUMN capture_request_note"))
            connection.execute(sa.text("ALTER TABLE idempotency_keys DROP COLUMN evidence_id"))
            connection.execute(sa.text("DROP TABLE leases"))
            connection.execute(sa.text("ALTER TABLE claim_fingerprints DROP COLUMN local_print"))
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0012'"))
        engine.dispose()
        behind = cli("keys", "list")
        assert behind.returncode == 2 and "[database.behind]" in behind.stderr, behind.stderr
        assert "refundlens db upgrade" in behind.stderr
        # The URL as PostgreSQL's tools write it works; a role that does not exist is one line.
        plain = url.replace("postgresql+psycopg://", "postgresql://")
        env["REFUNDLENS_DATABASE_URL"] = plain
        assert cli("db", "upgrade").returncode == 0
        stranger = sa.engine.make_url(url).set(username="no_such_role_x", password="pw-secret")
        env["REFUNDLENS_DATABASE_URL"] = stranger.render_as_string(hide_password=False)
        wrong = cli("keys", "list")
        assert wrong.returncode == 2 and "[database.unreachable]" in wrong.stderr, wrong.stderr
        assert "Traceback" not in wrong.stderr and len(wrong.stderr.splitlines()) == 1
        assert "pw-secret" not in wrong.stderr


def test_a_worker_refuses_to_start_on_a_data_folder_that_lacks_the_photos(tmp_path: Path) -> None:
    # It would take every analysis and fail each one (the photos are elsewhere).
    import shutil

    from refundlens.config import Settings

    from .test_cases import _claim_awaiting_capture

    _claim_awaiting_capture(Settings(data_dir=str(tmp_path / "data")))
    shutil.rmtree(tmp_path / "data" / "blobs")
    env = {**_env(tmp_path), "REFUNDLENS_BROKER_URL": "redis://127.0.0.1:1/0"}
    refused = subprocess.run(
        [sys.executable, "-m", "refundlens", "worker"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert "[worker.wrong_data_dir]" in refused.stderr and "REFUNDLENS_DATA_DIR" in refused.stderr


def test_a_database_url_that_cannot_be_used_is_one_line_that_never_shows_its_password(
    tmp_path: Path,
) -> None:
    cases = {
        # An unencoded '@' in the password: the driver would quote the rest as the host.
        "postgres://alice:p@ss#word@127.0.0.1/db": ("[database.bad_url]", "ss#word"),
        # A password in the query, to a port where no server listens.
        "postgresql+psycopg://alice@127.0.0.1:1/db?password=hunter22": (
            "[database.unreachable]",
            "hunter22",
        ),
        "postgresql+psycopg2://alice:hunter23@127.0.0.1/db": ("[database.bad_url]", "hunter23"),
        "postgresql+psycopg://alice@127.0.0.1:notaport/db": ("[database.bad_url]", "Traceback"),
    }
    for url, (code, never) in cases.items():
        result = subprocess.run(
            [sys.executable, "-m", "refundlens", "keys", "list"],
            capture_output=True, text=True, timeout=120,
            env={**_env(tmp_path), "REFUNDLENS_DATABASE_URL": url},
        )  # fmt: skip
        assert result.returncode == 2 and code in result.stderr, (url, result.stderr)
        assert never not in result.stderr and len(result.stderr.splitlines()) == 1, url


def test_serve_and_worker_on_a_database_server_refuse_to_seal_with_the_data_folders_key_file(
    tmp_path: Path,
) -> None:
    # That file would sit with the blobs every host mounts and backs up, beside what it seals.
    env = {
        **_env(tmp_path),
        "REFUNDLENS_DATABASE_URL": "postgresql+psycopg://refundlens@127.0.0.1:1/refundlens",
        "REFUNDLENS_BROKER_URL": "redis://127.0.0.1:1/0",
    }
    env.pop("REFUNDLENS_PII_KEY", None)
    for command in (("serve", "--port", "1"), ("worker",)):
        refused = subprocess.run(
            [sys.executable, "-m", "refundlens", *command],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert refused.returncode == 2, refused.stderr
        assert "[settings.pii_key_required]" in refused.stderr
    assert not (tmp_path / "data" / "pii.key").exists()
    # Allowed for a trial, it goes on (and stops at the database nobody runs there).
    trial = subprocess.run(
        [sys.executable, "-m", "refundlens", "worker"],
        capture_output=True, text=True, timeout=120,
        env={**env, "REFUNDLENS_PII_KEY_FILE_ALLOWED": "true"},
    )  # fmt: skip
    assert trial.returncode == 2 and "[database.unreachable]" in trial.stderr, trial.stderr


def test_the_packing_video_command_keeps_the_apis_limits(tmp_path: Path) -> None:
    """The CLI registers a packing video as the API does: the same video sent again is answered
    as it is (decoded once), and an order over ``max_packing_videos_per_order`` is refused."""
    from refundlens.config import Settings
    from refundlens.store import Database
    from refundlens.store.sql.models import AuditEntry, PackingVideo

    from .test_video import packing_video

    assert _cli(tmp_path, "db", "upgrade").returncode == 0
    database = Database(Settings(data_dir=str(tmp_path / "data")))
    try:
        with database.session() as session:
            _shop_with_order(session)
        first, second = tmp_path / "first.mp4", tmp_path / "second.mp4"
        packing_video(first, seconds=3.0)
        packing_video(second, seconds=4.0)
        made = _cli(tmp_path, "packing-video", "ord_1", str(first))
        assert made.returncode == 0, made.stderr
        assert "kept as references for ord_1" in made.stdout and "sent before" not in made.stdout
        with database.session() as session:
            row = session.query(PackingVideo).filter_by(order_id="ord_1").one()
            assert row.queued_at is not None  # a server on the same data does not take it too
            row.status = "pending"  # as an interrupted run leaves it
        again = _cli(tmp_path, "packing-video", "ord_1", str(first))
        assert again.returncode == 0 and "(sent before)" in again.stdout, again.stderr
        assert "kept as references" in again.stdout  # taken up again, not left pending
        env = {**_env(tmp_path), "REFUNDLENS_MAX_PACKING_VIDEOS_PER_ORDER": "1"}
        refused = subprocess.run(
            [sys.executable, "-m", "refundlens", "packing-video", "ord_1", str(second)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert refused.returncode != 0 and "max_packing_videos_per_order" in refused.stderr
        # Over video_max_bytes: refused by its size, before the file is read.
        small = {**_env(tmp_path), "REFUNDLENS_VIDEO_MAX_BYTES": "1000"}
        too_large = subprocess.run(
            [sys.executable, "-m", "refundlens", "packing-video", "ord_1", str(second)],
            capture_output=True, text=True, env=small, timeout=120,
        )  # fmt: skip
        assert too_large.returncode == 2 and "video_max_bytes" in too_large.stderr
        with database.session() as session:
            assert session.query(PackingVideo).filter_by(order_id="ord_1").count() == 1
            actions = [a.action for a in session.query(AuditEntry).all()]
            assert actions.count("order.packing_video") == 1
    finally:
        database.dispose()


def test_every_password_of_a_failover_broker_list_is_masked() -> None:
    # kombu masks the first URL of "a;b" alone, and raised on a sentinel list (a review).
    from refundlens.cli import _without_passwords

    shown = _without_passwords("amqp://u:S3cret1@h1//;amqp://u:S3cret2@h2//")
    assert "S3cret" not in shown and shown.count("**") == 2
    assert "pw" not in _without_passwords("sentinel://:pw@h1:26379;sentinel://:pw@h2:26379")
    assert _without_passwords("redis://localhost:6379/0") == "redis://localhost:6379/0"


def test_serve_and_check_refuse_a_bad_policy_in_one_line_before_creating_anything(
    tmp_path: Path,
) -> None:
    # A new user's walkthrough: a misspelt claim type in the routing amounts made serve print
    # the first admin key, then a traceback of 60 lines (the database already created, the key
    # never shown again); check passed the same file; a misspelt rule name was ignored.
    import json

    for text, said in (
        ("routing:\n  buyer_claims_max: {refund-only: 2}\n", "'refund-only' is not a claim type"),
        ("routing:\n  buyer_claim_max: {refund_only: 2}\n", "unknown key(s) buyer_claim_max"),
    ):
        policy = tmp_path / "policy.yaml"
        policy.write_text(text, encoding="utf-8")
        env = {**_env(tmp_path), "REFUNDLENS_POLICY_PATH": str(policy)}
        for args in (("serve", "--port", str(free_port())), ("check", "--json", "x.jpg")):
            done = subprocess.run(
                [sys.executable, "-m", "refundlens", *args],
                capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path,
            )  # fmt: skip
            assert done.returncode == 2, (args, done.stdout, done.stderr)
            assert done.stderr.strip().splitlines() == [
                line for line in done.stderr.strip().splitlines() if "policy.invalid" in line
            ], done.stderr
            assert said in done.stderr and "Traceback" not in done.stderr
            assert "admin key" not in done.stdout
        assert not list(tmp_path.glob("data/*.db")), json.dumps(
            sorted(map(str, tmp_path.rglob("*")))
        )
