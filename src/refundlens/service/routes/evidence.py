"""Evidence a merchant, a buyer or a reviewer adds to a claim (a file, a statement, or both)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.concurrency import run_in_threadpool

from ... import cases
from ...store.sql.repositories import SqlStore
from .. import fields
from ..deps import ClaimId, RuntimeDep, Who, actor, read_upload, upload_slot, visible_claim
from ..schemas import EvidenceAddedOut

__all__ = ["router"]

router = APIRouter()

# The web form checks the same list (fields.EVIDENCE_KINDS, from the workflow). Checked by the
# workflow, not by a pattern here: another kind is 400 evidence.bad_kind, with the kinds this
# party may send, as docs/errors.md says (a pattern answered 422 and a regular expression).
_KIND_HELP = f"One of {', '.join(fields.EVIDENCE_KINDS)} (a buyer: statement or other)."


@router.post("/v1/claims/{claim_id}/evidence", status_code=201, response_model=EvidenceAddedOut)
async def add_evidence(
    claim_id: ClaimId,
    p: Who,
    runtime: RuntimeDep,
    kind: Annotated[str, Form(max_length=15, description=_KIND_HELP)],
    statement: Annotated[fields.Statement, Form()] = "",
    file: Annotated[UploadFile | None, File()] = None,
) -> EvidenceAddedOut:
    # A kind this party may not send is refused before its file is read (a buyer's "packing
    # video" was read up to video_max_bytes first).
    cases.check_evidence_kind(actor(p), kind)
    upload = (
        await read_upload(runtime.settings, file, video=kind == "packing_video")
        if file is not None
        else None
    )

    def work() -> EvidenceAddedOut:
        # A party at its limit makes the API decode nothing: counted first, in a short look.
        with runtime.db.session() as s:
            cases.check_evidence_room(
                SqlStore(s), actor(p), visible_claim(s, claim_id, p), runtime.settings
            )
        # The file is what its kind says, checked before a transaction is open (it decodes).
        cases.check_evidence(actor(p), kind, upload, runtime.settings)
        # Its own session, opened in the worker thread once the file is read: the claim is
        # found (and its row held) there, not by a dependency of the request.
        with runtime.db.session() as s:
            claim = visible_claim(s, claim_id, p)
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
            return EvidenceAddedOut.model_validate(
                {
                    "id": item.id,
                    "kind": item.kind,
                    "sha256": item.sha256,
                    "claim_state": claim.state,
                }
            )

    # A statement decodes nothing: only a file waits for a decode slot.
    return await run_in_threadpool(upload_slot(runtime, work) if upload is not None else work)
