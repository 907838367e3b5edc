"""What a refused form on a claim page tells its user: one sentence, in the page's language, of
what happened and what to do, then the code (which docs/errors.md explains at length).

The forms redirect back to the page with the code only (``?error=``); the sentence is looked up
here, so a link cannot make the page say anything refundlens did not write. A code without a
sentence of its own reads the general one."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["SENTENCES", "refusal"]

SENTENCES: dict[str, str] = {
    "appeal.in_your_favour": "The decision went your way: only the other side may appeal it.",
    "appeal.limit_reached": "This claim has had all the appeals it may have.",
    "appeal.window_closed": "This claim can no longer be appealed: the time to appeal ran out.",
    "appeal.reason_required": "Say why you appeal: the reason cannot be empty.",
    "auth.forbidden": "Your account may not do this on this claim.",
    "capture.app_required": "This platform takes live photos only in its own app.",
    "capture.not_requested": "No live photo is asked for on this claim now.",
    "capture.too_many_links": "This claim has had all the capture links it may have: a person "
    "will look at it.",
    "capture.too_many_tokens": "Too many capture links are open on this claim: use one of them.",
    "claim.changed": "The claim was analysed again while this page was open: read the new "
    "analysis, then decide.",
    "claim.closed": "The claim is closed: nothing more can be done on it.",
    "claim.over_order_amount": "The order's other claims already take its amount: this much "
    "cannot be granted.",
    "claim.illegal_transition": "The claim's state does not allow this now.",
    "claim.own_decision_appealed": "This person decided the claim before: someone who has not decides the appeal.",
    "decision.bad_amount": "The amount must be a number above 0 and below the amount claimed.",
    "decision.bad_value": "That decision is not one of those offered.",
    "decision.reason_required": "Give a reason for this decision.",
    "decision.note_not_allowed": "A note to the buyer does not go with escalate.",
    "evidence.bad_kind": "Choose what kind of evidence this is.",
    "evidence.empty": "Write a statement or attach a file.",
    "evidence.file_required": "This kind of evidence needs a file.",
    "evidence.too_many": "You have sent all the evidence this claim takes.",
    "media.too_large": "The file is too large.",
    "media.not_an_image": "The file is not a picture this kind of evidence takes.",
    "media.unsupported_format": "The file's format is not one this service reads.",
    "media.corrupt": "The file is damaged and could not be read.",
    "media.truncated": "The file is incomplete: send it again.",
    "media.unreadable": "The file could not be read.",
    "media.decompression_bomb": "The picture is too large once opened.",
    "media.too_many_pixels": "The picture has too many pixels.",
    "media.animated": "Animated pictures are not taken: send a single photo.",
    "media.empty": "The file is empty.",
    "media.too_small": "The picture is too small to show the damage.",
    "media.video_too_long": "The video is too long.",
    "media.video_unreadable": "The video could not be read.",
    "request.bad_field": "A field holds what it may not (too long, or characters it cannot hold).",
    "service.busy": "The service is busy: nothing was saved. Send it again in a moment.",
    "media.not_found": "The file was not found: check its path.",
    "order.bad_dates": "The delivery time is before the shipment time.",
    "order.time_ahead": "An order's time is in the future: give it once it has happened, with its UTC offset.",
    "order.time_too_early": "An order's time is too early to be real.",
    "usage": "The command was not given what it needs: see its --help.",
    "usage.bad_time": "A time must be written as ISO 8601 with its UTC offset, such as 2025-09-12T15:00+08:00.",
}

GENERAL = "This could not be done."


def refusal(gettext: Callable[[str], str], code: str) -> str:
    """The sentence for ``code`` in the language of ``gettext``."""
    return gettext(SENTENCES.get(code, GENERAL))
