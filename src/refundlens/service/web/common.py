"""What every page shares: rendering, cookies, the one user dependency and its guards.

Every page names the user it serves with one of three ``Annotated`` types, all built on the
same session lookup (``_user``): ``MaybeUser`` (none is fine), ``Viewer`` (logged in, else the
login page) and ``Poster`` (logged in, and the POST carries the session's CSRF token and comes
from this site, else the login page or a 403 page). ``SeenClaim``/``PostedClaim`` add the API's
visibility rule for the path's claim (a 403 page otherwise). A guard that refuses raises
:class:`PageAnswer` with the page to send; ``create_app`` installs :func:`answer_page` for it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import io
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...errors import RefundlensError
from ...media import media_from_bytes
from ...rendering.i18n import LANGUAGES, environment, pick_language
from ...runtime import Runtime
from ...store.sql.models import ApiKey, Claim
from .. import fields
from ..auth import Principal, can_see_claim, web_session
from ..deps import decode_slot
from ..fields import FieldError, check_id
from ..rate_limit import accept_credential

log = logging.getLogger(__name__)

__all__ = [
    "COOKIE",
    "LOGIN_COOKIE",
    "MaybeUser",
    "PageAnswer",
    "PostedClaim",
    "Poster",
    "SeenClaim",
    "Viewer",
    "analysis_jpeg",
    "answer_page",
    "back_to",
    "file_name",
    "forbidden",
    "hours_left",
    "key_labels",
    "lang",
    "login_redirect",
    "page",
    "refused",
    "runtime_of",
    "said_here",
    "same_site",
    "set_private_cookie",
    "shop_only",
    "visible",
]

COOKIE = "rl_session"
LOGIN_COOKIE = "rl_login"
"""Before a session exists, the login form's CSRF token is a cookie it must echo (double submit)."""


class PageAnswer(Exception):
    """A guard's answer instead of the page: the login page, or a 403 page."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


async def answer_page(_request: Request, exc: Exception) -> Response:
    """The exception handler for :class:`PageAnswer`."""
    assert isinstance(exc, PageAnswer)
    return exc.response


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def lang(request: Request) -> str:
    return pick_language(
        request.query_params.get("lang"),
        request.cookies.get("lang"),
        request.headers.get("accept-language"),
    )


_QUEUE_FILTERS = frozenset(
    {"state", "merchant", "action", "code", "min_amount", "min_risk", "mine", "offset"}
)
"""The queue's filters (web/queue.py), kept when the language is switched."""


def _lang_links(request: Request) -> dict[str, str]:
    """The header's language links: this page with ``lang`` set, and on the queue its filters
    kept (a reviewer's walkthrough lost them on switching). Nothing else of a query is echoed:
    a sign-in link's page must not print what a link edited by someone else carries."""
    kept = []
    if request.url.path == "/web/queue":
        kept = [(k, v) for k, v in request.query_params.multi_items() if k in _QUEUE_FILTERS]
    return {code: "?" + urlencode([*kept, ("lang", code)]) for code in LANGUAGES}


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    language = lang(request)
    context.setdefault("csrf", getattr(request.state, "csrf", ""))
    # Whether links into the signed-in pages lead anywhere: a buyer who opened the capture link
    # from a message has no session, and "Back to your claim" led to the API-key sign-in page
    # (a buyer's walkthrough). A cookie alone is no session: it may have ended (a review).
    if "signed_in" not in context:
        context["signed_in"] = context.get("user") is not None or _has_session(request)
    html = (
        environment(language)
        .get_template(template)
        .render(request=request, languages=LANGUAGES, lang_links=_lang_links(request), **context)
    )
    response = HTMLResponse(html, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie("lang", language, samesite="strict", max_age=365 * 86400)
    return response


def said_here(request: Request, claim_id: str, query: str) -> str:
    """A tag binding a claim page's ``done=word`` or ``error=code`` to this session (keyed by
    its CSRF secret) and claim: a link someone sends cannot make the page say that something
    was saved or refused."""
    key = str(getattr(request.state, "csrf", "")).encode()
    return hmac.new(key, f"{claim_id}\x00{query}".encode(), "sha256").hexdigest()[:20]


def refused(request: Request, user: Principal | None, code: str, status: int) -> HTMLResponse:
    return page(request, "error.html", status=status, user=user, message=code)


@contextlib.contextmanager
def heavy_work(request: Request, user: Principal | None) -> Iterator[None]:
    """Hold one of the process's ``web_heavy_work_slots`` for an analysis or a PDF; where none
    is free, answer 503 ``service.busy`` with ``Retry-After`` at once (no queue to fill)."""
    runtime = runtime_of(request)
    with runtime.heavy_slot(user.key_id if user is not None else None) as taken:
        if not taken:
            log.warning(
                "page busy: every one of web_heavy_work_slots (%d) held, or this key holds one",
                runtime.settings.web_heavy_work_slots,
            )
            busy = refused(request, user, "service.busy", 503)
            busy.headers["Retry-After"] = str(runtime.settings.busy_retry_after_seconds)
            raise PageAnswer(busy)
        yield


def forbidden(request: Request, user: Principal | None) -> HTMLResponse:
    return page(request, "error.html", status=403, user=user, message="forbidden")


# A page of this site to come back to after the login: a path under /web/ only (no scheme, no
# host, no "//", no backslash), so that the parameter can never send a user to another site.
_BACK_TO = re.compile(r"/web/[A-Za-z0-9_\-/]{0,200}")


def back_to(path: str | None) -> str | None:
    """``path`` if it is a page of this site's web pages to return to after the login."""
    if path and _BACK_TO.fullmatch(path) and "//" not in path and not path.startswith("/web/login"):
        return path
    return None


def login_redirect(wanted: str | None = None) -> RedirectResponse:
    """To the login page; ``wanted`` (a page of this site, :func:`back_to`) is opened after it."""
    target = back_to(wanted)
    return RedirectResponse("/web/login" + (f"?next={target}" if target else ""), status_code=303)


def set_private_cookie(
    request: Request, response: Response, name: str, value: str, max_age: int, path: str = "/"
) -> None:
    """A cookie no script reads, no other site sends, and HTTPS keeps to itself: ``Secure``
    where the request came over HTTPS, or where the site's public origin (``web_origins``) is
    HTTPS (a TLS proxy on another host, whose forwarded scheme the server does not trust,
    makes every request look like plain HTTP)."""
    public = runtime_of(request).settings.web_origins.split(",")
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https"
        or any(o.strip().lower().startswith("https://") for o in public),
        max_age=max_age,
        path=path,
    )


def same_site(request: Request) -> bool:
    """The request comes from a page of this site (Origin, else Referer, names this origin or
    one of ``web_origins``). A browser sends Origin with every POST; a form posted from another
    site names that site, and a request naming neither is refused."""
    allowed = {str(request.base_url).rstrip("/")}
    extra = runtime_of(request).settings.web_origins
    allowed |= {o.strip().rstrip("/") for o in extra.split(",") if o.strip()}
    origin = request.headers.get("origin")
    if origin is None:
        referer = request.headers.get("referer", "")
        match = re.match(r"^(https?://[^/?#]+)", referer)
        origin = match[1] if match else None
    return origin in allowed


def key_labels(session: Session, user: Principal, keys: Iterable[object]) -> dict[str, str]:
    """The labels of ``keys`` (API key ids that acted on claims), for the platform's people
    only: a reviewer's or an admin's page names who took and decided a claim; a shop sees key
    ids only (a reviewer's name is the platform's to show)."""
    wanted = sorted({k for k in keys if isinstance(k, str) and k})
    if user.role not in ("reviewer", "admin") or not wanted:
        return {}
    return {
        key: label
        for key, label in session.execute(
            select(ApiKey.id, ApiKey.label).where(ApiKey.id.in_(wanted))
        ).all()
        if label
    }


def hours_left(deadline: dt.datetime | None) -> float | None:
    if deadline is None:
        return None
    if deadline.tzinfo is None:
        deadline = deadline.replace(tzinfo=dt.UTC)
    return round((deadline - dt.datetime.now(dt.UTC)).total_seconds() / 3600, 1)


def file_name(name: str) -> str:
    """An uploaded file's name as kept, as the API keeps it (:func:`..fields.file_name`)."""
    return fields.file_name(name)


# --- the one user dependency, and the guards built on it ---


def _has_session(request: Request) -> bool:
    """Whether the request's cookie is a live session (nothing else is read or kept)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return False
    with runtime_of(request).db.session() as session:
        return web_session(session, cookie) is not None


def _user(request: Request) -> Principal | None:
    """The logged-in user, or None; keeps the session's CSRF token for the page's forms."""
    with runtime_of(request).db.session() as session:
        found = web_session(session, request.cookies.get(COOKIE))
    if found is None:
        return None
    accept_credential(request, "session")
    request.state.csrf = found[1]
    return found[0]


MaybeUser = Annotated[Principal | None, Depends(_user)]


def _viewer(request: Request, user: MaybeUser) -> Principal:
    if user is None:
        raise PageAnswer(login_redirect(request.url.path))
    return user


Viewer = Annotated[Principal, Depends(_viewer)]


def _poster(request: Request, user: MaybeUser, csrf: Annotated[str, Form()] = "") -> Principal:
    """The user behind a POST, if it carries the session's CSRF token and comes from this site;
    otherwise the login page, or a 403 page."""
    if user is None:
        raise PageAnswer(login_redirect())
    expected = getattr(request.state, "csrf", "")
    if not same_site(request) or not (
        csrf and hmac.compare_digest(csrf.encode(), expected.encode())
    ):
        raise PageAnswer(page(request, "error.html", status=403, user=user, message="csrf"))
    return user


Poster = Annotated[Principal, Depends(_poster)]


def visible(request: Request, claim_id: str, user: Principal) -> Claim | None:
    """The claim if ``user`` may see it (the API's rule), else None."""
    try:
        check_id("claim_id", claim_id)
    except FieldError:
        return None
    with runtime_of(request).db.session() as session:
        claim = session.get(Claim, claim_id)
        if claim is None or not can_see_claim(user, claim):
            return None
        return claim


def _seen(request: Request, claim_id: str, user: Viewer) -> str:
    if visible(request, claim_id, user) is None:
        raise PageAnswer(forbidden(request, user))
    return claim_id


def _posted_on(request: Request, claim_id: str, user: Poster) -> str:
    if visible(request, claim_id, user) is None:
        raise PageAnswer(forbidden(request, user))
    return claim_id


SeenClaim = Annotated[str, Depends(_seen)]
"""The path's claim id, for a logged-in user who may see the claim."""
PostedClaim = Annotated[str, Depends(_posted_on)]
"""The path's claim id, for a POST (``Poster``) by a user who may see the claim."""


def shop_only(request: Request, user: Principal) -> None:
    """The pages for a shop (the check page): a merchant or an admin, else a 403 page."""
    if user.role not in ("merchant", "admin"):
        raise PageAnswer(forbidden(request, user))


_PREVIEWS: OrderedDict[str, bytes] = OrderedDict()
_PREVIEWS_LOCK = threading.Lock()
_DECODING: dict[str, tuple[threading.Lock, int]] = {}
"""Per photo being decoded: the lock its one decode holds, and how many requests want it."""


def _cached_preview(sha256: str) -> bytes | None:
    with _PREVIEWS_LOCK:
        if sha256 in _PREVIEWS:
            _PREVIEWS.move_to_end(sha256)
            return _PREVIEWS[sha256]
    return None


def analysis_jpeg(request: Request, sha256: str, name: str) -> bytes:
    """A claim photo's analysis copy as JPEG (EXIF orientation applied, at most ``analysis_side``
    px, no metadata), decoded once: the capture link's holder marks the damage on it and may load
    the page again and again, and a reviewer's browser shows no HEIC; a 12 MP photo costs a
    decode each time. The last ``capture_preview_cache_entries`` are kept (by content, so one
    photo is one entry).

    Each decode takes one of the ``upload_decode_slots``, waiting up to
    ``upload_slot_wait_seconds`` (then ``RefundlensError`` ``service.busy``): a page's photos are
    asked for all at once, and with no wait the third and fourth of a buyer's page were refused
    (a review). One photo is decoded by one request at a time; the others asking for it wait for
    that decode and read the cache: 16 requests at once for one 8000 x 8000 photo of a capture
    link, each decoding it, took an API process from 580 MB to 4.3 GB (a security review)."""
    runtime = runtime_of(request)
    cached = _cached_preview(sha256)
    if cached is not None:
        return cached
    with _PREVIEWS_LOCK:
        lock, waiting = _DECODING.get(sha256, (threading.Lock(), 0))
        _DECODING[sha256] = (lock, waiting + 1)
    try:
        if not lock.acquire(timeout=runtime.settings.upload_slot_wait_seconds):
            raise RefundlensError(
                "service.busy", "The photo is being prepared; ask again in a few seconds."
            )
        try:
            cached = _cached_preview(sha256)  # decoded while this request waited
            if cached is not None:
                return cached
            with decode_slot(runtime):
                media = media_from_bytes(runtime.blobs.get(sha256), name, runtime.settings)
            out = io.BytesIO()
            Image.fromarray(media.analysis).save(out, "JPEG", quality=85)
            with _PREVIEWS_LOCK:
                _PREVIEWS[sha256] = out.getvalue()
                while len(_PREVIEWS) > max(0, runtime.settings.capture_preview_cache_entries):
                    _PREVIEWS.popitem(last=False)
            return out.getvalue()
        finally:
            lock.release()
    finally:
        with _PREVIEWS_LOCK:
            lock, waiting = _DECODING[sha256]
            if waiting <= 1:
                del _DECODING[sha256]
            else:
                _DECODING[sha256] = (lock, waiting - 1)
