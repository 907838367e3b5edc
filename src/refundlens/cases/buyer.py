"""What a buyer is told about its claim: the state in plain words, what is asked of it, and
by when. Never the findings, their numbers, the risk, the machine's action or the routing
reason: a forger who could read them could tune an edit until it passes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from .states import ClaimState

__all__ = ["BuyerStatus", "buyer_deadline", "buyer_status"]


def buyer_deadline(state: str, deadline: dt.datetime | None) -> dt.datetime | None:
    """The deadline a buyer is shown: its own, to send a live capture, to the minute; no other.
    The others (the merchant's window, a person's) are set when the analysis ends, so to the
    microsecond they told a forger how long its claim's analysis took: shorter when a cheap
    check had already found it and the expensive ones were skipped."""
    if state != ClaimState.AWAITING_CAPTURE.value or deadline is None:
        return None
    return deadline.replace(second=0, microsecond=0)


@dataclasses.dataclass(frozen=True, slots=True)
class BuyerStatus:
    en: str
    zh: str
    asked: str | None
    """What the buyer should do now: ``live_capture`` (a live photo of the damage), or None."""

    def as_dict(self) -> dict[str, str | None]:
        return {"en": self.en, "zh": self.zh, "asked": self.asked}


_OUTCOME = {
    "approved": ("approved", "已通过"),
    "rejected": ("not approved", "未通过"),
    "partial": ("partly approved", "部分通过"),
}


def buyer_status(state: str, outcome: str | None = None) -> BuyerStatus:
    """The buyer's view of ``state`` (and of a person's decision ``outcome``, once decided)."""
    s = ClaimState(state)
    if s in (ClaimState.SUBMITTED, ClaimState.ANALYSING):
        return BuyerStatus("We are checking your claim.", "我们正在核实您的申请。", None)
    if s == ClaimState.APPROVED:
        return BuyerStatus("Your claim is approved.", "您的申请已通过。", None)
    if s == ClaimState.AWAITING_CAPTURE:
        return BuyerStatus(
            # Where to take them is said beside it: the page's button, or the platform's app
            # where it takes them only there (a sentence naming both contradicted one).
            "Please take live photos of the damage before the deadline.",
            "请在截止时间前现场拍摄破损处的照片。",
            "live_capture",
        )
    if s == ClaimState.AWAITING_MERCHANT:
        # Said apart from a person's review: the state beside it read "awaiting the shop" while
        # this sentence said a person was reviewing (a walkthrough).
        return BuyerStatus(
            "The shop may answer with its evidence first; then a person reviews your claim.",
            "商家可先提交其证据，之后由人工审核您的申请。",
            None,
        )
    if s == ClaimState.UNDER_REVIEW:
        return BuyerStatus("A person is reviewing your claim.", "您的申请正在人工审核中。", None)
    if s == ClaimState.APPEALED:
        return BuyerStatus("The decision is being reviewed again.", "裁决正在复核中。", None)
    en, zh = _OUTCOME.get(outcome or "", ("decided", "已裁决"))
    final = s == ClaimState.FINAL
    return BuyerStatus(
        f"A person has decided: {en}." + ("" if final else " You may appeal."),
        f"人工审核结果：{zh}。" + ("" if final else "如有异议，您可以申诉。"),
        None,
    )
