"""Buyers: a one-time link that logs a buyer into the web page (the platform's work).

The platform's app knows its buyer; refundlens knows the buyer only by the id on its orders.
The app asks for a link when the buyer wants its claim page and sends it to the buyer; the page
behind it logs the buyer in with a button (a chat app that fetches the link to preview it spends
nothing). No buyer handles an API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from ... import cases
from ...store.sql import audit
from .. import fields
from ..auth import issue_sign_in_link
from ..deps import Admin, RuntimeDep, SessionDep, visible_claim
from ..schemas import SignInLinkOut

__all__ = ["router"]

router = APIRouter()


@router.post("/v1/buyers/{buyer_id}/sign-in-link", status_code=201, response_model=SignInLinkOut)
def sign_in_link(
    buyer_id: Annotated[fields.Id, Path()],
    p: Admin,
    s: SessionDep,
    runtime: RuntimeDep,
    claim_id: Annotated[fields.Id | None, Query()] = None,
) -> SignInLinkOut:
    """With ``claim_id`` (one of this buyer's claims), the link lands on that claim's page: a
    buyer who tapped "my claim" in the app landed on a list and had to find it (a walkthrough)."""
    if claim_id is not None and visible_claim(s, claim_id, p, lock=False).buyer_id != buyer_id:
        raise cases.NotFound("claim", claim_id)
    token, expires = issue_sign_in_link(
        s, buyer_id, runtime.settings.web_sign_in_link_minutes, by=p.key_id
    )
    audit.append(
        s,
        p.key_id,
        "buyer.sign_in_link",
        details={
            "buyer": buyer_id,
            "link": token.split(".")[0],
            "expires_at": expires.isoformat(),
            **({"claim": claim_id} if claim_id is not None else {}),
        },
    )
    landing = f"?claim={claim_id}" if claim_id is not None else ""
    return SignInLinkOut(url=f"/web/enter/{token}{landing}", expires_at=expires.isoformat())
