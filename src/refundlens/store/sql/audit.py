"""The tamper-evident audit log: every entry hashes the one before it.

``entry_hash = sha256(prev_hash || canonical JSON of (seq, at, actor, action, claim_id,
assessment_id, details))``, with the first entry chained to 64 zeros. Changing, inserting or
deleting any row breaks every hash after it; :func:`verify` recomputes the chain and names the
first entry that does not match. Appends are serialised by updating the single ``audit_head`` row
first, so two writers never take the same sequence number.

To verify by hand: for each row in ``seq`` order, compute the hash above with the ISO 8601 UTC
time (``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``, whatever zone the database stores it in; SQLite
stores none) and JSON with sorted keys, no spaces (``","`` and ``":"`` between items) and every
character as itself (Chinese as UTF-8, not ``\\uXXXX`` escapes: Python's
``json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)``); the bytes hashed
are the UTF-8 of ``prev_hash`` as its 64 lower-case hex characters followed by that JSON.
Compare with ``entry_hash`` and the next row's ``prev_hash``. (An integrator's own verifier
failed on the first Chinese reason until it knew this.)

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
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from ...errors import RefundlensError
from .models import AuditEntry, AuditHead, utcnow

AUDIT_ACTIONS = frozenset(
    {
        "bank.imported",
        "bank.withdrawn",
        "buyer.sign_in_link",
        "buyer.signed_in",
        "capture.accepted",
        "capture.refused",
        "capture.repeats_on_file",
        "capture.token_issued",
        "capture.token_retired",
        "capture.token_spent",
        "claim.analysed",
        "claim.analysing",
        "claim.analysis_abandoned",
        "claim.analysis_failed",
        "claim.appealed",
        "claim.assigned",
        "claim.file_refused",
        "claim.final",
        "claim.submitted",
        "claim.to_review",
        "claim.window_closed",
        "claim.window_expired",
        "decision.approve",
        "decision.reject",
        "decision.partial",
        "decision.request_capture",
        "decision.escalate",
        "evidence.added",
        "key.created",
        "key.revoked",
        "order.contact_updated",
        "order.packing_video",
        "order.packing_video_failed",
        "order.packing_video_processed",
        "order.saved",
        "order.updated",
        "pii.resealed",
        "sku.saved",
        "tenant.saved",
    }
)
"""Every action an entry records: the pages and the report show each in the reader's language
(service/locales), its code beside it."""

__all__ = [
    "AUDIT_ACTIONS",
    "GENESIS",
    "AuditProblem",
    "Checkpoint",
    "append",
    "chained",
    "check_entry",
    "configured_checkpoints",
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


def _parse(text: str, path: str, number: int) -> Checkpoint:
    parts = text.split()
    if (
        len(parts) != 3
        or not parts[0].isascii()
        or not parts[0].isdigit()
        or len(parts[1]) != 64
        or any(c not in "0123456789abcdef" for c in parts[1])
    ):
        raise RefundlensError(
            "audit.bad_checkpoints",
            f"Line {number} of the audit checkpoints {path!r} is not 'seq hash time'.",
        )
    return Checkpoint(int(parts[0]), parts[1], parts[2])


def read_checkpoints(path: str, *, missing_ok: bool = False) -> list[Checkpoint]:
    """The checkpoints in ``path``, in the order written. A line that is not a checkpoint is an
    error, not skipped: the file is the evidence; so is a missing file unless ``missing_ok``
    (a mistyped path or an unmounted share must not read as "no checkpoints"). A last line
    without its newline is a write cut short, and ignored."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read()
    except FileNotFoundError:
        if missing_ok:
            return []
        raise RefundlensError(
            "audit.bad_checkpoints", f"The audit checkpoints {path!r} do not exist."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RefundlensError(
            "audit.bad_checkpoints", f"Cannot read the audit checkpoints {path!r}: {exc}"
        ) from None
    lines = text.split("\n")[:-1]  # the part after the last newline is no whole line
    return [_parse(line, path, n) for n, line in enumerate(lines, 1) if line.strip()]


def _last_checkpoint(path: str) -> Checkpoint | None:
    """The file's last whole checkpoint, read from its tail only (the file only grows)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 512))
            tail = handle.read().decode("ascii", "replace")
    except FileNotFoundError:
        return None
    lines = [line for line in tail.split("\n")[:-1] if line.strip()]
    return _parse(lines[-1], path, 0) if lines else None


def configured_checkpoints(session: Session, path: str) -> list[Checkpoint]:
    """The checkpoints at the configured ``audit_checkpoint_path`` (none where it is empty).
    Its file may be missing only while the log is empty: the tick writes it."""
    if not path:
        return []
    try:
        return read_checkpoints(path, missing_ok=current_head(session)[0] == 0)
    except RefundlensError as exc:
        raise RefundlensError(
            exc.code,
            exc.message + " (The scheduler's tick writes it: it is missing until the tick has "
            "run since audit_checkpoint_path was set, or where the path or its mount is wrong.)",
        ) from None


def record_checkpoint(session: Session, path: str) -> Checkpoint | None:
    """Append the log's head to ``path`` where it moved on since the file's last checkpoint;
    the checkpoint written, or None. A head behind the last checkpoint, or at it with another
    hash, is not written (that would bury the evidence): it is raised as ``audit.head_moved_back``
    for the operator, and ``verify`` names the entry."""
    seq, digest = current_head(session)
    last = _last_checkpoint(path)
    if seq == 0 or (last is not None and (last.seq, last.entry_hash) == (seq, digest)):
        return None
    if last is not None and seq <= last.seq:
        raise RefundlensError(
            "audit.head_moved_back",
            f"The audit head ({seq}) is behind or differs from the last checkpoint ({last.seq}, "
            f"taken at {last.at}): entries were cut or rewritten. Run `refundlens audit verify`.",
        )
    point = Checkpoint(seq, digest, utcnow().isoformat(timespec="seconds"))
    data = point.line().encode("ascii")
    try:
        handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    except OSError as exc:
        raise RefundlensError(
            "audit.checkpoint_unwritable",
            f"Cannot append to the audit checkpoints {path!r}: {exc.strerror} (does its folder "
            "exist, is its mount there, may this process write it?)",
        ) from None
    try:
        written = 0
        while written < len(data):
            written += os.write(handle, data[written:])
        os.fsync(handle)
    finally:
        os.close(handle)
    return point


_UNREADABLE = (ValueError, TypeError, StatementError)
"""What reading a row altered in the database raises: a time or JSON that does not parse
(ValueError), bytes SQLite cannot decode as UTF-8 (OperationalError, a StatementError)."""


def _unreadable(session: Session, after: int | None) -> AuditProblem:
    """The first entry after ``after`` that cannot be read back, read one at a time."""
    numbers = select(AuditEntry.seq).order_by(AuditEntry.seq)
    if after is not None:
        numbers = numbers.where(AuditEntry.seq > after)
    for seq in session.execute(numbers).scalars():
        try:
            session.execute(select(AuditEntry).where(AuditEntry.seq == seq)).scalars().all()
        except _UNREADABLE:
            session.rollback()
            return AuditProblem(
                seq, "the entry cannot be read: its stored time or details are malformed (altered)"
            )
    return AuditProblem((after or 0) + 1, "an entry cannot be read back (altered)")


def verify(
    session: Session, batch: int = 5000, checkpoints: Sequence[Checkpoint] = ()
) -> tuple[int, AuditProblem | None]:
    """Recompute the chain: (entries checked, the first problem or None). Every one of
    ``checkpoints`` must name an entry of the chain by its hash: one that differs was rewritten
    (its hash and every one after it recomputed), one past the end was cut off. They must also
    agree with each other: two hashes for one entry, or a head that moved back, are what a
    rewrite leaves in a file that kept being written."""
    wanted: dict[int, Checkpoint] = {}
    highest: Checkpoint | None = None
    for point in checkpoints:
        seen = wanted.setdefault(point.seq, point)
        if seen.entry_hash != point.entry_hash:
            return 0, AuditProblem(
                point.seq,
                f"two checkpoints of entry {point.seq} disagree ({seen.at} and {point.at}): "
                "the chain was rewritten between them",
            )
        if highest is not None and point.seq < highest.seq:
            return 0, AuditProblem(
                point.seq,
                f"the checkpoint taken at {point.at} is behind the one taken at {highest.at} "
                f"({point.seq} < {highest.seq}): entries were cut between them",
            )
        highest = point if highest is None or point.seq > highest.seq else highest
    prev, expected_seq, checked = GENESIS, 1, 0
    last = 0
    first = True
    while True:
        # The first batch starts at the lowest number, not after 0: a row written with a number
        # of 0 or below was shown and counted by the workflow while the chain skipped it.
        query = select(AuditEntry) if first else select(AuditEntry).where(AuditEntry.seq > last)
        try:
            rows = session.execute(query.order_by(AuditEntry.seq).limit(batch)).scalars().all()
        except _UNREADABLE:  # a stored time, text or details the database cannot decode
            session.rollback()
            return checked, _unreadable(session, None if first else last)
        first = False
        if not rows:
            break
        for row in rows:
            problem = check_entry(row, prev, expected_seq)
            kept = wanted.get(row.seq)
            if problem is None and kept is not None and kept.entry_hash != row.entry_hash:
                problem = AuditProblem(
                    row.seq,
                    f"the entry's hash is not the one checkpointed at {kept.at}: the chain was "
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
