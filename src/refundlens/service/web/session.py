"""Logging in and out, the landing redirect, and the page's one stylesheet and script."""

from __future__ import annotations

import hmac
import re
import secrets
from importlib import resources

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..auth import AuthError, authenticate, close_web_session, open_web_session
from .common import (
    COOKIE,
    LOGIN_COOKIE,
    MaybeUser,
    Poster,
    back_to,
    login_redirect,
    page,
    runtime_of,
    same_site,
    set_private_cookie,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _login_page(
    request: Request, status: int = 200, error: str | None = None, wanted: str | None = None
) -> HTMLResponse:
    # The browser's login token is kept while it is well formed: a second try from the same
    # page (a mistyped key) still carries the token the first page gave.
    token = request.cookies.get(LOGIN_COOKIE, "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{43}", token):
        token = secrets.token_urlsafe(32)
    response = page(
        request, "login.html", status=status, user=None, error=error, csrf=token,
        next=back_to(wanted),
    )  # fmt: skip
    set_private_cookie(request, response, LOGIN_COOKIE, token, 3600, path="/web/login")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, wanted=next)


@router.post("/login")
def login(
    request: Request, key: str = Form(""), csrf: str = Form(""), next: str = Form("")
) -> Response:
    runtime = runtime_of(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not same_site(request) or not (
        csrf and expected and hmac.compare_digest(csrf.encode(), expected.encode())
    ):
        # A login posted from another site (login CSRF) or without the form's token.
        return _login_page(request, status=403, error="csrf", wanted=next)
    try:
        with runtime.db.session() as session:
            principal = authenticate(session, f"Bearer {key.strip()}")
            # The session this browser held (another user on a shared phone) ends here: a cookie
            # replaced must not leave a live session behind it.
            close_web_session(session, request.cookies.get(COOKIE))
            token, _ = open_web_session(session, principal, runtime.settings.web_session_hours)
    except AuthError:
        return _login_page(request, status=401, error="invalid", wanted=next)
    response = RedirectResponse(back_to(next) or "/web/", status_code=303)
    set_private_cookie(
        request, response, COOKIE, token, int(runtime.settings.web_session_hours * 3600)
    )
    response.delete_cookie(LOGIN_COOKIE, path="/web/login")
    return response


@router.post("/logout")
def logout(request: Request, _user: Poster) -> Response:
    with runtime_of(request).db.session() as session:
        close_web_session(session, request.cookies.get(COOKIE))
    response = login_redirect()
    response.delete_cookie(COOKIE)
    return response


@router.get("/")
def home(user: MaybeUser) -> Response:
    return RedirectResponse("/web/queue", status_code=303) if user else login_redirect()


STATIC = {
    "refundlens.css": "text/css",
    "claim.js": "text/javascript",
    "capture.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}


@router.get("/static/{name}")
def static(name: str) -> Response:
    """The pages' stylesheet, scripts (the CSP allows no inline ones) and icon."""
    if name not in STATIC:
        return Response(status_code=404)
    data = resources.files("refundlens.service").joinpath(f"static/{name}").read_bytes()
    return Response(
        data, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=3600"}
    )
