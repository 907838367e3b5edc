"""Where an analysed claim goes: the fusion's action, then the platform's rules per claim type.

The fusion policy says how risky a claim is (approve, request_capture, review, escalate); these
rules add what a platform decides about money and process: refund-only claims above an amount, or
claims without a photo, always go to a person; and what cannot be verified from the photos is
verified by asking for a live capture instead of approving it: a claim that nothing vouches for
(no reference recognises the item in a new exposure, no camera provenance, no live capture) above
an amount, or a photo that does not show the ordered product at all. A live capture verifies
only what it shows: unless the damage the buyer marked is seen in it as in the claim photo, a
person decides (``capture_must_confirm_damage``). Nothing here rejects: the worst outcome is a
person.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from ..fusion import PolicyError
from .states import ClaimState

__all__ = [
    "CAMERA_SOURCE_TYPES",
    "CLAIM_TYPES",
    "VOUCHING_CODES",
    "ClaimFacts",
    "RoutingRules",
    "camera_manifest",
    "capture_doubt",
    "facts_from_report",
    "route",
]

CLAIM_TYPES = ("refund_only", "return_and_refund", "repair")


@dataclasses.dataclass(frozen=True, slots=True)
class RoutingRules:
    """Per claim type: the largest amount approved automatically (None = no limit) and whether a
    claim without photos may be approved automatically. Read from the policy's ``routing`` key."""

    auto_approve_max_amount: Mapping[str, float | None] = dataclasses.field(
        default_factory=lambda: {"refund_only": 200.0, "return_and_refund": None, "repair": None}
    )
    photo_required_for_auto_approve: bool = True
    # Above this amount (per claim type; None = never) a claim that nothing vouches for is asked
    # for a live capture instead of being approved.
    unverified_capture_above_amount: Mapping[str, float | None] = dataclasses.field(
        default_factory=lambda: {"refund_only": 100.0, "return_and_refund": None, "repair": None}
    )
    capture_when_product_not_shown: bool = True
    # Once a live capture is in, approve automatically only where it confirms the damage the
    # buyer marked (consistency.marked_damage_confirmed): a capture of the intact item, or one
    # that shows the marked damage nowhere both photos can be compared, verifies nothing. The
    # box is the buyer's word: where a reference of the SKU shows the boxed spot, a box that
    # looks as the reference does confirms nothing (consistency.mark_matches_intact_reference);
    # elsewhere a forger who boxes an intact spot gets it confirmed (docs/security.md), so a
    # platform that will not take that risk sets
    # auto_approve_after_capture false: every claim with a live capture then goes to a person.
    capture_must_confirm_damage: bool = True
    auto_approve_after_capture: bool = True
    # A confirmation counts only where a reference of the SKU showed the boxed spot and it
    # differed there (marked_damage_compared_with_reference on the finding): boxes on a side no
    # reference shows, and SKUs without references, then go to a person.
    capture_confirmation_needs_reference: bool = False
    # The currency both amount limits are in. A claim on an order in another is never approved
    # on its amount: 199 KWD (some 4,600 CNY) passed a limit of 200 meant in yuan (a security
    # review). No exchange rate is guessed; a person decides.
    currency: str = "CNY"
    # A buyer's claims weighed together: each claim of a buyer who files one after another was
    # judged alone, and many small claims, each under every limit, were each approved (a
    # security review). Per claim type (None = no such rule): a person decides where this claim
    # and those the buyer filed (any type, any shop) in the ``buyer_claims_window_days`` before
    # it are more than ``buyer_claims_max``, or ask for more than ``buyer_claimed_max_amount``
    # in ``currency``. Returns and repairs are left out
    # by default: the goods travel back to the shop before it pays.
    buyer_claims_window_days: float = 30.0
    buyer_claims_max: Mapping[str, float | None] = dataclasses.field(
        default_factory=lambda: {"refund_only": 5, "return_and_refund": None, "repair": None}
    )
    buyer_claimed_max_amount: Mapping[str, float | None] = dataclasses.field(
        default_factory=lambda: {"refund_only": 1000.0, "return_and_refund": None, "repair": None}
    )

    @classmethod
    def from_policy(cls, raw: Mapping[str, Any] | None) -> RoutingRules:
        if not raw:
            return cls()
        defaults = cls()
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in raw if key not in known)
        if unknown:
            # "buyer_claim_max" was ignored, and the platform believed its rule in force (a
            # new user's walkthrough).
            raise PolicyError(
                "policy.invalid",
                f"routing: unknown key(s) {', '.join(unknown)} (routing holds "
                f"{', '.join(sorted(known))}).",
            )

        def switch(key: str, default: bool) -> bool:
            # YAML's true or false, or the words for them: bool("false") is True, and a
            # quoted "false" for auto_approve_after_capture approved what it was to stop.
            value = raw.get(key, default)
            if isinstance(value, bool):
                return value
            word = str(value).strip().lower()
            if word in ("true", "yes", "on", "1") or word in ("false", "no", "off", "0"):
                return word in ("true", "yes", "on", "1")
            raise PolicyError("policy.invalid", f"routing.{key}: {value!r} is not true or false.")

        def window_days() -> float:
            value = raw.get("buyer_claims_window_days", defaults.buyer_claims_window_days)
            try:
                days = -1.0 if isinstance(value, bool) else float(value)
            except (TypeError, ValueError):
                days = -1.0
            if not 0 < days < 36500:
                raise PolicyError(
                    "policy.invalid",
                    f"routing.buyer_claims_window_days: {value!r} is not a number of days.",
                )
            return days

        def amounts(key: str, start: Mapping[str, float | None]) -> dict[str, float | None]:
            # Per claim type, a number of 0 or more or null. A bare number, a word, NaN (which
            # turned a rule off) or a misspelt type ("refund-only", silently ignored) stop the
            # policy from loading (a security review).
            given = raw.get(key)
            if given is None:
                return dict(start)
            if not isinstance(given, Mapping):
                raise PolicyError(
                    "policy.invalid", f"routing.{key}: give a number (or null) per claim type."
                )
            limits = dict(start)
            for claim_type, value in given.items():
                if claim_type not in CLAIM_TYPES:
                    raise PolicyError(
                        "policy.invalid",
                        f"routing.{key}: {claim_type!r} is not a claim type "
                        f"({', '.join(CLAIM_TYPES)}).",
                    )
                if value is not None and (
                    isinstance(value, bool)
                    or not isinstance(value, (int, float))
                    or not 0 <= value < float("inf")
                ):
                    raise PolicyError(
                        "policy.invalid",
                        f"routing.{key}.{claim_type}: {value!r} is not a number of 0 or more.",
                    )
                limits[claim_type] = None if value is None else float(value)
            return limits

        return cls(
            auto_approve_max_amount=amounts(
                "auto_approve_max_amount", defaults.auto_approve_max_amount
            ),
            photo_required_for_auto_approve=switch("photo_required_for_auto_approve", True),
            unverified_capture_above_amount=amounts(
                "unverified_capture_above_amount", defaults.unverified_capture_above_amount
            ),
            capture_when_product_not_shown=switch("capture_when_product_not_shown", True),
            capture_must_confirm_damage=switch("capture_must_confirm_damage", True),
            auto_approve_after_capture=switch("auto_approve_after_capture", True),
            capture_confirmation_needs_reference=switch(
                "capture_confirmation_needs_reference", False
            ),
            currency=str(raw.get("currency") or "CNY").upper(),
            buyer_claims_window_days=window_days(),
            buyer_claims_max=amounts("buyer_claims_max", defaults.buyer_claims_max),
            buyer_claimed_max_amount=amounts(
                "buyer_claimed_max_amount", defaults.buyer_claimed_max_amount
            ),
        )


@dataclasses.dataclass(frozen=True, slots=True)
class ClaimFacts:
    """What routing needs to know of an analysed claim (:func:`facts_from_report` reads the
    analysis' part of it)."""

    claim_type: str
    amount: float
    photo_count: int
    has_live_capture: bool = False
    vouched_for: bool = False
    """A photo the reference check recognises as a new exposure of the ordered item, or one that
    carries a camera's C2PA manifest."""
    product_not_shown: bool = False
    """A photo that no reference of the SKU (which has references) matches at all."""
    live_capture_not_shown: bool = False
    """A live capture that no reference of the SKU (which has references) matches: the capture
    does not show the ordered product, so it verifies nothing."""
    live_capture_confirms_damage: bool = False
    """The damage the buyer marked is seen alike in a live capture and in the photo it was
    marked on (``consistency.marked_damage_confirmed`` between a live capture and a claim
    photo)."""
    live_capture_on_file: bool = False
    """A live capture repeated a picture on file elsewhere when it came in (another claim's
    photo, a bank entry: ``capture.repeats_on_file`` in the audit log). Taken, so that the
    sender learns nothing, but it verifies nothing either."""
    order_rejected_before: bool = False
    """Another claim on the order was rejected, or refunded in part, and that decision stands
    (a claim of another type: one of the same type is refused when filed)."""
    claimed_on_order: float = 0.0
    """What the order's other claims ask for or were granted. The amount rules weigh this claim
    with them: five claims of 100 on an order of 500, each filed after the last closed, were
    each approved under a limit of 200 that one claim of 500 went to a person for (a
    security review)."""
    currency: str = "CNY"
    """The order's currency: the amount limits apply only to amounts in the policy's."""
    order_amount: float | None = None
    """The order's amount (None: no order known). No claim is approved automatically that would
    take, with the order's other claims, more than it: a claim rejected, appealed and sent for a
    live photo after another claim took the amount was approved on top of it (a security
    review: 500 paid on an order of 300)."""
    person_involved: bool = False
    """A person decided on the claim before (a decision, a request for a live photo, an
    escalation) or it was appealed: the analysis that follows a live photo a person asked for
    hands the claim back to a person, never approves it on its own."""
    merchant_answered: bool = False
    """The merchant added evidence to the claim, or a packing video to its order after the claim
    was filed: it is contested, and a person weighs that evidence."""
    buyer_claims: int = 0
    """How many claims the buyer filed, at any shop, in the ``buyer_claims_window_days`` before
    this one."""
    buyer_claimed: float = 0.0
    """What those claims asked for in the policy's currency (claims on orders in another
    currency are not added: their own amount rules send them to a person)."""
    capture_doubt: str = ""  # last: callers build the others by position
    """Why the live captures do not confirm the marked damage, where they do not
    (:func:`capture_doubt`): ``missing``, ``differs``, ``intact``, ``not_marked`` or
    ``cannot_tell``; empty: not said (the reason then names every possibility)."""

    @property
    def order_total(self) -> float:
        """This claim's amount with what the order's other claims ask for or were granted."""
        return self.amount + max(0.0, self.claimed_on_order)


# Findings that vouch for a photo: the ordered item recognised in a new exposure, or a camera's
# signed manifest (only as :func:`camera_manifest` reads its facts). (A live capture vouches
# too; it is known from the claim, not a finding.)
VOUCHING_CODES = frozenset({"reference.same_item_new_photo", "provenance.c2pa_manifest"})
MANIFEST_CODE = "provenance.c2pa_manifest"
# IPTC digital source types of a camera (the term at the end of the IPTC URI, as the
# provenance detector reads it): a plain capture, and one a phone's computational photography
# processed (what phones that sign C2PA declare).
CAMERA_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture"})


def camera_manifest(facts: Mapping[str, Any]) -> bool:
    """Whether a C2PA manifest's facts vouch for a camera photo: signed under the platform's
    trust anchors (``c2pa_trust_anchors_path``; state ``trusted``), and declaring a capture by a
    camera and nothing done to it since. Anyone can sign a manifest with a certificate of their
    own making (state ``valid``), and a manifest that declares an edit vouches for no capture."""
    if facts.get("state") != "trusted":
        return False
    actions = [a for a in facts.get("actions") or () if isinstance(a, Mapping)]
    return bool(actions) and all(
        a.get("action") == "c2pa.created"
        and str(a.get("digital_source_type") or "").rstrip("/").rsplit("/", 1)[-1]
        in CAMERA_SOURCE_TYPES
        for a in actions
    )


# A reference of the SKU recognises the ordered product in the photo (a copy of it, or a new
# exposure of it).
SHOWING_CODES = frozenset(
    {
        "reference.derived",
        "reference.identical",
        "reference.recaptured",
        "reference.near_copy_unresolved",
        "reference.same_item_new_photo",
    }
)
# The views agree on the damage the buyer marked: only this makes a live capture verify damage.
CONFIRMING_CODE = "consistency.marked_damage_confirmed"
# ... unless another view shows the marked damage differently.
DIFFERING_MARK = "marked_damage_differs"


def facts_from_report(
    report: Mapping[str, Any], live: Sequence[bool] = (), *, needs_reference: bool = False
) -> tuple[bool, bool, bool, bool]:
    """(vouched for, product not shown, a live capture not showing it, a live capture
    confirming the marked damage) from an assessment's JSON (``images[].findings[]``); ``live``
    says which images are live captures, in order. With ``needs_reference`` a confirmation
    counts only where the mark was checked against a reference of the SKU. No confirmation
    counts where any view compared shows the marked damage differently (``views_compared``:
    ``marked_damage_differs``): the claim's photos are each analysed against the others, and
    one image's confirmation must not outvote another's doubt. Vouched for means every filed
    photo is: one genuine camera photo of the parcel must not carry an edited one beside it."""
    not_shown = confirmed = differs = False
    filed: list[bool] = []  # per photo the buyer filed: is it vouched for?
    unmatched_live: list[str] = []  # live photos that match none of the SKU's references
    shows_product: set[str] = set()  # photos a reference of the SKU recognises
    same_item: set[frozenset[str]] = set()  # pairs of photos that share a surface
    for index, image in enumerate(report.get("images") or ()):
        sha = str(image.get("sha256") or index)
        is_live = index < len(live) and live[index]
        if not is_live:
            filed.append(False)
        for finding in image.get("findings") or ():
            code = finding.get("code")
            facts = finding.get("facts") or {}
            if (
                not is_live
                and code in VOUCHING_CODES
                and (code != MANIFEST_CODE or camera_manifest(facts))
                # A new photo of the product whose support a local edit voided vouches for
                # nothing: an edited photo above the amount that asks for a live photo was
                # approved without one (a security review).
                and not facts.get("voided_by")
            ):
                filed[-1] = True
            compared = facts.get("references_compared") or 0
            unmatched = code == "reference.no_match" and compared > 0
            not_shown |= unmatched and not is_live
            if unmatched and is_live:
                unmatched_live.append(sha)
            if code in SHOWING_CODES:
                shows_product.add(sha)
            for view in facts.get("views_compared") or ():
                if isinstance(view, Mapping) and view.get("verdict") in ("agrees", "missing"):
                    same_item.add(frozenset({sha, str(view.get("view_sha256"))}))
            # One side of the pair a live capture, the other a photo the buyer filed.
            other_live = bool(facts.get("other_view_live_capture"))
            checked = bool(facts.get("marked_damage_compared_with_reference"))
            confirmed |= (
                code == CONFIRMING_CODE
                and is_live != other_live
                and (checked or not needs_reference)
            )
            differs |= str(code).startswith("consistency.") and (
                facts.get("reason_cannot_tell") == DIFFERING_MARK
                or any(
                    isinstance(view, Mapping) and view.get("reason_cannot_tell") == DIFFERING_MARK
                    for view in facts.get("views_compared") or ()
                )
            )
    vouched = bool(filed) and all(filed)
    # The capture page asks for two or three sides of the damage, and a side no reference of
    # the SKU shows matches none: every honest capture that followed the instructions went to a
    # person (a buyer's walkthrough). A live photo that matches no reference still shows the
    # product where it shares a surface with one that a reference recognises.
    live_not_shown = any(
        not any(frozenset({sha, other}) in same_item for other in shows_product)
        for sha in unmatched_live
    )
    return vouched, not_shown, live_not_shown, confirmed and not differs


def capture_doubt(report: Mapping[str, Any], live: Sequence[bool], marked: bool) -> str:
    """Why a claim's live captures do not confirm the damage the buyer marked, from the
    comparisons of a live capture with a filed photo, most telling first: the damage is not in
    the live view (``missing``), a live view shows the marked damage otherwise (``differs``),
    the marked spot looks as the shop's intact item does (``intact``), the buyer marked nothing
    (``not_marked``), else the views did not compare there (``cannot_tell``). The routing reason
    said all five at once, and a reviewer could not tell which applied (a walkthrough)."""
    found: set[str] = set()
    for index, image in enumerate(report.get("images") or ()):
        is_live = index < len(live) and live[index]
        for finding in image.get("findings") or ():
            code = str(finding.get("code") or "")
            facts = finding.get("facts") or {}
            if (
                not code.startswith("consistency.")
                or bool(facts.get("other_view_live_capture")) == is_live
            ):
                continue  # two filed photos, or two live ones: no capture checked against a claim
            if code == "consistency.damage_missing_in_other_view":
                found.add("missing")
            elif code == "consistency.mark_matches_intact_reference":
                found.add("intact")
            elif facts.get("reason_cannot_tell") == DIFFERING_MARK:
                found.add("differs")
    for doubt in ("missing", "differs", "intact"):
        if doubt in found:
            return doubt
    return "cannot_tell" if marked else "not_marked"


_CAPTURE_DOUBTS = {
    "missing": "the live photos do not show the damage the claim photo shows, where both show "
    "the same surface: a person decides",
    "differs": "a live photo shows the damage the buyer marked otherwise than the claim photo "
    "does: a person decides",
    "intact": "the spot the buyer marked looks, in the live photos, as the shop's photo of the "
    "intact item shows it: a person decides",
    "not_marked": "the buyer marked no damage on its photo, so the live photos cannot confirm "
    "it: a person decides",
    "cannot_tell": "the live photos and the claim photo do not show enough of the marked spot "
    "alike to compare it: a person decides",
}


def _buyer_rule(facts: ClaimFacts, rules: RoutingRules) -> str | None:
    """Why the buyer's claims together send this one to a person (None: they do not). The
    reason names no figure of the buyer's: the shop reads it, and its claims at other shops are
    none of the shop's business (a security review: "950 CNY" told the shop what the buyer had
    claimed elsewhere)."""
    days = f"{rules.buyer_claims_window_days:g}"
    most_claims = rules.buyer_claims_max.get(facts.claim_type)
    # This claim counts: with 5, a buyer's sixth claim in the window goes to a person.
    if most_claims is not None and facts.buyer_claims + 1 > most_claims:
        return (
            f"the buyer filed more claims in the last {days} days than this platform approves "
            "automatically: a person decides"
        )
    own = facts.amount if facts.currency == rules.currency else 0.0
    most = rules.buyer_claimed_max_amount.get(facts.claim_type)
    if most is not None and facts.buyer_claimed + own > most:
        return (
            f"the buyer's claims of the last {days} days ask for more than this platform "
            "approves automatically: a person decides"
        )
    return None


def route(action: str, facts: ClaimFacts, rules: RoutingRules) -> tuple[ClaimState, str]:
    """The next state after analysis and the reason, in words a reviewer reads."""
    if (
        action == "request_capture"
        and not facts.has_live_capture
        # A live photo would not spare the person: the buyer would take it, then wait anyway.
        and _buyer_rule(facts, rules) is None
    ):
        return ClaimState.AWAITING_CAPTURE, "the analysis asks for a live photo"
    # Straight to a person, whatever the analysis says: the merchant has had its say (a window
    # of its own would make the buyer wait merchant_response_hours for an answer already given,
    # and a reviewer's request for a live photo came back as a new merchant window: reviews).
    if facts.person_involved:
        return (
            ClaimState.UNDER_REVIEW,
            "a person decided on this claim before, or it was appealed: a person decides again",
        )
    if facts.merchant_answered:
        return (
            ClaimState.UNDER_REVIEW,
            "the merchant answered the claim with evidence: a person weighs it",
        )
    if action == "request_capture" and facts.has_live_capture:
        return (
            ClaimState.AWAITING_MERCHANT,
            "a live photo was already given and doubts remain: a person decides",
        )
    if action in ("review", "escalate"):
        return (
            ClaimState.AWAITING_MERCHANT,
            f"the analysis says {action}: the merchant may answer, then a person decides",
        )
    if facts.order_amount is not None and facts.order_total - facts.order_amount >= 0.005:
        # To the cent, as filing checks it (intake.check_order_amount).
        return (
            ClaimState.AWAITING_MERCHANT,
            f"with the order's other claims, {facts.order_total:g} is claimed on this order of "
            f"{facts.order_amount:g}: a person decides",
        )
    if facts.live_capture_on_file:
        # The analysis counts only claims filed before this one: a live photo that repeats a
        # later claim's picture (both sent at once) is not among its findings.
        return (
            ClaimState.AWAITING_MERCHANT,
            "a live photo repeats a picture on file elsewhere: a person decides",
        )
    if facts.order_rejected_before:
        return (
            ClaimState.AWAITING_MERCHANT,
            "a claim on this order was rejected, or refunded in part, before: a person decides",
        )
    buyer_reason = _buyer_rule(facts, rules)
    if buyer_reason is not None:
        return ClaimState.AWAITING_MERCHANT, buyer_reason
    limit = rules.auto_approve_max_amount.get(facts.claim_type)
    limits = (limit, rules.unverified_capture_above_amount.get(facts.claim_type))
    if facts.currency != rules.currency and any(v is not None for v in limits):
        return (
            ClaimState.AWAITING_MERCHANT,
            f"the order is in {facts.currency} and the amount limits in {rules.currency}: "
            "a person decides",
        )
    if limit is not None and facts.amount > limit:
        return (
            ClaimState.AWAITING_MERCHANT,
            f"{facts.claim_type} claims above {limit:g} always go to a person",
        )
    if limit is not None and facts.order_total > limit:
        return (
            ClaimState.AWAITING_MERCHANT,
            f"with the order's other claims, {facts.order_total:g} is claimed on this order: "
            f"above {limit:g}, a person decides",
        )
    if facts.photo_count == 0 and rules.photo_required_for_auto_approve:
        return ClaimState.AWAITING_MERCHANT, "a claim without photos always goes to a person"
    if facts.live_capture_not_shown:
        return (
            ClaimState.AWAITING_MERCHANT,
            "no reference photo of the ordered product matches the live photo (another side "
            "or part of it, or another product): a person decides",
        )
    if facts.has_live_capture and not rules.auto_approve_after_capture:
        return (
            ClaimState.AWAITING_MERCHANT,
            "a live photo was given: a person compares it with the claim (this platform "
            "approves no claim with a live capture automatically)",
        )
    if (
        facts.has_live_capture
        and rules.capture_must_confirm_damage
        and not facts.live_capture_confirms_damage
    ):
        return (
            ClaimState.AWAITING_MERCHANT,
            _CAPTURE_DOUBTS.get(
                facts.capture_doubt,
                # Claims routed before the reason said which (and a caller that does not say).
                "the live photos do not confirm the damage the buyer marked (not marked, not "
                "seen alike where both photos show the surface, seen differently in another "
                "view, or marked on a spot that looks as the shop's photo of the intact item "
                "shows it): a person decides",
            ),
        )
    if not facts.has_live_capture:
        if facts.product_not_shown and rules.capture_when_product_not_shown:
            return (
                ClaimState.AWAITING_CAPTURE,
                "no reference photo of the ordered product matches a photo (another side or "
                "part of it, or another product): a live photo is asked for",
            )
        limit = rules.unverified_capture_above_amount.get(facts.claim_type)
        if limit is not None and facts.order_total > limit and not facts.vouched_for:
            if facts.amount <= limit:
                return (
                    ClaimState.AWAITING_CAPTURE,
                    f"with the order's other claims, {facts.order_total:g} is claimed on this "
                    "order and nothing vouches for the photos (no reference recognises the "
                    f"item, no camera provenance): above {limit:g}, a live photo is asked for",
                )
            return (
                ClaimState.AWAITING_CAPTURE,
                f"nothing vouches for the photos of this {facts.claim_type} claim above "
                f"{limit:g} (no reference recognises the item, no camera provenance): "
                "a live photo is asked for",
            )
    return ClaimState.APPROVED, "nothing doubtful: approved automatically"
