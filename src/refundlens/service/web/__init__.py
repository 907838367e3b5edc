"""The reviewer and merchant web page: server-rendered Jinja2, a few lines of plain JS, zh-CN and en.

Login is with an API key (the same roles as the API); it opens a server-side session whose random
token is the HttpOnly, SameSite=Strict cookie (the key itself is never stored in the browser), and
logging out deletes it. Every POST carries the session's CSRF token and must come from this site
(Origin, or Referer where a browser sends no Origin). Every form field passes the same rules as
the API's (``fields.py``). Everything a page shows goes through the same visibility rule as the
API; a claim another user may not see answers a 403 page. docs/security.md has the threat model.

The pages by subject: ``session`` (login, logout, static files), ``queue`` (the claims list),
``claim`` (a claim's page, its files and report), ``forms`` (the claim page's forms), ``check``
(a photo against a SKU), ``capture`` (the buyer's live-capture page, opened with a token's
link, no login), ``enter`` (a buyer's one-time sign-in link). ``common`` has what they share: one user dependency and its guards.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import capture, check, claim, enter, forms, queue, session
from .common import PageAnswer, answer_page

__all__ = ["PageAnswer", "answer_page", "router"]

router = APIRouter(prefix="/web", include_in_schema=False)
for _pages in (
    session.router,
    queue.router,
    claim.router,
    forms.router,
    check.router,
    capture.router,
    enter.router,
):
    router.include_router(_pages)
