"""A buyer's one-time sign-in link: the platform asks for it, the buyer opens it and presses a
button, and sees its own claims. Opening the link spends nothing (a chat app's preview); a
second use, an expired or made-up link, a post from another site and a revoked buyer open
nothing. Run on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from refundlens.store import Database
from refundlens.store.sql.models import ApiKey, AuditEntry, Claim, SignInLink

from .service_support import (
    Server,
    add_tenants,
    backend,
    file_claim,
    listed_sku,
    logged_in,
    order_for,
    running_server,
    web_login,
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp(f"links-{request.param}")
    with backend(request.param) as url, running_server(data_dir, url) as server:
        add_tenants(server, "shop-a")
        merchant = server.key("merchant", "shop-a")
        sku = listed_sku(server, merchant)
        claims = {}
        for buyer in ("buyer-1", "buyer-2"):
            order = order_for(server, merchant, sku, buyer, f"o-{buyer}")
            claims[buyer] = file_claim(server, server.admin, order)["id"]
        yield server, claims


def _link(server: Server, buyer: str, **params: str) -> httpx.Response:
    with server.client(server.admin) as admin:
        return admin.post(f"/v1/buyers/{buyer}/sign-in-link", params=params)


def _write(server: Server, statement: Any) -> None:
    """Run ``statement`` on the server's database, as time or the CLI would change it."""
    database = Database(server.settings)
    try:
        with database.session() as s:
            s.execute(statement)
    finally:
        database.dispose()


def test_a_link_logs_its_buyer_in_once_and_shows_only_its_claims(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, claims = shop
    made = _link(server, "buyer-1")
    assert made.status_code == 201, made.text
    url = made.json()["url"]
    assert re.fullmatch(r"/web/enter/sil_[0-9a-f]{20}\.[A-Za-z0-9_-]{32}", url), url
    expires = dt.datetime.fromisoformat(made.json()["expires_at"])
    left = expires - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=14) < left <= dt.timedelta(minutes=15)
    with httpx.Client(base_url=server.url, timeout=60.0) as phone:
        # A chat app's preview and the buyer's own opening: neither spends the link.
        for _ in range(2):
            opened = phone.get(url)
            assert opened.status_code == 200 and 'id="enter-button"' in opened.text
        assert not phone.cookies
        # A form on another site cannot log the visitor in as this buyer.
        foreign = phone.post(url, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403 and not phone.cookies
        entered = phone.post(url, headers={"Origin": server.url})
        assert entered.status_code == 303 and entered.headers["location"] == "/web/"
        queue = phone.get("/web/queue")
        assert queue.status_code == 200
        assert claims["buyer-1"] in queue.text and claims["buyer-2"] not in queue.text
        assert phone.get(f"/web/claims/{claims['buyer-2']}").status_code in (403, 404)
    with httpx.Client(base_url=server.url, timeout=60.0) as again:
        assert again.get(url).status_code == 404
        second = again.post(url, headers={"Origin": server.url})
        assert second.status_code == 404 and "enter-closed" in second.text
        assert not again.cookies
    database = Database(server.settings)
    try:
        with database.session() as s:
            actions = s.execute(select(AuditEntry.action)).scalars().all()
            key = s.execute(
                select(ApiKey).where(ApiKey.subject == "buyer-1", ApiKey.role == "buyer")
            ).scalar_one()
        assert "buyer.sign_in_link" in actions and "buyer.signed_in" in actions
        assert key.label == "web sign-in links"
    finally:
        database.dispose()


def test_a_link_made_for_a_claim_lands_on_that_claims_page(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, claims = shop
    # Only one of the buyer's own claims: another buyer's, or none, is "not found".
    assert _link(server, "buyer-1", claim_id=claims["buyer-2"]).status_code == 404
    assert _link(server, "buyer-1", claim_id="clm_00000000000000000000").status_code == 404
    url = _link(server, "buyer-1", claim_id=claims["buyer-1"]).json()["url"]
    assert url.endswith(f"?claim={claims['buyer-1']}")
    with httpx.Client(base_url=server.url, timeout=60.0) as phone:
        opened = phone.get(url)
        assert f'action="{url}"' in opened.text
        entered = phone.post(url, headers={"Origin": server.url})
        assert entered.status_code == 303
        assert entered.headers["location"] == f"/web/claims/{claims['buyer-1']}"
        assert phone.get(entered.headers["location"]).status_code == 200
        # A claim still being analysed reads "being checked" to its buyer, not "analysing".
        database = Database(server.settings)
        try:
            with database.session() as s:
                was = s.execute(
                    select(Claim.state).where(Claim.id == claims["buyer-1"])
                ).scalar_one()
        finally:
            database.dispose()
        _write(server, update(Claim).where(Claim.id == claims["buyer-1"]).values(state="analysing"))
        for language, said in (("en", "being checked"), ("zh-CN", "核实中")):
            page = phone.get(entered.headers["location"], headers={"Accept-Language": language})
            assert f'id="claim-state">{said}<' in page.text
            listed = phone.get("/web/queue", headers={"Accept-Language": language})
            assert f'class="state">{said}<' in listed.text
        _write(server, update(Claim).where(Claim.id == claims["buyer-1"]).values(state=was))
    # A link edited to land elsewhere lands on the list: the landing is a claim id or nothing.
    for landing in ("//evil.example", "https://evil.example/", "../queue", "clm_1/../../x"):
        token = _link(server, "buyer-1").json()["url"]
        with httpx.Client(base_url=server.url, timeout=60.0) as phone:
            page = phone.get(token, params={"claim": landing})
            assert "evil" not in page.text and "../" not in page.text.split("<form")[1]
            entered = phone.post(token, params={"claim": landing}, headers={"Origin": server.url})
            assert entered.status_code == 303 and entered.headers["location"] == "/web/"


def test_an_expired_or_made_up_link_opens_nothing(shop: tuple[Server, dict[str, str]]) -> None:
    server, _ = shop
    url = _link(server, "buyer-2").json()["url"]
    _write(
        server,
        update(SignInLink)
        .where(SignInLink.id == url.rsplit("/", 1)[1].split(".")[0])
        .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)),
    )
    made_up = re.sub(
        r"\.[A-Za-z0-9_-]{32}$", "." + "A" * 32, _link(server, "buyer-2").json()["url"]
    )
    with httpx.Client(base_url=server.url, timeout=60.0) as phone:
        for dead in (url, made_up, "/web/enter/sil_0.x", "/web/enter/" + "a" * 300):
            assert phone.get(dead).status_code == 404, dead
            assert phone.post(dead, headers={"Origin": server.url}).status_code == 404, dead
        assert not phone.cookies


def test_only_the_platform_makes_links_and_a_revoked_buyer_gets_none(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, _ = shop
    buyer_key = server.key("buyer", subject="buyer-3")
    with server.client(buyer_key) as buyer:
        refused = buyer.post("/v1/buyers/buyer-3/sign-in-link")
    assert refused.status_code == 403
    with server.client(server.admin) as admin:
        bad = admin.post("/v1/buyers/a%20b/sign-in-link")
    assert bad.status_code in (400, 422) and "error" in bad.json()
    url = _link(server, "buyer-3").json()["url"]
    with httpx.Client(base_url=server.url, timeout=60.0) as phone:
        assert phone.post(url, headers={"Origin": server.url}).status_code == 303
        assert phone.get("/web/queue").status_code == 200
        spare = _link(server, "buyer-3").json()["url"]
        _write(
            server,
            update(ApiKey)
            .where(ApiKey.subject == "buyer-3", ApiKey.label == "web sign-in links")
            .values(revoked=True),
        )
        # The session it opened ends, the link made before opens nothing, and no new one is made.
        assert phone.get("/web/queue", follow_redirects=False).status_code in (303, 401)
        assert phone.get(spare).status_code == 404
    again = _link(server, "buyer-3")
    assert again.status_code == 409 and again.json()["error"]["code"] == "auth.buyer_revoked"
    # A new key with the links' label lets the buyer in again (revoking ended its sessions).
    server_key = server.key("buyer", subject="buyer-3")  # another label: not the links' key
    assert server_key and _link(server, "buyer-3").status_code == 409
    from refundlens.service.auth import create_key

    database = Database(server.settings)
    try:
        with database.session() as s:
            create_key(s, "buyer", subject="buyer-3", label="web sign-in links")
    finally:
        database.dispose()
    back = _link(server, "buyer-3")
    assert back.status_code == 201, back.text
    with httpx.Client(base_url=server.url, timeout=60.0) as phone:
        assert phone.post(back.json()["url"], headers={"Origin": server.url}).status_code == 303


def test_a_shared_phone_keeps_no_earlier_session_alive(shop: tuple[Server, dict[str, str]]) -> None:
    """A phone logged in as the shop, then as a buyer by link, then as the shop again by key:
    each sign-in ends the session the browser held, so an earlier cookie (copied before, or
    left in a backup) opens nothing."""
    server, claims = shop
    merchant = server.key("merchant", "shop-a")
    with web_login(server, merchant) as phone:
        shop_cookie = phone.cookies["rl_session"]
        assert phone.get("/web/queue").status_code == 200
        url = _link(server, "buyer-1").json()["url"]
        entered = phone.post(url, headers={"Origin": server.url})
        assert entered.status_code == 303
        buyer_cookie = phone.cookies["rl_session"]
        assert buyer_cookie != shop_cookie
        assert claims["buyer-2"] not in phone.get("/web/queue").text  # the buyer's view now
        logged_in(phone, server, merchant)
        assert phone.cookies["rl_session"] not in (shop_cookie, buyer_cookie)
    for cookie in (shop_cookie, buyer_cookie):
        stale = httpx.get(f"{server.url}/web/queue", cookies={"rl_session": cookie})
        assert stale.status_code == 303 and stale.headers["location"].startswith("/web/login")
