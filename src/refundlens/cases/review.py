"""Review: what people do to a claim: evidence, decisions, appeals, assignment, and the
windows that hand a waiting claim to a person when they run out. Nothing here rejects a claim
on its own: a rejection is only ever a person's decision with a reason."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args

from ..config import Settings
from ..errors import RefundlensError
from ..metrics import metrics
from ..store.blobs import BlobStore
from ..store.interface import BankEntry, Claim, Decision, Evidence, Store, new_id, utcnow
from .actors import SYSTEM, Actor, aware
from .capture import retire_capture_links
from .intake import CLOSED_STATES, check_order_amount
from .notifications import notify
from .states import ClaimState, transition

__all__ = [
    "BUYER_EVIDENCE_KINDS",
    "DECISIONS",
    "EVIDENCE_KINDS",
    "DecisionValue",
    "EvidenceKind",
    "add_evidence",
    "allowed_decisions",
    "appeal",
    "assign",
    "check_evidence",
    "check_evidence_kind",
    "check_evidence_room",
    "decide",
    "expire_windows",
    "person_reason",
    "withdraw_from_bank",
]


DecisionValue = Literal["approve", "reject", "partial", "request_capture", "escalate"]
DECISIONS: tuple[DecisionValue, ...] = get_args(DecisionValue)


EvidenceKind = Literal["packing_video", "reference_photo", "statement", "other"]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = get_args(EvidenceKind)
BUYER_EVIDENCE_KINDS: tuple[EvidenceKind, ...] = ("statement", "other")
"""What a buyer may send (the others are the shop's); the buyer's page offers these only."""


def check_evidence_kind(actor: Actor, kind: str) -> None:
    """Refuse a kind of evidence ``actor`` may not send, before its file is read: a buyer's
    "packing video" was read up to ``video_max_bytes`` (500 MB) before it was refused."""
    _check_kind(actor, kind)


def _check_kind(actor: Actor, kind: str) -> None:
    if kind not in EVIDENCE_KINDS:
        raise RefundlensError(
            "evidence.bad_kind", f"Evidence kind must be one of {', '.join(EVIDENCE_KINDS)}."
        )
    if actor.role == "buyer" and kind not in BUYER_EVIDENCE_KINDS:
        # A packing video or a reference photo is the shop's word for what it sent.
        raise RefundlensError(
            "evidence.bad_kind",
            f"A buyer's evidence kind is one of {', '.join(BUYER_EVIDENCE_KINDS)}.",
        )


def check_evidence_room(store: Store, actor: Actor, claim: Claim, settings: Settings) -> None:
    """Refuse a party's item past ``max_evidence_per_party`` (the kinds it adds itself; the
    files a claim and its captures bring are not counted). Each item may carry a file of
    ``max_file_bytes`` (a packing video ``video_max_bytes``): without a bound one party could
    fill the disk a request at a time. Asked before the file is decoded and again, under the
    claim's row, before it is stored."""
    if store.evidence.count_by(claim.id, actor.role, EVIDENCE_KINDS) >= (
        settings.max_evidence_per_party
    ):
        raise RefundlensError(
            "evidence.too_many",
            f"At most {settings.max_evidence_per_party} items of evidence from each party per "
            "claim (max_evidence_per_party); put the rest in one statement or ask a reviewer.",
        )


def check_evidence(
    actor: Actor, kind: str, file: tuple[str, bytes] | None, settings: Settings
) -> None:
    """Refuse evidence that :func:`add_evidence` would not take, and a file that is not what
    its kind says, before anything is stored: a reference
    photo must decode as a photo (every image limit, bombs included), a packing video must
    open as a video within every limit its header answers. The report lists evidence by kind,
    so junk filed as a packing video would read as one. Statements and other files are kept
    as sent (never decoded or served). Run outside a transaction: it decodes."""
    _check_kind(actor, kind)
    if file is None:
        return
    name, data = file
    if kind == "reference_photo":
        from ..media import media_from_bytes

        media_from_bytes(data, name, settings)
    elif kind == "packing_video":
        from ..media.video import probe_video

        probe_video(data, settings)


def add_evidence(
    store: Store,
    blobs: BlobStore,
    actor: Actor,
    claim: Claim,
    kind: str,
    statement: str,
    file: tuple[str, bytes] | None,
    *,
    settings: Settings,
) -> Evidence:
    if claim.state in (ClaimState.DECIDED, ClaimState.FINAL, ClaimState.APPROVED):
        raise RefundlensError(
            "claim.closed",
            f"The claim is {claim.state}; evidence can no longer be added"
            + ("." if claim.state == ClaimState.FINAL else ": an appeal reopens it."),
        )
    _check_kind(actor, kind)
    if not statement and file is None:
        raise RefundlensError("evidence.empty", "Evidence needs a file or a statement.")
    if kind in ("packing_video", "reference_photo") and file is None:
        # A packing video without a video is a statement under another name: the claim page
        # would list a video nobody can watch.
        raise RefundlensError("evidence.file_required", f"Evidence of kind {kind} needs its file.")
    check_evidence_room(store, actor, claim, settings)
    sha = blobs.put(file[1]) if file else None
    item = Evidence(
        id=new_id("evd"),
        claim_id=claim.id,
        kind=kind,
        submitted_by=actor.role,
        sha256=sha,
        name=file[0] if file else "",
        statement=statement,
    )
    store.evidence.add(item)
    store.audit.append(
        actor.id,
        "evidence.added",
        claim_id=claim.id,
        details={"evidence": item.id, "kind": kind, "sha256": sha},
    )
    if actor.role == "merchant" and claim.state == ClaimState.AWAITING_MERCHANT:
        # The merchant has answered: a person can decide now, no need to wait out the window.
        claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
        claim.deadline_at = utcnow() + dt.timedelta(hours=settings.review_sla_hours)
        claim.routing_reason = "merchant answered"
        store.audit.append(
            actor.id,
            "claim.to_review",
            claim_id=claim.id,
            details={"why": "merchant answered"},
        )
    # After the move: the event carries the state the claim is in (it said awaiting_merchant
    # where the API already answered under_review: an integrator's walkthrough).
    notify(
        store,
        claim.merchant_id,
        "evidence.added",
        claim,
        {"evidence": {"id": item.id, "kind": kind}},
    )
    return item


# What a person may decide in each state. While the claim waits for the merchant or for a live
# capture, a reviewer who has seen enough need not wait: deciding closes the window (on record).
_DECISIONS_BY_STATE: dict[str, tuple[str, ...]] = {
    ClaimState.UNDER_REVIEW: DECISIONS,
    ClaimState.AWAITING_MERCHANT: DECISIONS,
    # a live capture is already asked for: asking again is not a decision
    ClaimState.AWAITING_CAPTURE: ("approve", "reject", "partial", "escalate"),
}


def person_reason(decision: str) -> str:
    """Why a claim is where a person's decision put it, in words a reviewer reads. A request for
    a live photo and an escalation are not rulings: "a person decided: request_capture" showed
    the raw word, and its Chinese (已由人工裁决) read as a final ruling (a new user's
    walkthrough)."""
    if decision == "request_capture":
        return "a person asked the buyer for a live photo: the claim waits for it"
    if decision == "escalate":
        return "a person escalated the claim: a senior reviewer decides"
    return f"a person decided: {decision}"


def allowed_decisions(state: str) -> tuple[str, ...]:
    """The decisions a reviewer or admin may take on a claim in ``state`` (none once decided,
    while it is being analysed, or after an automatic approval, which an appeal reopens)."""
    return _DECISIONS_BY_STATE.get(ClaimState(state), ())


def _found_forged(store: Store, claim: Claim, decision: str, forgery: bool | None) -> bool:
    """Whether this decision records the claim's evidence as forged: a rejection, unless the
    person said otherwise, of a claim with a photo or video to be forged. A claim filed without
    either (a client that named its upload field ``photo``) was rejected as forged by default:
    its buyer on record as a confirmed forger of nothing (an integrator's walkthrough)."""
    if decision != "reject":
        return False
    # The buyer's, or the platform's filing for the buyer (an admin files claims too).
    forgeable = bool(claim.photos) or any(
        store.evidence.count_by(claim.id, by, frozenset({"unboxing_video"})) > 0
        for by in ("buyer", "admin")
    )
    if forgery and not forgeable:
        raise RefundlensError(
            "decision.bad_value",
            "This claim holds no photo or video from the buyer: nothing in it can be found "
            "forged. Reject it with forgery false (or leave forgery out).",
        )
    return forgeable if forgery is None else forgery


def repeats_last_decision(
    store: Store,
    actor: Actor,
    claim: Claim,
    decision: str,
    reason: str,
    amount: float | None,
    forgery: bool | None = None,
    buyer_note: str = "",
) -> bool:
    """Whether this decision is the one the same person last made on the claim, word for word,
    while it stands: a client that lost the answer and sends it again. It was refused as an
    illegal move (409), which read as "not decided" (an integrator's walkthrough); the route
    answers the claim as it is instead, and records nothing twice."""
    if claim.state not in (ClaimState.DECIDED, ClaimState.FINAL) or decision not in (
        "approve",
        "reject",
        "partial",
    ):
        return False
    decisions = store.claims.decisions_of(claim.id)
    if not decisions:
        return False
    last = decisions[-1]
    outcome = {"approve": "approved", "reject": "rejected", "partial": "partial"}[decision]
    return (
        last.decided_by == actor.id
        and last.outcome == outcome
        and last.reason == reason
        and (last.amount if decision == "partial" else None)
        == (amount if decision == "partial" else None)
        and bool(last.forgery) == _found_forged(store, claim, decision, forgery)
        and (last.buyer_note or "") == buyer_note.strip()
    )


def decide(
    store: Store,
    actor: Actor,
    claim: Claim,
    decision: str,
    reason: str,
    amount: float | None,
    settings: Settings,
    forgery: bool | None = None,
    buyer_note: str = "",
    seen_assessment: str | None = None,
) -> Claim:
    """A person's decision. Reject is only ever this: a person's call with a reason.

    ``seen_assessment``: the id of the analysis the person decided on ("" for none), refused
    (``claim.changed``) where the claim was analysed again since; None checks nothing.

    ``reason`` is for the platform, the reviewers and the merchant (it may name findings);
    ``buyer_note``, with approve, reject or partial, is what the buyer is told (empty: nothing
    but the outcome); with request_capture, what the buyer should photograph.

    ``forgery`` goes with ``reject`` only: whether the person found the evidence forged (the
    default, as rejections always were read). Only then do the claim's photos join the forgery
    bank and the rejection count in the buyer's record; a claim rejected for another reason
    (not eligible, damage of the buyer's own doing) is no forgery, and an earlier forgery
    rejection of it, reversed on appeal, leaves the bank."""
    if decision not in DECISIONS:
        raise RefundlensError(
            "decision.bad_value", f"Decision must be one of {', '.join(DECISIONS)}."
        )
    if forgery is not None and decision != "reject":
        raise RefundlensError("decision.bad_value", "forgery goes with a rejection only (reject).")
    forged = _found_forged(store, claim, decision, forgery)
    if not reason.strip():
        raise RefundlensError("decision.reason_required", "Every decision needs a reason in words.")
    if actor.role not in ("reviewer", "admin"):
        raise RefundlensError(
            "auth.forbidden", "Only a reviewer or a platform admin decides claims."
        )
    if buyer_note.strip() and decision == "escalate":
        raise RefundlensError(
            "decision.note_not_allowed",
            "A note to the buyer (buyer_note) goes with approve, reject, partial or "
            "request_capture (what to photograph), not with escalate.",
        )
    if seen_assessment is not None:
        latest = store.assessments.latest(claim.id)
        current = latest.id if latest is not None else ""
        if current != seen_assessment:
            # Another person's request for a live photo, answered and analysed while this page
            # was open: a rejection as forged followed an analysis its person never saw (a
            # security review).
            raise RefundlensError(
                "claim.changed",
                f"The claim's latest analysis is {current or 'none'}, not the one this decision "
                f"names ({seen_assessment or 'none'}): it was analysed again since, or the id is "
                "wrong. Read the claim, then decide.",
            )
    _refuse_recused(store, actor, claim, settings)
    allowed = allowed_decisions(claim.state)
    if decision not in allowed:
        raise RefundlensError(
            "claim.illegal_transition",
            f"A claim in state {claim.state} cannot be decided with {decision}; "
            + (f"allowed now: {', '.join(allowed)}." if allowed else "no decision is open now."),
        )
    if claim.state in (ClaimState.AWAITING_MERCHANT, ClaimState.AWAITING_CAPTURE):
        waited = claim.state
        claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
        closed: dict[str, Any] = {"from": waited, "why": person_reason(decision)}
        if waited == ClaimState.AWAITING_CAPTURE:
            closed["links_retired"] = retire_capture_links(store, claim, utcnow()) or None
        store.audit.append(actor.id, "claim.window_closed", claim_id=claim.id, details=closed)
    if decision == "request_capture":
        claim.state = transition(claim.state, ClaimState.AWAITING_CAPTURE).value
        claim.deadline_at = utcnow() + dt.timedelta(hours=settings.capture_window_hours)
        claim.routing_reason = person_reason(decision)
        # What to photograph, for the buyer (None clears an earlier request's words).
        claim.capture_request_note = buyer_note.strip() or None
        asked: dict[str, Any] = {"deadline_at": claim.deadline_at.isoformat()}
        if buyer_note.strip():
            asked["buyer_note"] = buyer_note.strip()
        notify(store, claim.merchant_id, "capture.requested", claim, asked)
    elif decision == "escalate":
        if claim.state != ClaimState.UNDER_REVIEW:
            transition(claim.state, ClaimState.DECIDED)  # raises with the allowed moves
        # The claim's action puts it in the escalate queue; the analysis's own suggestion stays
        # with its assessment, and the pages say a person escalated it (a reviewer's
        # walkthrough read the escalation as the analysis's and "why it is here" as stale).
        claim.action = "escalate"
        claim.routing_reason = person_reason(decision)
    else:
        if decision == "partial" and (amount is None or not 0 < amount < claim.amount):
            raise RefundlensError(
                "decision.bad_amount",
                f"A partial decision needs an amount above 0 and below the {claim.amount:g} "
                "claimed (the whole amount is an approval).",
            )
        if decision != "reject" and settings.claims_within_order_amount:
            # A claim rejected, then approved on appeal after another claim took the order's
            # amount, would pay it twice: what it grants must still fit.
            order = store.catalogue.order(claim.order_id)
            if order is not None:
                granted = claim.amount if decision == "approve" else float(amount or 0.0)
                check_order_amount(store, order, granted, besides=claim.id)
        claim.state = transition(claim.state, ClaimState.DECIDED).value
        # Why the claim is where it is: a decided claim still read "merchant answered" (an
        # integrator's walkthrough).
        claim.routing_reason = person_reason(decision)
        outcome = {"approve": "approved", "reject": "rejected", "partial": "partial"}[decision]
        store.claims.add_decision(
            Decision(
                id=new_id("dec"),
                claim_id=claim.id,
                outcome=outcome,
                amount=amount if decision == "partial" else None,
                reason=reason,
                decided_by=actor.id,
                forgery=forged,
                buyer_note=buyer_note.strip() or None,
            )
        )
        claim.deadline_at = None
        notify(
            store,
            claim.merchant_id,
            "claim.decided",
            claim,
            {
                "outcome": outcome,
                "forgery": forged,
                # What it pays, in the claim's currency: a partial refund's amount was nowhere
                # in the event (a walkthrough).
                "refund": {"approved": claim.amount, "partial": amount}.get(outcome, 0.0),
            }
            | ({"buyer_note": buyer_note.strip()} if buyer_note.strip() else {}),
        )
        if forged:
            _bank_confirmed_forgery(store, claim, settings)
        else:
            withdraw_from_bank(store, actor.id, claim, settings)
    details: dict[str, Any] = {"reason": reason, "amount": amount, "state": claim.state}
    if buyer_note.strip():
        details["buyer_note"] = buyer_note.strip()
    if decision == "reject":
        details["forgery"] = forged
    store.audit.append(actor.id, f"decision.{decision}", claim_id=claim.id, details=details)
    metrics().claims_decided.labels(claim.claim_type, decision).inc()
    return claim


WINDOW_EXPIRED = {
    ClaimState.AWAITING_MERCHANT.value: "the merchant's window ran out: a person decides",
    ClaimState.AWAITING_CAPTURE.value: "no live photo came in time: a person decides",
}
"""The routing reason of a claim whose window ran out, by the state it waited in."""


def expire_windows(
    store: Store, now: dt.datetime | None = None, *, settings: Settings
) -> list[str]:
    """Move claims whose window ran out to a person (never to a rejection). Returns their ids."""
    review_hours = settings.review_sla_hours
    now = now or utcnow()
    moved = []
    waiting = store.claims.waiting_with_deadline(
        [ClaimState.AWAITING_MERCHANT.value, ClaimState.AWAITING_CAPTURE.value]
    )
    for claim in waiting:
        deadline = aware(claim.deadline_at)
        if deadline is None or deadline > now:
            continue
        before = claim.state
        claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
        claim.deadline_at = now + dt.timedelta(hours=review_hours)
        claim.routing_reason = WINDOW_EXPIRED[before]
        store.audit.append(
            SYSTEM.id, "claim.window_expired", claim_id=claim.id, details={"from": before}
        )
        # The platform learns that a person must decide now, as it learns of every other move
        # (a window that ran out sent no event: an integrator's walkthrough).
        notify(
            store,
            claim.merchant_id,
            "claim.window_expired",
            claim,
            {"from": before, "deadline_at": claim.deadline_at.isoformat()},
        )
        moved.append(claim.id)
    return moved


def close_appeal_windows(
    store: Store, now: dt.datetime | None = None, *, settings: Settings
) -> list[str]:
    """Make final the claims a person decided that nothing changed for ``appeal_window_days``:
    no appeal reopens them. Returns their ids. A claim approved by the analysis keeps its state
    (``final`` reads a claim by its latest decision, and one approved after an appeal has the
    rejection before it as its latest: made final, it read as rejected, its amount free again on
    the order; a review); its appeals close by time alone (:func:`appeal_window_closed`)."""
    if settings.appeal_window_days <= 0:
        return []
    now = now or utcnow()
    before = now - dt.timedelta(days=settings.appeal_window_days)
    closed = []
    for claim in store.claims.unchanged_since([ClaimState.DECIDED.value], before):
        claim.state = transition(claim.state, ClaimState.FINAL).value
        claim.deadline_at = None
        store.audit.append(
            SYSTEM.id,
            "claim.final",
            claim_id=claim.id,
            details={"from": ClaimState.DECIDED.value, "why": "the time to appeal ran out"},
        )
        notify(store, claim.merchant_id, "claim.final", claim, {"from": ClaimState.DECIDED.value})
        closed.append(claim.id)
    return closed


def earlier_deciders(store: Store, claim: Claim) -> frozenset[str]:
    """The people (reviewers or admins) who decided ``claim`` before, while an appeal has it
    open again (only an appeal reopens a decided claim); empty while none has or it is closed."""
    if claim.state in CLOSED_STATES:
        return frozenset()
    return frozenset(d.decided_by for d in store.claims.decisions_of(claim.id))


def recused(store: Store, actor: Actor, claim: Claim, settings: Settings) -> bool:
    """Whether ``actor`` may not take or decide ``claim``: a person who decided it before, while
    an appeal has it open again, where ``appeal_decided_by_another``. Every earlier decider, not
    only the latest: after two appeals the first reviewer took the claim back and decided the
    last appeal (a walkthrough); an admin too, who decided an appeal of its own decision."""
    return (
        settings.appeal_decided_by_another
        and actor.role in ("reviewer", "admin")
        and actor.id in earlier_deciders(store, claim)
    )


def _refuse_recused(store: Store, actor: Actor, claim: Claim, settings: Settings) -> None:
    if recused(store, actor, claim, settings):
        raise RefundlensError(
            "claim.own_decision_appealed",
            "You decided this claim before, and it was appealed: another person decides the "
            "appeal (appeal_decided_by_another).",
        )


def appeal_window_closed(claim: Claim, settings: Settings, now: dt.datetime | None = None) -> bool:
    """Whether no appeal may reopen ``claim`` any more: it is ``final``, or it was approved by
    the analysis and nothing changed it for ``appeal_window_days``."""
    if claim.state == ClaimState.FINAL:
        return True
    if settings.appeal_window_days <= 0 or claim.state != ClaimState.APPROVED:
        return False
    changed = aware(claim.updated_at)
    window = dt.timedelta(days=settings.appeal_window_days)
    return changed is not None and changed <= (now or utcnow()) - window


def may_appeal(role: str, state: str, outcome: str | None) -> bool:
    """Whether ``role`` may appeal a claim in ``state`` whose latest decision was ``outcome``
    (None: none yet). The side a decision went against appeals it: the buyer a rejection, the
    merchant an approval (a person's or the automatic one), either a partial refund; an admin
    any. A claim not decided is no one's to appeal: :func:`transition` refuses it."""
    if state == ClaimState.FINAL.value:  # the time to appeal ran out (appeal_window_days)
        return False
    if state == ClaimState.APPROVED.value:
        outcome = "approved"
    elif state != ClaimState.DECIDED.value or outcome is None:
        return True
    against = {"buyer": ("rejected", "partial"), "merchant": ("approved", "partial")}
    return role == "admin" or outcome in against.get(role, ())


def appeal(
    store: Store,
    actor: Actor,
    claim: Claim,
    reason: str,
    *,
    settings: Settings,
) -> Claim:
    """The buyer or the merchant contests a decision (or an automatic approval): a person looks again."""
    if actor.role not in ("buyer", "merchant", "admin"):
        raise RefundlensError("auth.forbidden", "Only the buyer, the merchant or an admin appeals.")
    if not reason.strip():
        raise RefundlensError("appeal.reason_required", "An appeal needs a reason in words.")
    if appeal_window_closed(claim, settings):
        raise RefundlensError(
            "appeal.window_closed",
            f"The time to appeal this claim ran out ({settings.appeal_window_days:g} days after "
            "its last change, appeal_window_days): the decision is final; the platform's support "
            "can still be asked.",
        )
    decisions = store.claims.decisions_of(claim.id)
    if not may_appeal(actor.role, claim.state, decisions[-1].outcome if decisions else None):
        # A decision is the losing side's to contest (appeals are counted per side, below).
        raise RefundlensError(
            "appeal.in_your_favour",
            "This decision went your way: only the other party may appeal it.",
        )
    # Per side: counted per claim, the merchant's two appeals of approvals spent the buyer's
    # appeal of the rejection that followed (a security review).
    appealed = sum(
        1 for d in store.audit.details_of(claim.id, "claim.appealed") if d.get("by") == actor.role
    )
    if appealed >= settings.max_appeals_per_claim:
        raise RefundlensError(
            "appeal.limit_reached",
            f"This claim was appealed by the {actor.role} {appealed} times already "
            "(max_appeals_per_claim, per side): the decision stands; the platform's support can "
            "still be asked.",
        )
    claim.state = transition(claim.state, ClaimState.APPEALED).value
    appealed_details: dict[str, Any] = {"reason": reason, "by": actor.role}
    deciders = {d.decided_by for d in decisions}
    if settings.appeal_decided_by_another and claim.assigned_to in deciders:
        # Nobody who decided the claim decides its appeal.
        appealed_details["released_from"] = claim.assigned_to
        claim.assigned_to = None
    store.audit.append(actor.id, "claim.appealed", claim_id=claim.id, details=appealed_details)
    claim.state = transition(claim.state, ClaimState.UNDER_REVIEW).value
    # Why it is in the queue now; the analysis's own reason is in the audit log.
    claim.routing_reason = f"appealed by the {actor.role}: a person looks again"
    claim.deadline_at = utcnow() + dt.timedelta(hours=settings.review_sla_hours)
    notify(store, claim.merchant_id, "claim.appealed", claim, {"reason": reason, "by": actor.role})
    return claim


def assign(
    store: Store,
    actor: Actor,
    claim: Claim,
    reviewer_key_id: str | None,
    settings: Settings | None = None,
) -> Claim:
    """Give the claim to one reviewer (None: back to the pool). A reviewer may take a claim no
    one holds, for itself, and give back only its own; an admin may give a claim to any live reviewer key that
    is assigned the claim's merchant, and take it back from anyone. Nobody gives an appealed
    claim to a reviewer who decided it before (:func:`recused`)."""
    settings = settings or Settings()
    if actor.role not in ("reviewer", "admin"):
        raise RefundlensError("auth.forbidden", "Only reviewers and admins assign claims.")
    if claim.state in CLOSED_STATES:
        # Taking or giving it back touched the claim, and a closed claim's appeal window, which
        # runs from its last change, opened again (a security review). An appeal reopens it.
        raise RefundlensError(
            "claim.closed",
            f"The claim is {claim.state}: it is in no one's queue to take or give back.",
        )
    if reviewer_key_id is not None and actor.role == "reviewer":
        _refuse_recused(store, actor, claim, settings)
    if (
        reviewer_key_id is not None
        and actor.role == "admin"
        and settings.appeal_decided_by_another
        and reviewer_key_id in earlier_deciders(store, claim)
    ):
        raise RefundlensError(
            "claim.own_decision_appealed",
            "That reviewer decided this claim before, and the appeal goes to another person "
            "(appeal_decided_by_another): give it to a reviewer who has not decided it.",
        )
    if actor.role == "reviewer":
        if reviewer_key_id not in (actor.id, None):
            raise RefundlensError("auth.forbidden", "A reviewer may only take a claim for itself.")
        if claim.assigned_to not in (actor.id, None):
            # Taking it would be the first half of giving back another's claim.
            raise RefundlensError(
                "auth.forbidden",
                "Another reviewer holds this claim: a reviewer may only take a claim no one holds "
                "and give back one it has taken itself (an admin can reassign it).",
            )
    if reviewer_key_id is not None:
        key = store.access.api_key(reviewer_key_id)
        assigned = store.access.reviewer_assigned(reviewer_key_id, claim.merchant_id)
        if key is None or key.revoked or key.role != "reviewer" or not assigned:
            raise RefundlensError(
                "assign.not_a_reviewer",
                "Claims go to a live reviewer key that is assigned the claim's merchant.",
            )
    claim.assigned_to = reviewer_key_id
    store.audit.append(
        actor.id, "claim.assigned", claim_id=claim.id, details={"to": reviewer_key_id}
    )
    return claim


def withdraw_from_bank(store: Store, actor_id: str, claim: Claim, settings: Settings) -> None:
    """Approved after a rejection (by a person, on appeal: the analysis approves no claim a person
    decided on), or rejected again as no forgery: no one holds the claim forged now, and neither may the bank this platform shares
    with its partners (its next export leaves the entries out)."""
    withdrawn = store.bank.withdraw(settings.bank_name, claim.id)
    if withdrawn:
        store.audit.append(
            actor_id,
            "bank.withdrawn",
            claim_id=claim.id,
            details={"bank": settings.bank_name, "entries": withdrawn},
        )


def _bank_confirmed_forgery(store: Store, claim: Claim, settings: Settings) -> None:
    """A person confirmed a forgery: its photos' fingerprints join this platform's bank."""
    from ..reuse.bank import buyer_hmac

    latest = store.assessments.latest(claim.id)
    codes = sorted(
        {
            f["code"]
            for image in (latest.report["images"] if latest else [])
            for f in image["findings"]
            if f["strength"] > 0
        }
    )
    keyed = buyer_hmac(settings.bank_buyer_hmac_key, claim.buyer_id)
    # One entry per claim and photo, not per photo: where two claims were rejected with one
    # photo, approving the first on appeal withdraws its entry and keeps the second's. Rejected
    # again after an appeal, the claim's entries are made anew, not doubled.
    store.bank.withdraw(settings.bank_name, claim.id)
    banked: set[str] = set()
    # The photos the claim was filed with, not its live captures: a capture is a new photo of
    # the item as it is (what the buyer was asked for), not forged evidence to be shared.
    filed = {p.sha256 for p in claim.photos if not p.live_capture}
    for row in store.fingerprints.photo_prints(claim.id):
        if row.photo_sha256 not in filed:
            continue
        if row.quality < settings.reuse_min_pdq_quality or row.pdq in banked:
            continue
        banked.add(row.pdq)
        store.bank.add(
            BankEntry(
                bank=settings.bank_name,
                signer=settings.bank_name,
                pdq=row.pdq,
                codes=codes,
                confirmed_at=utcnow(),
                buyer_hmac=keyed,
                claim_id=claim.id,
                # A cropped copy moves PDQ past its radius (5%: 60 bits); the print still
                # matches it (a security review: a confirmed forgery re-paid at another shop).
                local_print=row.local_print,
            )
        )
