"""The reviewer and merchant web page: server-rendered Jinja2, a few lines of plain JS, zh-CN and en.

Login is with an API key (the same roles as the API); it opens a server-side session whose random
token is the HttpOnly, SameSite=Strict cookie (the key itself is never stored in the browser), and
logging out deletes it. Every POST carries the session's CSRF token and must come from this site
(Origin, or Referer where a browser sends no Origin). Every form field passes the same rules as
the API's (``fields.py``). Everything a page shows goes through the same visibility rule as the
API; a claim another user may not see answers a 403 page. docs/security.md has the threat model.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import math
import re
import secrets
from importlib import resources
from typing import Any

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from .. import cases
from ..cases.buyer import buyer_status
from ..errors import RefundlensError
from ..rendering.i18n import LANGUAGES, environment, pick_language
from ..report.evidence import REPORT_CSP, gather, render_html, render_pdf
from ..store.sql.models import AuditEntry, Claim
from ..store.sql.queries import latest_assessment
from ..store.sql.repositories import SqlStore
from .auth import (
    AuthError,
    Principal,
    authenticate,
    can_see_claim,
    close_web_session,
    open_web_session,
    web_session,
)
from .fields import (
    EVIDENCE_KINDS,
    MAX_FILE_NAME,
    MAX_ID,
    MAX_REASON,
    MAX_STATEMENT,
    FieldError,
    check_id,
    check_text,
)

__all__ = ["router"]

router = APIRouter(prefix="/web", include_in_schema=False)
COOKIE = "rl_session"
LOGIN_COOKIE = "rl_login"
"""Before a session exists, the login form's CSRF token is a cookie it must echo (double submit)."""
QUEUE_STATES = ("under_review", "awaiting_merchant", "awaiting_capture", "appealed")


def _lang(request: Request) -> str:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get("lang"),
        request.headers.get("accept-language"),
    )


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    lang = _lang(request)
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    html = (
        environment(lang)
        .get_template(template)
        .render(request=request, languages=LANGUAGES, **context)
    )
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", lang, samesite="strict", max_age=365 * 86400)
    return response


def _who(request: Request) -> Principal | None:
    """The logged-in user, or None; keeps the session's CSRF token for the page's forms."""
    with request.app.state.runtime.db.session() as session:
        found = web_session(session, request.cookies.get(COOKIE))
    if found is None:
        return None
    request.state.csrf = found[1]
    return found[0]


def _same_site(request: Request) -> bool:
    """The request comes from a page of this site (Origin, else Referer, names this origin or
    one of ``web_origins``). A browser sends Origin with every POST; a form posted from another
    site names that site, and a request naming neither is refused."""
    allowed = {str(request.base_url).rstrip("/")}
    extra = request.app.state.runtime.settings.web_origins
    allowed |= {o.strip().rstrip("/") for o in extra.split(",") if o.strip()}
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer", "")
        match = re.match(r"^(https?://[^/?#]+)", referer)
        origin = match[1] if match else None
    return origin in allowed


def _posted_by(request: Request, csrf: str) -> Principal | Response:
    """The user behind a POST, if it carries the session's CSRF token and comes from this site;
    otherwise the response to send (the login page, or a 403 page)."""
    user = _who(request)
    if user is None:
        return _login_redirect()
    expected = getattr(request.state, "csrf", "")
    if not _same_site(request) or not (csrf and hmac.compare_digest(csrf, expected)):
        return _page(request, "error.html", status=403, user=user, message="csrf")
    return user


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/web/login", status_code=303)


def _hours_left(deadline: dt.datetime | None) -> float | None:
    if deadline is None:
        return None
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=dt.UTC)
    return round((deadline - dt.datetime.now(dt.UTC)).total_seconds() / 3600, 1)


def _set_private_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int, path: str = "/"
) -> None:
    """A cookie no script reads, no other site sends, and HTTPS keeps to itself."""
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=max_age,
        path=path,
    )


def _login_page(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
    # The browser's login token is kept while it is well formed: a second try from the same
    # page (a mistyped key) still carries the token the first page gave.
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        token = secrets.token_urlsafe(32)
    response = _page(request, "login.html", status=status, user=None, error=error, csrf=token)
    _set_private_cookie(request, response, LOGIN_COOKIE, token, 3600, path="/web/login")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return _login_page(request)


@router.post("/login")
def login(request: Request, key: str = Form(""), csrf: str = Form("")) -> Response:
    runtime = request.app.state.runtime
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not _same_site(request) or not (csrf and expected and hmac.compare_digest(csrf, expected)):
        # A login posted from another site (login CSRF) or without the form's token.
        return _login_page(request, status=403, error="csrf")
    try:
        with runtime.db.session() as session:
            principal = authenticate(session, f"Bearer {key.strip()}")
            token, _ = open_web_session(session, principal, runtime.settings.web_session_hours)
    except AuthError:
        return _login_page(request, status=401, error="invalid")
    response = RedirectResponse("/web/", status_code=303)
    _set_private_cookie(
        request, response, COOKIE, token, int(runtime.settings.web_session_hours * 3600)
    )
    response.delete_cookie(LOGIN_COOKIE, path="/web/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf: str = Form("")) -> Response:
    user = _posted_by(request, csrf)
    if not isinstance(user, Principal):
        return user
    with request.app.state.runtime.db.session() as session:
        close_web_session(session, request.cookies.get(COOKIE))
    response = _login_redirect()
    response.delete_cookie(COOKIE)
    return response


@router.get("/")
def home(request: Request) -> Response:
    return RedirectResponse("/web/queue", status_code=303) if _who(request) else _login_redirect()


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is None or math.isfinite(value) else None


def _refused(request: Request, user: Principal | None, code: str, status: int) -> HTMLResponse:
    return _page(request, "error.html", status=status, user=user, message=code)


# What ?done= and ?error= may say on the claim page: a known word, or a code's shape. Anything
# else is dropped, so a link cannot make the page say what refundlens did not.
DONE = frozenset({"evidence", "assigned", "appealed", *cases.DECISIONS})
_CODE = re.compile(r"[a-z_]{1,40}\.[a-z_]{1,60}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@router.get("/queue", response_class=HTMLResponse)
def queue(
    request: Request,
    state: str | None = None,
    merchant: str | None = None,
    action: str | None = None,
    code: str | None = None,
    min_amount: str | None = None,
    min_risk: str | None = None,
    mine: str | None = None,
) -> Response:
    user = _who(request)
    # An empty field of the filter form means "any"; a number that does not parse, too.
    amount_floor = _number(min_amount)
    risk_floor = _number(min_risk)
    if user is None:
        return _login_redirect()
    if user.role == "buyer":
        # Filtering by a finding code, the action or the risk would tell a buyer what the
        # analysis saw in its own claim: a buyer filters by state only.
        action = code = None
        risk_floor = None
    try:
        for name, value in (("state", state), ("merchant", merchant), ("action", action)):
            check_text(name, value or "", MAX_ID)
        check_text("code", code or "", 200)
    except FieldError as exc:
        return _refused(request, user, exc.code, 422)
    runtime = request.app.state.runtime
    with runtime.db.session() as session:
        query = select(Claim)
        if user.role == "merchant":
            query = query.where(Claim.merchant_id == user.tenant_id)
        elif user.role == "buyer":
            query = query.where(Claim.buyer_id == user.subject)
        elif user.role == "reviewer":
            query = query.where(Claim.merchant_id.in_(sorted(user.tenants)))
        counts: dict[str, int] = {}
        rows = list(session.execute(query).scalars())
        for row in rows:
            counts[row.state] = counts.get(row.state, 0) + 1
        if state:
            rows = [r for r in rows if r.state == state]
        elif user.role in ("reviewer", "admin"):
            rows = [r for r in rows if r.state in QUEUE_STATES]
        if merchant:
            rows = [r for r in rows if r.merchant_id == merchant]
        if mine:
            rows = [r for r in rows if r.assigned_to == user.key_id]
        if action:
            rows = [r for r in rows if r.action == action]
        if amount_floor is not None:
            rows = [r for r in rows if r.amount >= amount_floor]
        if risk_floor is not None:
            # In percent on the page, as the risk bars show it.
            rows = [r for r in rows if r.risk is not None and 100 * r.risk >= risk_floor]
        if code:
            keep = []
            for r in rows:
                latest = latest_assessment(session, r.id)
                codes = {
                    f["code"]
                    for image in (latest.report["images"] if latest else [])
                    for f in image["findings"]
                }
                if code in codes:
                    keep.append(r)
            rows = keep
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        rows.sort(
            key=lambda r: (
                r.deadline_at.replace(tzinfo=dt.UTC)
                if r.deadline_at and r.deadline_at.tzinfo is None
                else (r.deadline_at or far)
            )
        )
        hide = user.role == "buyer"  # never the risk or the machine's action (cases/buyer.py)
        items = [
            {
                "id": r.id,
                "state": r.state,
                "risk": None if hide else r.risk,
                "action": None if hide else r.action,
                "amount": r.amount,
                "merchant": r.merchant_id,
                "type": r.claim_type,
                "hours_left": _hours_left(r.deadline_at),
                "assigned": r.assigned_to,
            }
            for r in rows
        ]
    return _page(
        request,
        "queue.html",
        user=user,
        items=items,
        counts=counts,
        filters={
            "state": state or "",
            "merchant": merchant or "",
            "action": action or "",
            "code": code or "",
            "min_amount": "" if amount_floor is None else f"{amount_floor:g}",
            "min_risk": "" if risk_floor is None else f"{risk_floor:g}",
            "mine": bool(mine),
        },
    )


def _visible(request: Request, claim_id: str, user: Principal) -> Claim | None:
    try:
        check_id("claim_id", claim_id)
    except FieldError:
        return None
    with request.app.state.runtime.db.session() as session:
        claim = session.get(Claim, claim_id)
        if claim is None or not can_see_claim(user, claim):
            return None
        return claim


def _forbidden(request: Request, user: Principal | None) -> HTMLResponse:
    return _page(request, "error.html", status=403, user=user, message="forbidden")


@router.get("/claims/{claim_id}", response_class=HTMLResponse)
def claim_page(
    request: Request, claim_id: str, done: str | None = None, error: str | None = None
) -> Response:
    user = _who(request)
    if user is None:
        return _login_redirect()
    if _visible(request, claim_id, user) is None:
        return _forbidden(request, user)
    runtime = request.app.state.runtime
    if user.role == "buyer":
        return _buyer_page(request, claim_id, user, done, error)
    with runtime.db.session() as session:
        case = gather(session, runtime.blobs, claim_id, inline=False)
        audit = [
            {
                "seq": a.seq,
                # In the order's zone, like the timeline, to the second, the zone written out.
                "at": a.at.astimezone(cases.order_time_zone(case.order)).isoformat(
                    sep=" ", timespec="seconds"
                ),
                "actor": a.actor,
                "action": a.action,
                "hash": a.entry_hash,
            }
            for a in session.execute(
                select(AuditEntry).where(AuditEntry.claim_id == claim_id).order_by(AuditEntry.seq)
            ).scalars()
        ]
        others = select(Claim).where(Claim.buyer_id == case.claim.buyer_id, Claim.id != claim_id)
        # The buyer's other claims that this viewer may see, as on the API: a merchant sees
        # those with its own shop, a reviewer those of its tenants.
        if user.role == "merchant":
            others = others.where(Claim.merchant_id == user.tenant_id)
        elif user.role == "reviewer":
            others = others.where(Claim.merchant_id.in_(sorted(user.tenants)))
        elif user.role == "buyer":
            others = others.where(Claim.buyer_id == user.subject)
        history = list(session.execute(others.order_by(Claim.seq.desc()).limit(20)).scalars())
        timeline = _timeline(case)
    # Findings by how much they moved the risk, either way (a copy: the stored report is kept).
    if case.report:
        case.report = {
            **case.report,
            "images": [
                {**image, "findings": sorted(image["findings"], key=lambda f: -abs(f["strength"]))}
                for image in case.report.get("images", [])
            ],
        }
    return _page(
        request,
        "claim.html",
        user=user,
        case=case,
        audit=audit,
        history=history,
        timeline=timeline,
        hours_left=_hours_left(case.claim.deadline_at),
        done=done if done in DONE else None,
        error=error if error and _CODE.fullmatch(error) else None,
        lang_code=_lang(request),
        allowed=cases.allowed_decisions(case.claim.state),
        blocks=_picture_blocks(case),
    )


def _picture_blocks(case: Any) -> list[dict[str, Any]]:
    """The analysis' pictures, one block per analysed photo (in the report's order, which is
    the photos' order), each with that photo's hash for the compare slider."""
    blocks: list[dict[str, Any]] = []
    for index, image in enumerate((case.report or {}).get("images", [])):
        names = image.get("pictures") or {}
        pictures = [p for p in case.pictures if p["sha256"] in names.values()]
        if not pictures:
            continue
        photo = case.photos[index]["sha256"] if index < len(case.photos) else None
        blocks.append({"path": image.get("path", ""), "pictures": pictures, "photo": photo})
    return blocks


def _buyer_page(
    request: Request, claim_id: str, user: Principal, done: str | None, error: str | None
) -> HTMLResponse:
    """The buyer's page: no finding, number, risk or picture of the analysis (cases/buyer.py)."""
    runtime = request.app.state.runtime
    with runtime.db.session() as session:
        case = gather(session, runtime.blobs, claim_id, inline=False)
    latest = case.decisions[-1].outcome if case.decisions else None
    return _page(
        request,
        "claim_buyer.html",
        user=user,
        case=case,
        told=buyer_status(case.claim.state, latest),
        hours_left=_hours_left(case.claim.deadline_at),
        done=done if done in DONE else None,
        error=error if error and _CODE.fullmatch(error) else None,
    )


def _timeline(case: Any) -> list[dict[str, Any]]:
    """Order events on one axis, as fractions of the span, for the drawn timeline."""
    events: list[tuple[str, dt.datetime]] = []
    for label, moment in (
        ("shipped", case.order.shipped_at),
        ("delivered", case.order.delivered_at),
        ("claimed", case.claim.created_at),
    ):
        if moment is not None:
            events.append((label, moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)))
    for image in (case.report or {}).get("images", []):
        for finding in image.get("findings", []):
            taken = finding.get("facts", {}).get("captured_at")
            if finding["code"].startswith("capture.") and taken:
                with contextlib.suppress(ValueError):
                    events.append(
                        ("taken", dt.datetime.fromisoformat(str(taken).replace(" ", "T")))
                    )
                break
    if not events:
        return []
    # Shown in the zone the merchant's times were sent in, with the zone written out.
    zone = cases.order_time_zone(case.order)
    lo = min(m for _, m in events)
    hi = max(m for _, m in events)
    span = max((hi - lo).total_seconds(), 1.0)
    return [
        {
            "label": label,
            "at": moment.astimezone(zone).isoformat(timespec="minutes"),
            "x": round(5 + 90 * (moment - lo).total_seconds() / span, 1),
        }
        for label, moment in sorted(events, key=lambda e: e[1])
    ]


@router.get("/claims/{claim_id}/blob/{sha256}")
def claim_blob(request: Request, claim_id: str, sha256: str) -> Response:
    """A photo or picture of this claim (only blobs the claim refers to)."""
    user = _who(request)
    if user is None or _visible(request, claim_id, user) is None:
        return Response(status_code=403)
    if not _SHA256.fullmatch(sha256):
        return Response(status_code=404)
    runtime = request.app.state.runtime
    with runtime.db.session() as session:
        case = gather(session, runtime.blobs, claim_id, inline=False)
    allowed = {p["sha256"] for p in case.photos}
    if user.role != "buyer":  # the analysis' pictures and the shop's photos are not the buyer's
        allowed |= {p["sha256"] for p in case.pictures} | {r.sha256 for r in case.references}
    if sha256 not in allowed:
        return Response(status_code=404)
    data = runtime.blobs.get(sha256)
    media = (
        "image/png"
        if data[:4] == b"\x89PNG"
        else "image/jpeg"
        if data[:2] == b"\xff\xd8"
        else "application/octet-stream"
    )
    return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


def _claim_action(request: Request, claim_id: str, csrf: str, done: str, act: Any) -> Response:
    """Run ``act(session, actor, claim)`` for a visible claim; back to the claim page either way."""
    user = _posted_by(request, csrf)
    if not isinstance(user, Principal):
        return user
    if _visible(request, claim_id, user) is None:
        return _forbidden(request, user)
    runtime = request.app.state.runtime
    try:
        with runtime.db.session() as session:
            claim = session.get(Claim, claim_id, with_for_update=True, populate_existing=True)
            assert claim is not None
            act(session, cases.Actor(user.key_id, user.role), claim, user)
    except RefundlensError as exc:
        return RedirectResponse(f"/web/claims/{claim_id}?error={exc.code}", status_code=303)
    return RedirectResponse(f"/web/claims/{claim_id}?done={done}", status_code=303)


@router.post("/claims/{claim_id}/decision")
def decide(
    request: Request,
    claim_id: str,
    decision: str = Form(""),
    reason: str = Form(""),
    amount: str = Form(""),
    csrf: str = Form(""),
) -> Response:
    settings = request.app.state.runtime.settings
    try:
        check_text("reason", reason, MAX_REASON)
        value = _amount(amount)
    except RefundlensError as exc:
        return RedirectResponse(f"/web/claims/{claim_id}?error={exc.code}", status_code=303)
    return _claim_action(
        request,
        claim_id,
        csrf,
        decision,
        lambda s, actor, claim, _user: cases.decide(
            SqlStore(s), actor, claim, decision, reason, value, settings
        ),
    )


def _amount(text: str) -> float | None:
    """A decision's amount as typed: empty is none; anything but a finite number is refused."""
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or len(text) > 40:
        raise RefundlensError("decision.bad_amount", "The amount is not a number.")
    return value


@router.post("/claims/{claim_id}/appeal")
def appeal(
    request: Request, claim_id: str, reason: str = Form(""), csrf: str = Form("")
) -> Response:
    """The buyer or the merchant contests a decision or an automatic approval, as in the API."""
    settings = request.app.state.runtime.settings
    try:
        check_text("reason", reason, MAX_REASON)
    except RefundlensError as exc:
        return RedirectResponse(f"/web/claims/{claim_id}?error={exc.code}", status_code=303)
    return _claim_action(
        request,
        claim_id,
        csrf,
        "appealed",
        lambda s, actor, claim, _user: cases.appeal(
            SqlStore(s), actor, claim, reason, settings=settings
        ),
    )


@router.post("/claims/{claim_id}/evidence")
async def evidence(
    request: Request,
    claim_id: str,
    kind: str = Form(""),
    statement: str = Form(""),
    file: UploadFile | None = None,
    csrf: str = Form(""),
) -> Response:
    user = _posted_by(request, csrf)
    if not isinstance(user, Principal):
        return user
    if _visible(request, claim_id, user) is None:
        return _forbidden(request, user)
    runtime = request.app.state.runtime
    try:
        # The API's rules, word for word: a kind from the list, a statement within its length.
        if kind not in EVIDENCE_KINDS:
            raise RefundlensError("evidence.bad_kind", "Unknown evidence kind.")
        check_text("statement", statement, MAX_STATEMENT)
    except RefundlensError as exc:
        return RedirectResponse(f"/web/claims/{claim_id}?error={exc.code}", status_code=303)
    upload = None
    if file is not None and file.filename:
        data = await file.read(runtime.settings.max_file_bytes + 1)
        if len(data) > runtime.settings.max_file_bytes:
            return RedirectResponse(
                f"/web/claims/{claim_id}?error=media.too_large", status_code=303
            )
        upload = (_file_name(file.filename), data)

    def work() -> str | None:
        try:
            with runtime.db.session() as session:
                claim = session.get(Claim, claim_id, with_for_update=True, populate_existing=True)
                assert claim is not None
                cases.add_evidence(
                    SqlStore(session),
                    runtime.blobs,
                    cases.Actor(user.key_id, user.role),
                    claim,
                    kind,
                    statement,
                    upload,
                    settings=runtime.settings,
                )
        except RefundlensError as exc:
            return exc.code
        return None

    problem = await run_in_threadpool(work)
    suffix = f"error={problem}" if problem else "done=evidence"
    return RedirectResponse(f"/web/claims/{claim_id}?{suffix}", status_code=303)


def _file_name(name: str) -> str:
    """An uploaded file's name as kept: valid text, cut to its limit (phones make long ones)."""
    cleaned = name.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return cleaned[:MAX_FILE_NAME] or "upload"


@router.get("/claims/{claim_id}/report.{fmt}")
def report(request: Request, claim_id: str, fmt: str) -> Response:
    user = _who(request)
    if user is None:
        return _login_redirect()
    if _visible(request, claim_id, user) is None:
        return _forbidden(request, user)
    if user.role == "buyer":  # the report carries the analysis' numbers (cases/buyer.py)
        return _refused(request, user, "report.not_for_buyers", 403)
    if fmt not in ("html", "pdf"):
        return Response(status_code=404)
    runtime = request.app.state.runtime
    with runtime.db.session() as session:
        html = render_html(
            gather(session, runtime.blobs, claim_id), _lang(request), runtime.settings.jurisdiction
        )
    if fmt == "html":
        return HTMLResponse(
            html,
            headers={
                "Content-Disposition": f'attachment; filename="refundlens-{claim_id}.html"',
                # Opened in a browser, the report may show its own inline pictures and style,
                # and nothing else: no script, no fetch, no frame.
                "Content-Security-Policy": REPORT_CSP,
            },
        )
    if fmt == "pdf":
        pdf = render_pdf(html, runtime.settings.chromium_path)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="refundlens-{claim_id}.pdf"'},
        )
    return Response(status_code=404)


STATIC = {"refundlens.css": "text/css", "claim.js": "text/javascript"}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The page's one stylesheet and one script (the CSP allows no inline ones)."""
    if name not in STATIC:
        return Response(status_code=404)
    data = resources.files("refundlens.service").joinpath(f"static/{name}").read_bytes()
    return Response(
        data, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=3600"}
    )


def _skus(request: Request, user: Principal) -> list[dict[str, str]]:
    from ..store.sql.models import Sku

    with request.app.state.runtime.db.session() as session:
        query = select(Sku).order_by(Sku.created_at.desc())
        if user.role == "merchant":
            query = query.where(Sku.merchant_id == user.tenant_id)
        return [
            {"id": s.id, "label": f"{s.external_id} {s.title}".strip()}
            for s in session.execute(query.limit(500)).scalars()
        ]


@router.get("/check", response_class=HTMLResponse)
def check_form(request: Request) -> Response:
    """The CLI's check in the browser: a photo against the merchant's listing photos, no case."""
    user = _who(request)
    if user is None:
        return _login_redirect()
    if user.role not in ("merchant", "admin"):
        return _forbidden(request, user)
    return _page(
        request, "check.html", user=user, skus=_skus(request, user), result=None, error=None
    )


@router.post("/check", response_class=HTMLResponse)
async def check_run(
    request: Request,
    sku_id: str = Form(""),
    photo: UploadFile | None = None,
    csrf: str = Form(""),
) -> Response:
    user = _posted_by(request, csrf)
    if not isinstance(user, Principal):
        return user
    if user.role not in ("merchant", "admin"):
        return _forbidden(request, user)
    try:
        check_id("sku_id", sku_id)
    except FieldError as exc:
        return _refused(request, user, exc.code, 422)
    runtime = request.app.state.runtime
    data = await photo.read(runtime.settings.max_file_bytes + 1) if photo is not None else b""

    def work() -> dict[str, Any]:
        import base64

        from ..media import media_from_bytes
        from ..pipeline import analyze
        from ..report import assessment_to_dict, picture_blobs
        from ..store.sql.models import ReferencePhoto, Sku

        with runtime.db.session() as session:
            sku = session.get(Sku, sku_id)
            if sku is None or (user.role == "merchant" and sku.merchant_id != user.tenant_id):
                raise cases.NotFound("sku", sku_id)
            refs = (
                session.execute(select(ReferencePhoto).where(ReferencePhoto.sku_id == sku.id))
                .scalars()
                .all()
            )
            references = [
                media_from_bytes(runtime.blobs.get(r.sha256), r.name, runtime.settings)
                for r in refs
            ]
        if len(data) > runtime.settings.max_file_bytes:
            raise RefundlensError(
                "media.too_large",
                f"The photo is over max_file_bytes ({runtime.settings.max_file_bytes}).",
            )
        claim = media_from_bytes(
            data,
            _file_name(photo.filename) if photo is not None and photo.filename else "photo",
            runtime.settings,
        )
        assessment = analyze([claim], references, settings=runtime.settings, policy=runtime.policy)
        report = assessment_to_dict(assessment)
        pictures = picture_blobs(assessment.images[0])
        shown = pictures.get("overlay")
        return {
            "report": report,
            "overlay": "data:image/jpeg;base64," + base64.b64encode(shown).decode()
            if shown
            else None,
        }

    try:
        result = await run_in_threadpool(work)
        error = None
    except RefundlensError as exc:
        result, error = None, exc.code
    return _page(
        request,
        "check.html",
        status=200 if error is None else 422,
        user=user,
        skus=_skus(request, user),
        result=result,
        error=error,
    )


@router.post("/claims/{claim_id}/assign")
def assign_to_me(
    request: Request, claim_id: str, release: str = Form(""), csrf: str = Form("")
) -> Response:
    return _claim_action(
        request,
        claim_id,
        csrf,
        "assigned",
        lambda s, actor, claim, user: cases.assign(
            SqlStore(s), actor, claim, None if release else user.key_id
        ),
    )
