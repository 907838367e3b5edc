"""The audit log's chain under concurrent writers, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from refundlens.config import Settings
from refundlens.errors import RefundlensError
from refundlens.store import Database
from refundlens.store.sql import audit
from refundlens.store.sql.models import AuditEntry

from .service_support import postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(Settings(data_dir=str(tmp_path)))
        db.upgrade()
        yield db
        db.dispose()
    else:
        with postgres_database() as url:
            db = Database(Settings(data_dir=str(tmp_path), database_url=url))
            db.upgrade()
            yield db
            db.dispose()


def test_the_first_two_writers_on_an_empty_database_both_append(database: Database) -> None:
    """The first writer creates the log's head row; a second arriving before it commits waits."""
    first_appended = threading.Event()
    errors: list[BaseException] = []

    def slow_first() -> None:
        try:
            with database.session() as session:
                audit.append(session, "first", "test.first")
                first_appended.set()
                time.sleep(0.5)  # hold the transaction open while the second writer arrives
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
            first_appended.set()

    def second() -> None:
        first_appended.wait(10)
        try:
            with database.session() as session:
                audit.append(session, "second", "test.second")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=slow_first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with database.session() as session:
        rows = session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
        assert [(row.seq, row.actor) for row in rows] == [(1, "first"), (2, "second")]
        assert audit.verify(session) == (2, None)


def _rechain(session, rows: list[AuditEntry]) -> None:  # type: ignore[no-untyped-def]
    """What a writer with access to the database does to hide an edit: recompute every hash
    from the genesis on and move the head."""
    from refundlens.store.sql.models import AuditHead

    prev = audit.GENESIS
    for row in rows:
        row.prev_hash = prev
        row.entry_hash = audit.entry_hash(
            prev, row.seq, row.at, row.actor, row.action, row.claim_id, row.assessment_id,
            row.details,
        )  # fmt: skip
        prev = row.entry_hash
    top = session.get(AuditHead, 1)
    top.seq, top.entry_hash = (rows[-1].seq, prev) if rows else (0, audit.GENESIS)


def test_a_rewritten_or_cut_chain_verifies_alone_and_is_caught_by_a_checkpoint_kept_outside(
    database: Database, tmp_path: Path
) -> None:
    path = str(tmp_path / "elsewhere" / "audit-checkpoints.log")
    (tmp_path / "elsewhere").mkdir()
    with database.session() as session:
        assert audit.record_checkpoint(session, path) is None  # an empty log: nothing to keep
        audit.append(session, "rlk_rev", "decision.reject", claim_id="clm_1", details={"r": 1})
        audit.append(session, "rlk_rev", "claim.assigned", claim_id="clm_2", details={})
        audit.append(session, "system", "claim.analysed", claim_id="clm_3", details={"risk": 0.9})
    with database.session() as session:
        point = audit.record_checkpoint(session, path)
        assert point is not None and point.seq == 3
        assert audit.record_checkpoint(session, path) is None  # the head did not move
    points = audit.read_checkpoints(path)
    assert [p.seq for p in points] == [3]
    with database.session() as session:
        assert audit.verify(session, checkpoints=points) == (3, None)
        rows = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        rows[0].action, rows[0].details = "decision.approve", {"r": 2}
        _rechain(session, rows)
    with database.session() as session:
        # The chain alone cannot tell: every hash was recomputed.
        assert audit.verify(session) == (3, None)
        checked, problem = audit.verify(session, checkpoints=points)
        assert problem is not None and problem.seq == 3 and "rewritten" in problem.problem
        # The next tick does not write the new head over the evidence: it says so instead.
        with pytest.raises(RefundlensError) as moved:
            audit.record_checkpoint(session, path)
        assert moved.value.code == "audit.head_moved_back"
        assert audit.read_checkpoints(path) == points
        # A file that kept being written anyway holds two hashes for one entry: also named.
        forged = audit.Checkpoint(3, rows[-1].entry_hash, "later")
        checked, problem = audit.verify(session, checkpoints=[*points, forged])
        assert problem is not None and "disagree" in problem.problem
    with database.session() as session:
        rows = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        rows[0].action, rows[0].details = "decision.reject", {"r": 1}
        _rechain(session, rows)
    with database.session() as session:
        assert audit.verify(session, checkpoints=points) == (3, None)  # put back: it matches
        # Cut the last entry and move the head back: again invisible to the chain alone.
        rows = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        session.delete(rows[-1])
        _rechain(session, rows[:-1])
    with database.session() as session:
        assert audit.verify(session) == (2, None)
        checked, problem = audit.verify(session, checkpoints=points)
        assert checked == 2
        assert problem is not None and problem.seq == 3 and "deleted" in problem.problem
        # ... and a checkpoint of the cut head after the earlier one says the head moved back.
        behind = audit.Checkpoint(2, rows[1].entry_hash, "later")
        checked, problem = audit.verify(session, checkpoints=[*points, behind])
        assert problem is not None and "behind" in problem.problem


def test_a_row_numbered_zero_or_below_or_unreadable_is_named_by_verify(
    database: Database,
) -> None:
    """A row inserted with a number of 0 or below was shown on the report and counted by the
    workflow, and verify, reading from 1, called the chain intact (a security review); a row
    whose details the database cannot decode made verify crash instead of naming it."""
    from sqlalchemy import text

    with database.session() as session:
        audit.append(session, "rlk_rev", "decision.reject", claim_id="clm_1", details={"r": 1})
        audit.append(session, "system", "claim.analysed", claim_id="clm_1", details={})
    with database.session() as session:
        assert audit.verify(session) == (2, None)
        first = session.execute(select(AuditEntry).where(AuditEntry.seq == 1)).scalar_one()
        session.add(
            AuditEntry(
                seq=-1, at=first.at, actor="rlk_rev", action="decision.approve",
                claim_id="clm_1", assessment_id=None, details={"reason": "fabricated"},
                prev_hash=audit.GENESIS, entry_hash="0" * 64,
            )
        )  # fmt: skip
    with database.session() as session:
        checked, problem = audit.verify(session)
        assert checked == 0 and problem is not None and problem.seq == 1
        assert "missing (next is -1)" in problem.problem
        session.execute(text("DELETE FROM audit_log WHERE seq = -1"))
    with database.session() as session:
        assert audit.verify(session) == (2, None)
        if session.get_bind().dialect.name != "sqlite":
            return  # PostgreSQL's json type refuses text that is not JSON
        session.execute(text("UPDATE audit_log SET details = '{not json' WHERE seq = 2"))
    with database.session() as session:
        checked, problem = audit.verify(session)
        assert problem is not None and problem.seq == 2 and "cannot be read" in problem.problem
        session.execute(text("UPDATE audit_log SET details = '{}' WHERE seq = 2"))
        # Bytes SQLite cannot decode as UTF-8 stopped verify with a traceback (a review).
        session.execute(text("UPDATE audit_log SET actor = CAST(X'ff41' AS TEXT) WHERE seq = 1"))
    with database.session() as session:
        checked, problem = audit.verify(session)
        assert problem is not None and problem.seq == 1 and "cannot be read" in problem.problem


def test_the_checkpoint_file_is_evidence_a_line_that_is_not_one_is_an_error(
    tmp_path: Path,
) -> None:
    from refundlens.errors import RefundlensError

    path = tmp_path / "points.log"
    assert audit.read_checkpoints(str(path), missing_ok=True) == []
    # A missing file is no "no checkpoints" (a mistyped path, an unmounted share).
    with pytest.raises(RefundlensError) as missing:
        audit.read_checkpoints(str(path))
    assert missing.value.code == "audit.bad_checkpoints"
    # A last line cut short by a crash is no checkpoint, and no error.
    path.write_text(f"3 {'a' * 64} 2026-12-05T10:00:00+00:00\n\n4 {'b' * 20}")
    assert [p.seq for p in audit.read_checkpoints(str(path))] == [3]
    for bad in ("3 nothex 2026", f"x {'a' * 64} t", f"3 {'A' * 64} t", "3"):
        path.write_text(bad + "\n")
        with pytest.raises(RefundlensError) as refused:
            audit.read_checkpoints(str(path))
        assert refused.value.code == "audit.bad_checkpoints"


def test_the_tick_keeps_checkpoints_and_audit_verify_compares_the_chain_with_them(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    from refundlens.runtime import Runtime
    from refundlens.workers.tasks import tick

    points = tmp_path / "elsewhere.log"
    settings = Settings(data_dir=str(tmp_path / "data"), audit_checkpoint_path=str(points))
    runtime = Runtime(settings)
    runtime.db.upgrade()
    with runtime.db.session() as session:
        audit.append(session, "rlk_rev", "decision.reject", claim_id="clm_1", details={})
        audit.append(session, "rlk_rev", "claim.assigned", claim_id="clm_1", details={})
    assert (
        tick(runtime, requeue=lambda _c: None, requeue_video=lambda _v: None)["audit_checkpoint"]
        == 2
    )
    assert (
        tick(runtime, requeue=lambda _c: None, requeue_video=lambda _v: None)["audit_checkpoint"]
        is None
    )  # the head did not move: no new line
    assert len(points.read_text().splitlines()) == 1
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": settings.data_dir,
        "REFUNDLENS_AUDIT_CHECKPOINT_PATH": str(points),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "refundlens", "audit", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    copy = tmp_path / "copy.log"
    copy.write_text(cli("checkpoint").stdout)  # the file's own format
    for args in ((), ("--checkpoints", str(copy))):
        ok = cli("verify", *args)
        assert ok.returncode == 0 and "1 checkpoints matched" in ok.stdout, (args, ok)
    with runtime.db.session() as session:
        rows = list(session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars())
        rows[0].action = "decision.approve"
        _rechain(session, rows)
    runtime.db.dispose()
    for args in ((), ("--checkpoints", str(copy))):
        broken = cli("verify", *args)
        assert broken.returncode == 1 and "rewritten" in broken.stderr, (args, broken)
    points.write_text("not a checkpoint\n")
    damaged = cli("verify")
    assert damaged.returncode == 2 and "not 'seq hash time'" in damaged.stderr
    absent = cli("verify", "--checkpoints", str(tmp_path / "typo.log"))
    assert absent.returncode == 2 and "do not exist" in absent.stderr
    assert "error [audit.bad_checkpoints]" in absent.stderr  # the code, as errors.md says
    # A checkpoint that cannot be written stops neither the tick (logged, tried next tick) nor
    # says less than why on the command line.
    env["REFUNDLENS_AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "no-such-mount" / "points.log")
    unwritable = cli("checkpoint")
    assert unwritable.returncode == 2 and "Cannot append" in unwritable.stderr
    elsewhere = Runtime(
        settings.replace(audit_checkpoint_path=env["REFUNDLENS_AUDIT_CHECKPOINT_PATH"])
    )
    done = tick(elsewhere, requeue=lambda _c: None, requeue_video=lambda _v: None)
    assert done["audit_checkpoint"] is None
    elsewhere.db.dispose()


def test_every_action_the_code_records_is_listed_so_the_pages_can_name_it() -> None:
    """The pages and the report show each audit action in the reader's language (a reviewer's
    walkthrough read raw codes in the Chinese audit table): every action written is listed."""
    import re

    import refundlens
    from refundlens.cases import DECISIONS
    from refundlens.store.sql.audit import AUDIT_ACTIONS

    written = set()
    for path in Path(refundlens.__file__).parent.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for call in re.finditer(r"audit\.append\(", text):
            action = re.search(r'f?"([a-z_]+\.[a-z_{}]+)"', text[call.end() : call.end() + 200])
            if action and "{" not in action[1]:
                written.add(action[1])
    written |= {f"decision.{d}" for d in DECISIONS}
    assert len(written) >= 30
    assert written <= AUDIT_ACTIONS, sorted(written - AUDIT_ACTIONS)
