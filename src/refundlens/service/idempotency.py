"""Idempotency-Key for evidence: a retried upload (a packing video sent again after a dropped
connection, a form sent twice) adds the evidence once and answers with it again.

The claims route keeps its own (it files a claim); both write the same table, under the same
key space, so that one key names one request of a key holder: the same key sent with another
request, a claim's or another piece of evidence, is refused (``idempotency.key_reused``, Stripe's
rule) rather than answered with what the first one made."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from ..errors import RefundlensError
from ..store.sql.models import Evidence, IdempotencyKey

__all__ = ["evidence_fingerprint", "key_for", "remember_evidence", "replayed_evidence"]


def key_for(key_id: str, header: str | None) -> str | None:
    """The stored key: the holder's key id and the header's value, hashed (one holder's keys
    never meet another's)."""
    return hashlib.sha256(f"{key_id}:{header}".encode()).hexdigest() if header else None


def evidence_fingerprint(
    claim_id: str, kind: str, statement: str, upload: tuple[str, bytes] | None
) -> str:
    """What an evidence request says: a retry says the same."""
    sent = (upload[0], hashlib.sha256(upload[1]).hexdigest()) if upload is not None else None
    return hashlib.sha256(
        repr(("evidence", claim_id, kind, statement, sent)).encode("utf-8", "surrogatepass")
    ).hexdigest()


def replayed_evidence(session: Session, key: str | None, fingerprint: str) -> Evidence | None:
    """The evidence an earlier request under ``key`` added, if it said the same; refused if the
    key was used for another request."""
    seen = session.get(IdempotencyKey, key) if key is not None else None
    if seen is None:
        return None
    item = session.get(Evidence, seen.evidence_id) if seen.evidence_id else None
    if item is None or seen.request_sha256 != fingerprint:
        raise RefundlensError(
            "idempotency.key_reused",
            "This Idempotency-Key was used for another request; use a new key for each new "
            "request.",
        )
    return item


def remember_evidence(session: Session, key: str | None, item: Evidence, fingerprint: str) -> None:
    """Keeps ``key`` for the evidence just added, in the same transaction: a concurrent retry
    that added it too fails on the key's uniqueness and rolls back."""
    if key is not None:
        session.add(
            IdempotencyKey(
                key=key, claim_id=item.claim_id, evidence_id=item.id, request_sha256=fingerprint
            )
        )
        session.flush()
