"""Evidence a merchant, a buyer or a reviewer adds to a claim (a file, a statement, or both)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.exc import IntegrityError

from ... import cases
from ...store.sql.models import Evidence
from ...store.sql.repositories import SqlStore
from .. import fields, idempotency
from ..deps import (
    ClaimId,
    KnownFields,
    RuntimeDep,
    Who,
    actor,
    read_upload,
    upload_slot,
    visible_claim,
)
from ..schemas import EvidenceAddedOut

__all__ = ["router"]

router = APIRouter()

# The web form checks the same list (fields.EVIDENCE_KINDS, from the workflow). Checked by the
# workflow, not by a pattern here: another kind is 400 evidence.bad_kind, with the kinds this
# party may send, as docs/errors.md says (a pattern answered 422 and a regular expression).
_KIND_HELP = f"One of {', '.join(fields.EVIDENCE_KINDS)} (a buyer: statement or other)."


@router.post(
    "/v1/claims/{claim_id}/evidence",
    status_code=201,
    response_model=EvidenceAddedOut,
    responses={
        200: {
            "model": EvidenceAddedOut,
            "description": "A retry with the same Idempotency-Key: the evidence it added.",
        }
    },
)
async def add_evidence(
    response: Response,
    claim_id: ClaimId,
    p: Who,
    runtime: RuntimeDep,
    kind: Annotated[str, Form(max_length=15, description=_KIND_HELP)],
    statement: Annotated[fields.Statement, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=200,
            description="A retry with the same key and the same request adds nothing and "
            "answers 200 with the evidence the first one added; another request under a used "
            "key is refused (idempotency.key_reused).",
        ),
    ] = None,
    *,
    _fields: KnownFields,
) -> EvidenceAddedOut:
    # A kind this party may not send is refused before its file is read (a buyer's "packing
    # video" was read up to video_max_bytes first).
    cases.check_evidence_kind(actor(p), kind)
    upload = (
        await read_upload(runtime.settings, file, video=kind == "packing_video")
        if file is not None
        else None
    )

    key = idempotency.key_for(p.key_id, idempotency_key)
    fingerprint = idempotency.evidence_fingerprint(claim_id, kind, statement, upload)

    def answer(item: Evidence, state: str) -> EvidenceAddedOut:
        return EvidenceAddedOut.model_validate(
            {"id": item.id, "kind": item.kind, "sha256": item.sha256, "claim_state": state}
        )

    def replayed() -> EvidenceAddedOut | None:
        with runtime.db.session() as s:
            claim = visible_claim(s, claim_id, p)
            item = idempotency.replayed_evidence(s, key, fingerprint)
            return None if item is None else answer(item, claim.state)

    def work() -> tuple[EvidenceAddedOut, int]:
        # A retry answers what the first request added, before any limit or state is checked
        # again: the evidence it sent counts once, even on a claim closed since.
        seen = replayed()
        if seen is not None:
            return seen, 200
        # A party at its limit makes the API decode nothing: counted first, in a short look.
        with runtime.db.session() as s:
            cases.check_evidence_room(
                SqlStore(s), actor(p), visible_claim(s, claim_id, p), runtime.settings
            )
        # The file is what its kind says, checked before a transaction is open (it decodes).
        cases.check_evidence(actor(p), kind, upload, runtime.settings)
        # Its own session, opened in the worker thread once the file is read: the claim is
        # found (and its row held) there, not by a dependency of the request.
        try:
            with runtime.db.session() as s:
                claim = visible_claim(s, claim_id, p)
                item = idempotency.replayed_evidence(s, key, fingerprint)
                if item is not None:  # a retry saved while this one was being read
                    return answer(item, claim.state), 200
                item = cases.add_evidence(
                    SqlStore(s),
                    runtime.blobs,
                    actor(p),
                    claim,
                    kind,
                    statement,
                    upload,
                    settings=runtime.settings,
                )
                idempotency.remember_evidence(s, key, item, fingerprint)
                return answer(item, claim.state), 201
        except IntegrityError:
            # Two requests under one key at once: the first committed its key, this one's
            # insert failed and rolled back, its evidence with it.
            seen = replayed() if key is not None else None
            if seen is None:
                raise
            return seen, 200

    # A statement decodes nothing: only a file waits for a decode slot.
    added, response.status_code = await run_in_threadpool(
        upload_slot(runtime, work) if upload is not None else work
    )
    return added
