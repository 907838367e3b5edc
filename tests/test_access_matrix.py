"""Every API route with every principal that may not use it: refused, and nothing changed.

The table below names, for each route of the running app, who is refused. A route added without
a row fails the first test, so each new route's access is decided, not inherited. The
principals are the roles of docs/security.md, each on the claim's side and on another's.
Run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from refundlens.service import create_app
from refundlens.store import Database
from refundlens.store.sql.models import (
    ApiKey,
    AuditEntry,
    Claim,
    Decision,
    Evidence,
    Order,
    SignInLink,
    Sku,
    Tenant,
)

from .service_support import (
    Server,
    add_tenants,
    backend,
    file_claim,
    listed_sku,
    order_for,
    running_server,
    sample,
    wait_analysed,
)

PRINCIPALS = (
    "nobody",
    "admin",
    "merchant",
    "other_merchant",
    "reviewer",
    "other_reviewer",
    "buyer",
    "other_buyer",
)
EVERYONE_BUT = frozenset(PRINCIPALS).difference

# (method, path) -> the principals refused. {claim}/{order} are shop-a's, filed by buyer-1.
REFUSED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): frozenset(),
    ("POST", "/v1/tenants"): EVERYONE_BUT({"admin"}),
    ("GET", "/v1/tenants"): frozenset({"nobody", "buyer", "other_buyer"}),  # scoped: a shop's own
    ("GET", "/v1/tenants/{tenant_id}"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "buyer", "other_buyer"}
    ),
    ("POST", "/v1/skus"): frozenset(
        {"nobody", "reviewer", "other_reviewer", "buyer", "other_buyer"}
    ),
    ("POST", "/v1/orders"): frozenset(
        {"nobody", "reviewer", "other_reviewer", "buyer", "other_buyer"}
    ),
    ("POST", "/v1/orders/{order_id}/packing-video"): EVERYONE_BUT({"admin", "merchant"}),
    ("GET", "/v1/skus"): frozenset({"nobody", "buyer", "other_buyer"}),  # scoped: a shop's own
    ("GET", "/v1/skus/{sku_id}"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "buyer", "other_buyer"}
    ),
    ("GET", "/v1/orders/{order_id}"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "buyer", "other_buyer"}
    ),
    ("POST", "/v1/claims"): EVERYONE_BUT({"admin", "buyer"}),
    ("GET", "/v1/claims"): frozenset({"nobody"}),  # scoped: see the list test below
    ("GET", "/v1/claims/{claim_id}"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "other_buyer"}
    ),
    ("POST", "/v1/claims/{claim_id}/evidence"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "other_buyer"}
    ),
    # The report carries the analysis' findings: not the buyer's. Its own photo is.
    ("GET", "/v1/claims/{claim_id}/report.{fmt}"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "buyer", "other_buyer"}
    ),
    ("GET", "/v1/claims/{claim_id}/files/{sha256}"): frozenset(
        {"nobody", "other_merchant", "other_reviewer", "other_buyer"}
    ),
    ("POST", "/v1/claims/{claim_id}/decision"): EVERYONE_BUT({"admin", "reviewer"}),
    ("POST", "/v1/claims/{claim_id}/capture-token"): EVERYONE_BUT({"admin", "buyer"}),
    ("POST", "/v1/claims/{claim_id}/capture"): EVERYONE_BUT({"admin", "buyer"}),
    ("POST", "/v1/claims/{claim_id}/appeal"): EVERYONE_BUT({"admin", "merchant", "buyer"}),
    ("POST", "/v1/claims/{claim_id}/assign"): EVERYONE_BUT({"admin", "reviewer"}),
    ("POST", "/v1/buyers/{buyer_id}/sign-in-link"): EVERYONE_BUT({"admin"}),
    ("GET", "/v1/audit/verify"): EVERYONE_BUT({"admin"}),
    ("GET", "/metrics"): EVERYONE_BUT({"admin"}),
}
# Routes that are not the API's: the web page (its own tests) and the OpenAPI documents.
NOT_API = ("/web", "/docs", "/redoc", "/openapi.json")
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/")}


def _every_route(routes: Any) -> Iterator[Any]:
    """The app's routes, those of its included routers (one per resource) among them. FastAPI
    0.16x keeps an included router as one entry and walks it with iter_route_contexts; older
    versions copied its routes into the app's list."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        yield from routes
    else:
        yield from iter_route_contexts(routes)


def test_every_api_route_has_a_row(tmp_path: Any) -> None:
    from refundlens.config import Settings

    app = create_app(Settings(data_dir=str(tmp_path)))
    routes = {
        (method, route.path)
        for route in _every_route(app.routes)
        for method in getattr(route, "methods", ()) or ()
        if method != "HEAD" and not route.path.startswith(NOT_API)
    }
    assert routes - PUBLIC == set(REFUSED) - PUBLIC


def test_the_cdn_loaded_doc_pages_are_served_only_where_asked_for(tmp_path: Any) -> None:
    # Swagger UI and ReDoc load a CDN's script, at a floating version with no integrity check,
    # on the origin where a reviewer's session is (a security review): off by default.
    from refundlens.config import Settings

    def paths(**settings: Any) -> set[str]:
        app = create_app(Settings(data_dir=str(tmp_path), **settings))
        return {route.path for route in _every_route(app.routes)}

    assert not {"/docs", "/redoc"} & paths()
    assert "/openapi.json" in paths()
    assert {"/docs", "/redoc"} <= paths(api_doc_pages=True)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp(f"matrix-{request.param}")
    # Each refused "nobody" request is counted by address: the matrix sends more at once than a
    # person would, so the address's burst is raised (tests/test_rate_limit.py tests it).
    with (
        backend(request.param) as url,
        running_server(data_dir, url, anonymous_request_burst=1000) as server,
    ):
        add_tenants(server, "shop-a", "shop-b")
        keys = {
            "admin": server.admin,
            "merchant": server.key("merchant", "shop-a"),
            "other_merchant": server.key("merchant", "shop-b"),
            "reviewer": server.key("reviewer", assign=["shop-a"]),
            "other_reviewer": server.key("reviewer", assign=["shop-b"]),
            "buyer": server.key("buyer", subject="buyer-1"),
            "other_buyer": server.key("buyer", subject="buyer-2"),
        }
        sku = listed_sku(server, keys["merchant"])
        order = order_for(server, keys["merchant"], sku, "buyer-1", "o-1")
        claim = file_claim(server, keys["buyer"], order)["id"]
        with server.client(keys["buyer"]) as buyer:
            wait_analysed(buyer, claim)  # its own audit entries are written before the matrix
        yield server, {**keys, "sku": sku, "order": order, "claim": claim}


def _snapshot(server: Server) -> dict[str, Any]:
    database = Database(server.settings)
    try:
        with database.session() as s:
            claim = s.execute(select(Claim)).scalars().first()
            return {
                "tenants": s.execute(select(func.count()).select_from(Tenant)).scalar(),
                "skus": s.execute(select(func.count()).select_from(Sku)).scalar(),
                "orders": s.execute(select(func.count()).select_from(Order)).scalar(),
                "claims": s.execute(select(func.count()).select_from(Claim)).scalar(),
                "evidence": s.execute(select(func.count()).select_from(Evidence)).scalar(),
                "decisions": s.execute(select(func.count()).select_from(Decision)).scalar(),
                "assigned": claim.assigned_to if claim else None,
                "audit": s.execute(select(func.count()).select_from(AuditEntry)).scalar(),
                "keys": s.execute(select(func.count()).select_from(ApiKey)).scalar(),
                "links": s.execute(select(func.count()).select_from(SignInLink)).scalar(),
            }
    finally:
        database.dispose()


def _request(world: dict[str, str], method: str, path: str) -> dict[str, Any]:
    """A request the route would accept from a principal allowed to make it."""
    photo = ("photo", ("p.jpg", sample("claim_genuine.jpg"), "image/jpeg"))
    path = path.format(
        claim_id=world["claim"],
        order_id=world["order"],
        sku_id=world["sku"],
        buyer_id="buyer-1",
        tenant_id="shop-a",
        fmt="json",
        sha256=hashlib.sha256(sample("claim_forged.jpg")).hexdigest(),  # the claim's photo
    )
    bodies: dict[str, dict[str, Any]] = {
        "/v1/tenants": {"json": {"id": "shop-x", "kind": "merchant", "name": "x"}},
        "/v1/skus": {
            "data": {"external_id": "new", "merchant_id": "shop-a"},
            "files": [("photos", ("l.jpg", sample("listing.jpg"), "image/jpeg"))],
        },
        "/v1/orders": {
            "json": {
                "external_id": "o-new",
                "sku_id": world["sku"],
                "buyer_id": "buyer-1",
                "amount": 10,
                "merchant_id": "shop-a",
            }
        },
        "/packing-video": {"files": [("video", ("v.mp4", b"\x00" * 64, "video/mp4"))]},
        "/v1/claims": {
            "data": {"order_id": world["order"], "type": "refund_only", "amount": "5"},
            "files": [("photos", ("c.jpg", sample("claim_genuine.jpg"), "image/jpeg"))],
        },
        "/evidence": {"data": {"kind": "statement", "statement": "mine"}},
        "/decision": {"json": {"decision": "approve", "reason": "looks fine"}},
        "/capture": {"data": {"token": "t"}, "files": [photo]},
        "/appeal": {"json": {"reason": "please"}},
        "/assign": {"json": {"reviewer": world["reviewer"].split(".")[0]}},
    }
    body = next((b for suffix, b in bodies.items() if path.endswith(suffix)), {})
    if path.endswith("/capture-token"):
        body = {}
    return {"method": method, "url": path, **(body if method == "POST" else {})}


@pytest.mark.parametrize("route", sorted(REFUSED), ids=lambda r: f"{r[0]} {r[1]}")
def test_a_principal_refused_a_route_gets_401_403_or_404_and_changes_nothing(
    world: tuple[Server, dict[str, str]], route: tuple[str, str]
) -> None:
    server, keys = world
    method, path = route
    for who in sorted(REFUSED[route]):
        before = _snapshot(server)
        with server.client(None if who == "nobody" else keys[who]) as client:
            response = client.request(**_request(keys, method, path))
        expected = {401} if who == "nobody" else {403, 404}
        assert response.status_code in expected, (who, response.status_code, response.text)
        assert "error" in response.json()
        assert _snapshot(server) == before, who


def test_the_tenant_list_shows_each_principal_only_what_it_may_see_and_never_a_secret(
    world: tuple[Server, dict[str, str]],
) -> None:
    server, keys = world
    seen = {}
    for who in ("admin", "merchant", "other_merchant", "reviewer", "other_reviewer"):
        with server.client(keys[who]) as client:
            answer = client.get("/v1/tenants")
            assert answer.status_code == 200, answer.text
            seen[who] = {t["id"] for t in answer.json()["items"]}
            assert "secret" not in answer.text.replace("webhook_secret_set", "")
    assert {"shop-a", "shop-b"} <= seen["admin"]
    assert seen["merchant"] == seen["reviewer"] == {"shop-a"}
    assert seen["other_merchant"] == seen["other_reviewer"] == {"shop-b"}
    with server.client(keys["admin"]) as admin:
        pages, cursor = [], None
        while True:
            page = admin.get(
                "/v1/tenants", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
            )
            pages += [t["id"] for t in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert pages == sorted(seen["admin"])
        secret = "s" * 40
        saved = admin.post(
            "/v1/tenants",
            json={
                "id": "shop-hook",
                "kind": "merchant",
                "name": "hook",
                "webhook_url": "https://hooks.example.com/refundlens",
                "webhook_secret": secret,
            },
        )
        assert saved.status_code == 201, saved.text
        read = admin.get("/v1/tenants/shop-hook")
        assert read.json()["webhook_url"] == "https://hooks.example.com/refundlens"
        assert read.json()["webhook_secret_set"] is True and secret not in read.text
        # A URL that carries a password or a token: whole for the admin who set it, without
        # them for the shop's reviewer (a review read a receiver's password there).
        hooked = "https://hook:S3cretPass@hooks.example.com/T0AAA/PathTok3n?token=abc123#x"
        body = {"id": "shop-hook", "kind": "merchant", "name": "hook", "webhook_url": hooked}
        assert admin.post("/v1/tenants", json=body).status_code == 201
        assert admin.get("/v1/tenants/shop-hook").json()["webhook_url"] == hooked
    reviewer = server.key("reviewer", assign=["shop-hook"])
    with server.client(reviewer) as client:
        shown = client.get("/v1/tenants/shop-hook")
        assert shown.json()["webhook_url"] == "https://hooks.example.com/"
        assert "S3cretPass" not in shown.text and "abc123" not in shown.text
        # Nor the path, where Slack and Teams put their token (a security review).
        assert "PathTok3n" not in shown.text
    with server.client(server.admin) as admin:
        # A receiver at an IPv6 address keeps its brackets; one elsewhere needs its own secret
        # (the old one would let the previous receiver sign events to it: a review).
        v6 = {"id": "shop-hook", "kind": "merchant", "name": "hook"}
        moved = admin.post(
            "/v1/tenants", json={**v6, "webhook_url": "https://[2001:db8::1]:8443/h"}
        )
        assert moved.status_code == 422 and "webhook_secret" in moved.json()["error"]["message"]
        saved = admin.post(
            "/v1/tenants",
            json={**v6, "webhook_url": "https://[2001:db8::1]:8443/h", "webhook_secret": "t" * 40},
        )
        assert saved.status_code == 201, saved.text
    with server.client(reviewer) as client:
        assert (
            client.get("/v1/tenants/shop-hook").json()["webhook_url"]
            == "https://[2001:db8::1]:8443/"
        )
    with server.client(server.admin) as admin:
        # Removing the webhook first takes its secret along: the next receiver needs its own.
        cleared = admin.post("/v1/tenants", json={**v6, "webhook_url": ""}).json()
        assert cleared["webhook_url"] is None and cleared["webhook_secret_set"] is False
        elsewhere = admin.post("/v1/tenants", json={**v6, "webhook_url": "https://other.example/h"})
        assert elsewhere.status_code == 422, elsewhere.text
        assert admin.get("/v1/tenants/no-such-shop").json()["error"]["code"] == "tenant.not_found"
        assert admin.get("/v1/tenants", params={"cursor": "x/../y"}).status_code == 400


def test_the_claim_list_shows_each_principal_only_what_it_may_see(
    world: tuple[Server, dict[str, str]],
) -> None:
    server, keys = world
    for who in ("admin", "merchant", "reviewer", "buyer"):
        with server.client(keys[who]) as client:
            ids = [c["id"] for c in client.get("/v1/claims").json()["items"]]
        assert keys["claim"] in ids, who
    for who in ("other_merchant", "other_reviewer", "other_buyer"):
        with server.client(keys[who]) as client:
            assert client.get("/v1/claims").json()["items"] == [], who
