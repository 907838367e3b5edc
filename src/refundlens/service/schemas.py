"""What the API reads and answers, as pydantic models (apart from the SQLAlchemy tables).

Every route names its answer with ``response_model``, so the OpenAPI document (docs/openapi.json)
types every response. The models list every key the API has always sent, in the same order, and
forbid others: a view that grows a key fails its tests instead of losing the key silently.
The sets of words (states, actions, decisions, claim and evidence kinds) are those of ``cases``
and ``fusion``; tests/test_service_schemas.py checks that they stay the same.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..cases import EvidenceKind
from ..cases.states import ClaimState
from ..fusion import Action
from . import fields

__all__ = [
    "Action",
    "AppealIn",
    "AssignIn",
    "AuditProblemOut",
    "AuditVerifyOut",
    "BuyerClaimItemOut",
    "BuyerClaimOut",
    "BuyerDecisionOut",
    "BuyerStatusOut",
    "CaptureTokenOut",
    "ClaimAnswer",
    "ClaimItemOut",
    "ClaimOut",
    "ClaimPageOut",
    "ClaimState",
    "ClaimType",
    "DecisionIn",
    "DecisionOut",
    "ErrorOut",
    "EvidenceAddedOut",
    "EvidenceKind",
    "EvidenceOut",
    "HealthOut",
    "OrderDetailOut",
    "OrderIn",
    "OrderOut",
    "PackingVideoOut",
    "PackingVideoStateOut",
    "PhotoOut",
    "ReadyOut",
    "ReferenceOut",
    "SignInLinkOut",
    "SkuOut",
    "SkuPageOut",
    "TenantIn",
    "TenantOut",
]

ClaimType = Literal["refund_only", "return_and_refund", "repair"]
"""``routing.CLAIM_TYPES`` (tests/test_service_schemas.py keeps the two the same)."""

# Words read back from stored rows are plain strings that the schema describes: rows kept from
# before a word was checked (the web form once took any evidence kind) must still be readable,
# never a 500. What the API writes itself (states, actions, claim types) is typed.
_STORED_KIND = (
    "packing_video | reference_photo | statement | other (sent as evidence), unboxing_video "
    "(sent with the claim), capture_clip (a live capture's clip from the capture page); rows "
    "kept from before kinds were checked may say otherwise."
)
_STORED_OUTCOME = "approved | rejected | partial"

# Times are sent as the API has always written them (ISO 8601 with the offset, "+00:00"), so they
# are strings here; the schema says they are date-times.
Moment = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what clients send ---


class _In(BaseModel):
    # A misspelt field ("shipped" for shipped_at) was dropped and answered 201: an order with no
    # times, a decision without its note to the buyer (an integrator's walkthrough).
    model_config = ConfigDict(extra="forbid")


class TenantIn(_In):
    id: str = Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,39}$", max_length=40)  # no dot first
    kind: str = Field(pattern=r"^(platform|merchant)$", max_length=8)
    name: fields.Name
    webhook_url: fields.Url | None = None
    webhook_secret: fields.Secret | None = None


class OrderIn(_In):
    external_id: fields.ExternalId
    sku_id: fields.Id
    buyer_id: fields.Id
    amount: fields.Finite = Field(ge=0)
    currency: fields.Currency = "CNY"
    shipped_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    buyer: dict[fields.BuyerDetail, fields.BuyerDetail] | None = Field(
        default=None,
        max_length=fields.MAX_BUYER_DETAILS,
        description="Name, phone, address: encrypted at rest.",
    )
    merchant_id: fields.Id | None = None


class DecisionIn(_In):
    decision: fields.Word = Field(
        description="approve | reject | partial | request_capture | escalate"
    )
    reason: fields.Reason = Field(
        default="", description="Required in words: empty or missing is decision.reason_required."
    )
    amount: fields.Finite | None = None
    forgery: bool | None = Field(
        default=None,
        description="With reject only: whether the evidence was found forged (default true "
        "where the claim holds a photo or unboxing video from the buyer; a claim with neither "
        "has nothing to be forged: false, and true is decision.bad_value). "
        "Only then do the claim's photos join the forgery bank and the rejection count in the "
        "buyer's record; false is a rejection for another reason (not eligible, the buyer's "
        "own doing). With another decision: decision.bad_value.",
    )
    buyer_note: fields.Reason = Field(
        default="",
        description="With approve, reject or partial: what the buyer is told, on its page and "
        "in its view of the claim (the reason is for the platform and the merchant, and may "
        "name findings; the buyer never reads it). Empty: the buyer sees the outcome alone. "
        "With request_capture: what the buyer should photograph (capture_ask in its view, on "
        "its page and the capture page). With escalate: decision.note_not_allowed.",
    )
    assessment_id: fields.IdOrNone | None = Field(
        default=None,
        description="The analysis the decision was made on (the claim's assessment_id as "
        'read; "" where it had none): refused with 409 claim.changed where the claim was '
        "analysed again since (a live photo answered and analysed meanwhile). Omitted: not "
        "checked.",
    )


class AppealIn(_In):
    reason: fields.Reason = Field(
        default="", description="Required in words: empty or missing is appeal.reason_required."
    )


class AssignIn(_In):
    reviewer: fields.Id | None = Field(
        default=None,
        description="A reviewer's API key id (rlk_...); null returns the claim to the pool.",
    )


# --- what the API answers ---


class ErrorOut(BaseModel):
    """Every error the API answers: a stable code (docs/errors.md) and one sentence."""

    class Detail(BaseModel):
        code: str
        message: str
        file: dict[str, str | int] | None = Field(
            default=None, description="Which file of an upload with several: field, index, name."
        )
        facts: dict[str, object] | None = Field(
            default=None,
            description="What a refused file's metadata said (an animated generator output "
            "names its generator under `provenance`); the file is still refused.",
        )

    error: Detail


class HealthOut(_Out):
    status: Literal["ok"]
    version: str
    database: str = Field(description="The database's dialect: sqlite or postgresql.")
    tasks: Literal["celery", "in-process"]


class ReadyOut(_Out):
    status: Literal["ready", "not_ready"]
    checks: dict[str, str] = Field(
        description="database, migrations, blobs (and broker): 'ok' or what failed."
    )


class TenantOut(_Out):
    id: str
    kind: str
    name: str
    webhook_url: str | None = Field(
        default=None, description="Where the tenant's events are posted; null: none."
    )
    webhook_secret_set: bool = Field(
        default=False, description="Whether a signing secret is on file (it is never answered)."
    )


class TenantPageOut(_Out):
    items: list[TenantOut]
    next_cursor: str | None = Field(
        description="Send as ?cursor= for the next page; null at the end."
    )


class ReferenceOut(_Out):
    sha256: str
    name: str
    pdq: str


class SkuOut(_Out):
    id: str
    external_id: str
    references: list[ReferenceOut]
    merchant_id: str = ""
    title: str = ""


class SkuPageOut(_Out):
    items: list[SkuOut]
    next_cursor: str | None = Field(
        description="Send as ?cursor= for the next page; null at the end."
    )


class OrderOut(_Out):
    id: str
    external_id: str
    merchant_id: str
    buyer_id: str


class PackingVideoOut(_Out):
    order_id: str
    video_id: str
    video_sha256: str
    status: Literal["pending", "done"] = Field(
        description="pending for a new video; a video this order already has (the same bytes, "
        "not failed) is answered as it is, pending or done, and decoded once."
    )


class PackingVideoStateOut(_Out):
    video_id: str
    video_sha256: str
    name: str
    status: Literal["pending", "done", "failed"]
    error: str = Field(description="Why it could not be used (status failed), else empty.")
    frames_kept: int = Field(description="Key frames kept as the order's references.")
    created_at: str | None
    finished_at: str | None


class OrderDetailOut(OrderOut):
    sku_id: str
    amount: float
    currency: str
    shipped_at: str | None
    delivered_at: str | None
    packing_videos: list[PackingVideoStateOut]


class PhotoOut(_Out):
    name: str
    sha256: str
    live_capture: bool
    damage_box: list[float] | None = Field(
        default=None,
        description="The buyer's box around the damage: [left, top, right, bottom], fractions "
        "of the photo's width and height; null when not marked.",
    )


Outcome = Literal["approved", "rejected", "partial"]
_OUTCOME = (
    "How the claim ended while it stands decided (state approved, decided or final): approved "
    "(by the analysis or a person), rejected or partial; null while it is open, an appeal or a "
    "live photo included."
)
_REFUND = (
    "What the outcome pays, in currency: the claimed amount if approved, the decided amount if "
    "partial, 0 if rejected; null while the claim is open."
)


class _ClaimCommon(_Out):
    """What every principal who may see the claim is told of it."""

    id: str
    order_id: str
    merchant_id: str
    buyer_id: str
    type: ClaimType
    reason: str
    amount: float
    currency: str = Field(description="The order's currency (ISO 4217), the amounts' too.")
    state: ClaimState
    deadline_at: Moment | None
    created_at: Moment | None
    photos: list[PhotoOut]


class EvidenceOut(_Out):
    id: str
    kind: str = Field(description=_STORED_KIND)
    by: str = Field(description="The role of whoever sent it.")
    sha256: str | None
    name: str
    statement: str
    at: Moment | None = Field(description="When it was added.")


class DecisionOut(_Out):
    outcome: str = Field(description=_STORED_OUTCOME)
    amount: float | None
    reason: str
    forgery: bool = Field(
        description="A rejection whose person found the evidence forged (banked, counted in "
        "the buyer's record); false for every other decision."
    )
    buyer_note: str | None = Field(description="What the buyer was told, or null.")
    by: str = Field(description="The API key id of the person who decided.")
    at: Moment | None


class AppealOut(_Out):
    reason: str = Field(description="What the appellant wrote.")
    by_role: str | None = Field(
        description="buyer or merchant (admin for the platform); null for appeals recorded "
        "before the role was."
    )
    by: str = Field(description="The API key id that appealed.")
    at: Moment | None


class ClaimOut(_ClaimCommon):
    """A claim as the platform, a reviewer or the merchant sees it."""

    risk: float | None
    action: Action | None
    outcome: Outcome | None = Field(description=_OUTCOME)
    refund: float | None = Field(description=_REFUND)
    routing_reason: str
    routing_reason_zh: str = Field(
        description="routing_reason in Chinese (zh-CN), as the web page shows it; the English "
        "text where no translation is known."
    )
    assigned_to: str | None
    updated_at: Moment | None = Field(
        description="When the claim last changed, as the list's items say (a sync keeps the "
        "answer with the newer one)."
    )
    assessment_id: str | None = Field(
        default=None,
        description="The id of the analysis in assessment (null before the first): send it "
        "with a decision (assessment_id) to have the decision refused if a newer one came in.",
    )
    assessment: dict[str, Any] | None = Field(
        description="The latest assessment: the versioned JSON report "
        "(src/refundlens/report/schema/assessment-1.json); null before the first analysis."
    )
    evidence: list[EvidenceOut]
    decisions: list[DecisionOut]
    appeals: list[AppealOut] = Field(description="Each appeal, oldest first, with its reason.")


class BuyerStatusOut(_Out):
    en: str
    zh: str
    asked: Literal["live_capture"] | None = Field(
        description="What the buyer should do now, or null."
    )


class BuyerDecisionOut(_Out):
    outcome: str = Field(description=_STORED_OUTCOME)
    amount: float | None
    note: str | None = Field(description="What the person deciding wrote for the buyer, or null.")
    reviewed_again: bool = Field(
        description="The claim was reopened since (an appeal, a live photo): this decision is "
        "being reviewed again; status says where the claim stands."
    )


class BuyerClaimOut(_ClaimCommon):
    """A claim as its buyer sees it: no finding, fact, risk or picture (cases/buyer.py)."""

    status: BuyerStatusOut
    decision: BuyerDecisionOut | None
    capture_ask: str | None = Field(
        description="While a live capture is asked: what the person who asked wrote for the "
        "buyer to photograph, or null."
    )


ClaimAnswer = Annotated[
    ClaimOut | BuyerClaimOut,
    Field(
        title="ClaimAnswer",
        description="The claim as the key's role sees it: ClaimOut for the platform, a reviewer "
        "or the merchant; BuyerClaimOut for its buyer.",
    ),
]


class _ClaimItem(_Out):
    id: str
    order_id: str
    type: ClaimType
    state: ClaimState
    amount: float
    currency: str = Field(description="The order's currency (ISO 4217), the amount's too.")
    merchant_id: str
    deadline_at: Moment | None
    created_at: Moment | None


class ClaimItemOut(_ClaimItem):
    risk: float | None
    action: Action | None
    outcome: Outcome | None = Field(description=_OUTCOME)
    refund: float | None = Field(description=_REFUND)
    updated_at: Moment | None = Field(
        description="When the claim last changed (state, action, deadline, reviewer): keep the "
        "largest seen and ask ?updated_since= with it next time. Not told to a buyer (it would "
        "say how long the analysis took)."
    )


class BuyerClaimItemOut(_ClaimItem):
    """A buyer is never shown the risk or the machine's action."""


class ClaimPageOut(_Out):
    items: list[ClaimItemOut | BuyerClaimItemOut]
    next_cursor: str | None = Field(
        description="Send as ?cursor= for the next page; null at the end."
    )


class EvidenceAddedOut(_Out):
    id: str
    kind: EvidenceKind
    sha256: str | None
    claim_state: ClaimState


class SignInLinkOut(_Out):
    url: str = Field(
        description="The page that logs the buyer in, on this server (prefix the server's public "
        "address): it works once, until expires_at, after the buyer presses its button."
    )
    expires_at: Moment


class CaptureTokenOut(_Out):
    token: str
    expires_at: Moment
    url: str | None = Field(
        description="The capture page for this token, on this server: the link to send the "
        "buyer's phone (the platform's own app uses the token with POST .../capture instead). "
        "None where the platform signs its app's captures (capture_hmac_key or "
        "capture_c2pa_trust_anchors_path): the page can sign nothing, so it takes none."
    )


class AuditProblemOut(_Out):
    seq: int
    problem: str


class AuditVerifyOut(_Out):
    checked: int
    ok: bool
    problem: AuditProblemOut | None
    checkpoints: int = 0
    """Checkpoints of the head (``audit_checkpoint_path``) the chain was compared with."""
