"""zh-CN and en for the web page and the evidence report: gettext catalogs read with Babel.

The catalogs are ``locales/<lang>/LC_MESSAGES/messages.po`` (English msgids); they are compiled in
memory at start, so no build step is needed. Chinese is the default for a browser that prefers zh.
"""

from __future__ import annotations

import datetime as dt
import functools
import gettext
import io
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "LANGUAGES",
    "bar_width",
    "environment",
    "pick_language",
    "reworded",
    "risk_percent",
    "routing_reason",
    "term",
    "translations",
]

LANGUAGES = ("zh_CN", "en")
# The catalogs and templates are the web page's (service/); this module sits below both the
# evidence report (report/) and the page, which render with it.
LOCALES = Path(__file__).resolve().parents[1] / "service" / "locales"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    path = LOCALES / lang / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def pick_language(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return "zh_CN"


# cases/routing.py writes its reasons in English, as stored facts; the page shows them in the
# reader's language. Each pattern's template is a msgid in the catalogs.
_ROUTING_REASONS = (
    (r"a live photo was already given and doubts remain: a person decides", ()),
    (r"the analysis asks for a live photo", ()),
    (
        r"the analysis says (?P<action>\w+): the merchant may answer, then a person decides",
        ("action",),
    ),
    (r"(?P<claim_type>\w+) claims above (?P<limit>[\d.]+) always go to a person", ("claim_type",)),
    (
        r"with the order's other claims, (?P<total>[\d.e+]+) is claimed on this order: "
        r"above (?P<limit>[\d.]+), a person decides",
        (),
    ),
    (
        r"with the order's other claims, (?P<total>[\d.e+]+) is claimed on this order and "
        r"nothing vouches for the photos \(no reference recognises the item, no camera "
        r"provenance\): above (?P<limit>[\d.]+), a live photo is asked for",
        (),
    ),
    (
        r"with the order's other claims, (?P<total>[\d.e+]+) is claimed on this order of "
        r"(?P<amount>[\d.e+]+): a person decides",
        (),
    ),
    (r"a person decided on this claim before, or it was appealed: a person decides again", ()),
    (r"the merchant answered the claim with evidence: a person weighs it", ()),
    (r"a claim without photos always goes to a person", ()),
    (r"a claim on this order was rejected, or refunded in part, before: a person decides", ()),
    (r"a claim on this order was rejected before: a person decides", ()),  # stored before
    (r"nothing doubtful: approved automatically", ()),
    (
        r"a photo does not show the ordered product \(no reference of it matches\): "
        r"a live photo is asked for",
        (),
    ),
    (
        r"no reference photo of the ordered product matches a photo \(another side or part of "
        r"it, or another product\): a live photo is asked for",
        (),
    ),
    (
        r"no reference photo of the ordered product matches the live photo \(another side or "
        r"part of it, or another product\): a person decides",
        (),
    ),
    (
        r"the live photo does not show the ordered product \(no reference of it matches\): "
        r"a person decides",
        (),
    ),
    (
        r"nothing vouches for the photos of this (?P<claim_type>\w+) claim above "
        r"(?P<limit>[\d.]+) \(no reference recognises the item, no camera provenance\): "
        r"a live photo is asked for",
        ("claim_type",),
    ),
    (r"the analysis failed (?P<failures>\d+) times in a row: a person decides without it", ()),
    (r"appealed by the (?P<by>buyer|merchant|admin): a person looks again", ("by",)),
    (r"a live photo repeats a picture on file elsewhere: a person decides", ()),
    (
        r"the buyer filed more claims in the last (?P<days>[\d.e+-]+) days than this platform "
        r"approves automatically: a person decides",
        (),
    ),
    (
        r"the buyer's claims of the last (?P<days>[\d.e+-]+) days ask for more than this platform "
        r"approves automatically: a person decides",
        (),
    ),
    (
        r"the order is in (?P<currency>\S{1,3}) and the amount limits in (?P<limits>\S{1,3}): "
        r"a person decides",
        (),
    ),
    # An audit entry's ``why`` (cases/review.py), read on the same pages.
    (r"merchant answered", ()),
    (r"the merchant's window ran out: a person decides", ()),
    (r"no live photo came in time: a person decides", ()),
    (r"the time to appeal ran out", ()),
    (r"a person asked the buyer for a live photo: the claim waits for it", ()),
    (r"a person escalated the claim: a senior reviewer decides", ()),
    (r"a person decided: (?P<decision>\w+)", ("decision",)),
    (
        r"a live photo was given: a person compares it with the claim \(this platform "
        r"approves no claim with a live capture automatically\)",
        (),
    ),
    (
        r"the live photos do not confirm the damage the buyer marked \(not marked, not "
        r"seen alike where both photos show the surface, seen differently in another view, "
        r"or marked on a spot that looks as the shop's photo of the intact item shows it\): "
        r"a person decides",
        (),
    ),
    # Which of those it was (cases/routing.py: capture_doubt).
    (
        r"the live photos do not show the damage the claim photo shows, where both show "
        r"the same surface: a person decides",
        (),
    ),
    (
        r"a live photo shows the damage the buyer marked otherwise than the claim photo "
        r"does: a person decides",
        (),
    ),
    (
        r"the spot the buyer marked looks, in the live photos, as the shop's photo of the "
        r"intact item shows it: a person decides",
        (),
    ),
    (
        r"the buyer marked no damage on its photo, so the live photos cannot confirm it: a "
        r"person decides",
        (),
    ),
    (
        r"the live photos and the claim photo do not show enough of the marked spot alike "
        r"to compare it: a person decides",
        (),
    ),
)


# Reasons stored before their wording changed, read as the new wording: "a person decided:
# request_capture" read in Chinese as a final ruling (已由人工裁决).
_REWORDED = {
    "a person decided: request_capture": (
        "a person asked the buyer for a live photo: the claim waits for it"
    ),
    "a person decided: escalate": "a person escalated the claim: a senior reviewer decides",
}


def reworded(text: str | None) -> str:
    """A stored reason in its current English wording (the API's ``routing_reason``)."""
    return _REWORDED.get(text or "", text or "")


def routing_reason(text: str | None, lang: str) -> str:
    """``text`` (a reason from cases/routing.py) in ``lang``; unknown text is returned as is."""
    import re

    if not text:
        return ""
    text = _REWORDED.get(text, text)
    tr = translations(lang)
    for pattern, translated_groups in _ROUTING_REASONS:
        match = re.fullmatch(pattern, text)
        if match is None:
            continue
        template = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"%(\1)s", pattern).replace("\\", "")
        values = {
            k: tr.gettext(v) if k in translated_groups else v for k, v in match.groupdict().items()
        }
        return tr.gettext(template) % values
    return text


# Explicit bidi formatting: embeddings, overrides, isolates and marks (UAX #9). An open override
# in a buyer's text reorders whatever follows it in the same block of the page ("invoice\u202e
# gpj.exe" reads "invoiceexe.jpg"; a reason could turn the sha256 printed after it backwards).
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


# Combining marks stacked on one character: a reason of 1,200 of them on three letters drew
# lines up over the rows above it on the reviewer's page (a security review). No script writes
# more than a few on one letter.
_STACKED_MARKS = re.compile(
    "([\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]{4})"
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+"
)


def shown_plainly(value: Any) -> Any:
    """Every value a template prints, as the page shows it: text with its explicit bidi
    controls shown as U+FFFD, so that none reorders what follows it, and at most four combining
    marks on one character. Display only: what was sent is stored and hashed as it was (names
    and texts stored before uploads were cleaned, reasons, statements). The templates' own text
    (``Markup``) is left as it is."""
    from markupsafe import Markup

    if isinstance(value, str) and not isinstance(value, Markup):
        return _STACKED_MARKS.sub(r"\1", _BIDI_CONTROLS.sub("\ufffd", value))
    return value


def _arguments_shown_plainly(translate: Any) -> Any:
    """Jinja2's newstyle ``gettext``/``ngettext`` with every argument :func:`shown_plainly`."""
    import jinja2

    @jinja2.pass_context
    def wrapped(context: Any, *args: Any, **variables: Any) -> Any:
        return translate(context, *args, **{k: shown_plainly(v) for k, v in variables.items()})

    return wrapped


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    """A Jinja2 environment for ``lang`` with gettext installed; templates in ``templates/``."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("refundlens.service", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        finalize=shown_plainly,
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    # What a translated sentence takes in (a buyer's reason, a photo's name) comes out as Markup,
    # which ``finalize`` leaves alone: its bidi controls are shown plainly here, before.
    for name in ("gettext", "ngettext"):
        env.globals[name] = _arguments_shown_plainly(env.globals[name])
    env.globals["_"] = env.globals["gettext"]
    env.globals["lang"] = lang
    # Between two translated sentences: Chinese sets none (a space reads as a stray gap).
    env.globals["sentence_gap"] = "" if lang == "zh_CN" else " "
    env.filters["routing_reason"] = lambda text: routing_reason(text, lang)
    env.filters["term"] = lambda value: term(value, lang)
    env.filters["detector_name"] = lambda name: translations(lang).pgettext("detector", str(name))
    env.filters["skip_reason"] = lambda why: translations(lang).pgettext("skip reason", str(why))
    env.filters["bar_width"] = bar_width
    env.filters["risk_percent"] = risk_percent
    env.filters["strongest_finding"] = strongest_finding
    # The evidence report's readable values (rendering/readable.py): facts as rows with units,
    # times with their zone, codes that wrap only between their parts.
    from .readable import breakable, fact_rows, hours, money, number, when

    words = translations(lang)
    env.filters["fact_rows"] = lambda facts: fact_rows(
        facts,
        words.gettext,
        label=lambda name: words.pgettext("fact", name),
        worded=lambda value: words.pgettext("fact value", value),
    )
    env.filters["audit_words"] = lambda details: audit_words(details, lang)
    env.filters["finding_title"] = lambda code: finding_title(code, lang)
    env.filters["breakable"] = breakable
    env.filters["when"] = when
    env.filters["deadline"] = lambda moment, tz: deadline_words(moment, tz, lang)
    env.filters["number"] = number
    env.filters["hours"] = hours
    env.filters["money"] = money
    return env


def deadline_words(moment: dt.datetime | None, tz: dt.tzinfo, lang: str) -> str:
    """A deadline as a shopper reads it: to the minute in the shop's zone; in Chinese, China's
    zone is called 北京时间 ("UTC+08:00" read as jargon to a shopper, a walkthrough): the same
    clock reading in every zone of that offset, none of which keeps summer time."""
    from .readable import when

    text = when(moment, tz, False)
    if lang == "zh_CN" and text.endswith(" UTC+08:00"):
        return text.removesuffix(" UTC+08:00") + " 北京时间"
    return text


# An audit entry's details whose values are stored words (a state, an action, a role, a kind):
# shown in the reader's language, like the same words elsewhere on the page.
_AUDIT_WORDS = frozenset({"state", "from", "action", "kind", "by", "type", "outcome", "decision"})


def audit_words(details: Any, lang: str) -> Any:
    """An audit entry's ``details`` as a page shows them: stored words and the routing reason
    (``why``) in ``lang``. Display only: the entry is hashed as it was written."""
    if not isinstance(details, dict):
        return details
    shown = dict(details)
    for key, value in details.items():
        if key == "why" and isinstance(value, str):
            shown[key] = routing_reason(value, lang)
        elif key in _AUDIT_WORDS and isinstance(value, str):
            shown[key] = term(value, lang)
    return shown


def finding_title(code: object, lang: str) -> str:
    """A finding code's title in ``lang`` (the catalogs' context ``finding``: what the code
    means, in a few words), or "" for a code without one. Shown beside the code, which stays
    the contract."""
    text = str(code or "")
    titled = str(translations(lang).pgettext("finding", text)) if text else ""
    return "" if titled == text else titled


def term(value: object, lang: str) -> str:
    """A stored word (state, action, evidence kind, picture name) in ``lang``, as plain text.

    Templates translate variables with this filter, never with ``_()``: Jinja2 marks what
    ``_()`` returns as safe HTML (a msgid is the developer's text), so ``_(e.kind)`` once put a
    buyer's ``<img onerror>`` on the reviewer's page. A plain ``str`` is escaped like any
    other value; an unknown word comes back unchanged, and escaped too."""
    if value is None or value == "":
        return ""
    return str(translations(lang).gettext(str(value)))


def _down(value: float, digits: int) -> float:
    """``value`` cut (not rounded) to ``digits`` decimals, a hair of float error forgiven: a risk
    just under a threshold must not read as the threshold (0.3481 read "0.35 -> approve" where
    the policy asks for a live photo from 0.35: a merchant's walkthrough)."""
    scale = 10**digits
    return math.floor(value * scale + 1e-6) / scale


def risk_percent(risk: float) -> str:
    """A risk as a percentage to read: whole percents, but one decimal near 0 and 100 (0.9975
    read "100%", as if certain); cut, not rounded (:func:`_down`)."""
    value = 100 * min(max(float(risk), 0.0), 1.0)
    if 0 < value < 1 or 99 < value < 100:
        return f"{min(max(_down(value, 1), 0.1), 99.9):.1f}%"
    return f"{_down(value, 0):.0f}%"


def risk_fraction(risk: float) -> str:
    """A risk as the command line prints it, two decimals, cut as :func:`risk_percent` cuts."""
    return f"{_down(min(max(float(risk), 0.0), 1.0), 2):.2f}"


def strongest_finding(report: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The finding of a stored analysis that moved the risk most, either way (its weight as
    fused, else its strength for an analysis older than the weights); None without findings."""
    found = [f for image in (report or {}).get("images") or () for f in image.get("findings") or ()]

    def weight(f: Mapping[str, Any]) -> float:
        return abs(float(f.get("contribution", f.get("strength", 0.0)) or 0.0))

    return max(found, key=weight) if found else None


def bar_width(risk: float) -> str:
    """The CSS class of a risk bar's width, in 5% steps (no inline style under the CSP)."""
    return f"w{5 * round(20 * min(max(float(risk), 0.0), 1.0))}"
