"""A buyer's one-time sign-in link (``POST /v1/buyers/{id}/sign-in-link``), opened on its phone.

Opening the link changes nothing: it shows a button, and only pressing it spends the link and
logs the buyer in. Chat apps fetch a link to preview it, and a mail scanner may open it first; a
link spent by a GET would leave the buyer with a dead one. The POST must come from this site:
a page elsewhere cannot log a visitor into an account it chose (login CSRF). The token in the
path is a capability: the request log writes the route's template, never the path.
"""

from __future__ import annotations

import datetime as dt
import math
import re

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..auth import LINK_TOKEN, close_web_session, redeem_sign_in_link, sign_in_link_usable
from .common import COOKIE, page, runtime_of, same_site, set_private_cookie

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


CLAIM_ID = re.compile(r"clm_[0-9a-f]{20}")
"""A claim id as refundlens makes them: the only landing a link may name (never a URL)."""


def _landing(claim: str | None) -> str | None:
    return claim if claim is not None and CLAIM_ID.fullmatch(claim) else None


@router.get("/enter/{token}")
def enter_page(request: Request, token: str, claim: str | None = None) -> Response:
    expires = None
    if LINK_TOKEN.fullmatch(token):
        with runtime_of(request).db.session() as s:
            expires = sign_in_link_usable(s, token)
    if expires is None:
        return page(request, "enter.html", status=404, closed=True, user=None)
    left = math.ceil((expires - dt.datetime.now(dt.UTC)).total_seconds() / 60)
    return page(
        request,
        "enter.html",
        token=token,
        minutes_left=max(1, left),
        user=None,
        landing=_landing(claim),
    )


@router.post("/enter/{token}")
def enter(request: Request, token: str, claim: str | None = None) -> Response:
    runtime = runtime_of(request)
    if not same_site(request):
        return page(request, "enter.html", status=403, foreign=True, user=None)
    opened = None
    if LINK_TOKEN.fullmatch(token):
        with runtime.db.session() as s:
            opened = redeem_sign_in_link(s, token, runtime.settings.web_session_hours)
            if opened is not None:
                # The session this browser held before (a shop's, another buyer's) ends here.
                close_web_session(s, request.cookies.get(COOKIE))
    if opened is None:
        return page(request, "enter.html", status=404, closed=True, user=None)
    # The claim the link names, if it is a claim id: its page says "not found" where the buyer
    # may not see it, as for any claim id typed in.
    landing = _landing(claim)
    response = RedirectResponse(f"/web/claims/{landing}" if landing else "/web/", status_code=303)
    set_private_cookie(
        request, response, COOKIE, opened[0], int(runtime.settings.web_session_hours * 3600)
    )
    return response
