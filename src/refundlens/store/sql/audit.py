"""The tamper-evident audit log: every entry hashes the one before it.

``entry_hash = sha256(prev_hash || canonical JSON of (seq, at, actor, action, claim_id,
assessment_id, details))``, with the first entry chained to 64 zeros. Changing, inserting or
deleting any row breaks every hash after it; :func:`verify` recomputes the chain and names the
first entry that does not match. Appends are serialised by updating the single ``audit_head`` row
first, so two writers never take the same sequence number.

To verify by hand: for each row in ``seq`` order, compute the hash above with the ISO 8601 UTC
time (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``) and JSON with sorted keys and no spaces; compare with
``entry_hash`` and the next row's ``prev_hash``.

The chain has no key: whoever can write to the database can rewrite an entry and recompute every
hash after it (and the head), or delete the last entries and move the head back, and the chain
still verifies. What catches that is a copy of the head kept where that writer cannot reach:
checkpoints (``seq entry_hash time`` lines, :func:`record_checkpoint`) appended to a file outside
the database (``audit_checkpoint_path``), which :func:`verify` compares with the chain: an entry
whose hash differs from its checkpoint was rewritten, a log that ends before a checkpoint was cut.
Entries after the last checkpoint are covered only by the chain (Crosby & Wallach 2009,
"Efficient data structures for tamper-evident logging", on why a log needs such commitments).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...errors import RefundlensError
from .models import AuditEntry, AuditHead, utcnow

__all__ = [
    "GENESIS",
    "AuditProblem",
    "Checkpoint",
    "append",
    "chained",
    "check_entry",
    "current_head",
    "entry_hash",
    "lock",
    "read_checkpoints",
    "record_checkpoint",
    "verify",
]

GENESIS = "0" * 64


def _iso(moment: dt.datetime) -> str:
    if moment.tzinfo is None:  # SQLite returns naive datetimes; they were written as UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    seq: int,
    at: dt.datetime,
    actor: str,
    action: str,
    claim_id: str | None,
    assessment_id: str | None,
    details: dict[str, Any],
) -> str:
    body = json.dumps(
        {
            "seq": seq,
            "at": _iso(at),
            "actor": actor,
            "action": action,
            "claim_id": claim_id,
            "assessment_id": assessment_id,
            "details": details,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def lock(session: Session) -> AuditHead:
    """Take the log's write lock (its head row) until the caller's transaction ends.

    Every change appends to this log, so writers already queue here; a writer that reads before
    it writes (the next claim number, an idempotency key) takes the lock first, so that what it
    reads cannot change before it commits. On SQLite every write transaction is already
    exclusive (BEGIN IMMEDIATE).
    """
    query = select(AuditHead).where(AuditHead.id == 1).with_for_update()
    head = session.execute(query).scalar_one_or_none()
    if head is None:
        # The first writers on an empty database race to create the head row; a plain INSERT
        # would fail every writer but one with a unique violation. ON CONFLICT DO NOTHING lets
        # the others wait for the winner's row and then lock it like any later writer.
        insert = _insert_for(session)
        session.execute(
            insert(AuditHead)
            .values(id=1, seq=0, entry_hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        head = session.execute(query).scalar_one()
    return head


def _insert_for(session: Session) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


def chained(
    prev_hash: str,
    seq: int,
    actor: str,
    action: str,
    claim_id: str | None,
    assessment_id: str | None,
    details: dict[str, Any] | None,
) -> AuditEntry:
    """The entry that follows ``prev_hash`` as number ``seq``, timed now, its hash computed."""
    details = json.loads(json.dumps(details or {}, default=str))
    at = utcnow()
    return AuditEntry(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        claim_id=claim_id,
        assessment_id=assessment_id,
        details=details,
        prev_hash=prev_hash,
        entry_hash=entry_hash(prev_hash, seq, at, actor, action, claim_id, assessment_id, details),
    )


def append(
    session: Session,
    actor: str,
    action: str,
    *,
    claim_id: str | None = None,
    assessment_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry in the caller's transaction (it commits or rolls back with the change)."""
    head = lock(session)
    entry = chained(head.entry_hash, head.seq + 1, actor, action, claim_id, assessment_id, details)
    head.seq, head.entry_hash = entry.seq, entry.entry_hash
    session.add(entry)
    session.flush()
    return entry


@dataclasses.dataclass(frozen=True)
class AuditProblem:
    seq: int
    problem: str


def check_entry(row: AuditEntry, prev: str, expected_seq: int) -> AuditProblem | None:
    """What is wrong with ``row`` as the entry after ``prev`` numbered ``expected_seq``."""
    if row.seq != expected_seq:
        return AuditProblem(expected_seq, f"entry {expected_seq} is missing (next is {row.seq})")
    if row.prev_hash != prev:
        return AuditProblem(row.seq, "prev_hash does not match the previous entry's hash")
    digest = entry_hash(
        row.prev_hash,
        row.seq,
        row.at,
        row.actor,
        row.action,
        row.claim_id,
        row.assessment_id,
        row.details,
    )
    if digest != row.entry_hash:
        return AuditProblem(row.seq, "the entry's content does not match its hash (altered)")
    return None


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """The log's head as it was seen at ``at`` (ISO 8601 UTC), kept outside the database."""

    seq: int
    entry_hash: str
    at: str

    def line(self) -> str:
        return f"{self.seq} {self.entry_hash} {self.at}\n"


def current_head(session: Session) -> tuple[int, str]:
    """(the last entry's number, its hash); (0, GENESIS) for an empty log."""
    row = session.get(AuditHead, 1)
    return (0, GENESIS) if row is None else (row.seq, row.entry_hash)


def read_checkpoints(path: str) -> list[Checkpoint]:
    """The checkpoints in ``path`` (none where the file does not exist yet); a line that is not
    a checkpoint is an error, not skipped: the file is the evidence."""
    try:
        with open(path, encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise RefundlensError(
            "audit.bad_checkpoints", f"Cannot read the audit checkpoints {path!r}: {exc}"
        ) from None
    out = []
    for number, text in enumerate(lines, 1):
        parts = text.split()
        if not parts:
            continue
        if (
            len(parts) != 3
            or not parts[0].isdigit()
            or len(parts[1]) != 64
            or any(c not in "0123456789abcdef" for c in parts[1])
        ):
            raise RefundlensError(
                "audit.bad_checkpoints",
                f"Line {number} of the audit checkpoints {path!r} is not 'seq hash time'.",
            )
        out.append(Checkpoint(int(parts[0]), parts[1], parts[2]))
    return out


def record_checkpoint(session: Session, path: str) -> Checkpoint | None:
    """Append the log's head to ``path`` where it moved since the file's last checkpoint; the
    checkpoint written, or None. Appended with O_APPEND and fsynced: a line is whole or absent."""
    seq, digest = current_head(session)
    known = read_checkpoints(path)
    if seq == 0 or (known and known[-1].seq == seq and known[-1].entry_hash == digest):
        return None
    point = Checkpoint(seq, digest, utcnow().isoformat(timespec="seconds"))
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(handle, point.line().encode("ascii"))
        os.fsync(handle)
    finally:
        os.close(handle)
    return point


def verify(
    session: Session, batch: int = 5000, checkpoints: Sequence[Checkpoint] = ()
) -> tuple[int, AuditProblem | None]:
    """Recompute the chain: (entries checked, the first problem or None). Each of
    ``checkpoints`` must name an entry of the chain by its hash: one that differs was rewritten
    (its hash and every one after it recomputed), one past the end was cut off."""
    wanted = {c.seq: c for c in checkpoints}
    prev, expected_seq, checked = GENESIS, 1, 0
    last = 0
    while True:
        rows = (
            session.execute(
                select(AuditEntry)
                .where(AuditEntry.seq > last)
                .order_by(AuditEntry.seq)
                .limit(batch)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for row in rows:
            problem = check_entry(row, prev, expected_seq)
            point = wanted.get(row.seq)
            if problem is None and point is not None and point.entry_hash != row.entry_hash:
                problem = AuditProblem(
                    row.seq,
                    f"the entry's hash is not the one checkpointed at {point.at}: the chain was "
                    "rewritten up to here (every hash after the change recomputed)",
                )
            if problem is not None:
                return checked, problem
            prev, expected_seq, last = row.entry_hash, row.seq + 1, row.seq
            checked += 1
    top = session.get(AuditHead, 1)
    if top is not None and (top.seq != last or top.entry_hash != prev):
        return checked, AuditProblem(
            last + 1,
            f"the log ends at {last} but the head says {top.seq} (entries deleted at the end)",
        )
    beyond = [c for c in checkpoints if c.seq > last]
    if beyond:
        point = max(beyond, key=lambda c: c.seq)
        return checked, AuditProblem(
            last + 1,
            f"the log ends at {last} but a checkpoint taken at {point.at} saw entry {point.seq}: "
            "entries were deleted at the end and the head moved back",
        )
    return checked, None
