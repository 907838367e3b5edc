"""The claims service over real HTTP, the same suite on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from refundlens.store import Database

from .service_support import (
    Server,
    add_tenants,
    assessed,
    audit_entries,
    listed_sku,
    one_buyer_many_claims_policy,
    order_for,
    postgres_database,
    running_server,
    wait_analysed,
)


def _sample(name: str) -> bytes:
    return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    # These tests file their claims on the shop's two orders, by convenience (one buyer each):
    # the limits on open claims per order, on what an order's claims ask in all and on filing
    # again after a rejection are lifted
    # here and tested with their defaults in tests/test_service_input.py.
    many = {
        "max_open_claims_per_order": 1000,
        "claims_within_order_amount": False,
        "refile_after_rejection": True,
        # ... and so are the rules that weigh one buyer's claims together.
        "policy_path": one_buyer_many_claims_policy(data_dir),
    }
    if request.param == "sqlite":
        with running_server(data_dir, **many) as srv:
            yield srv
    else:
        with postgres_database() as url, running_server(data_dir, url, **many) as srv:
            yield srv


@pytest.fixture(scope="module")
def shop(server: Server) -> dict[str, str]:
    """Two merchants, an SKU with its listing photo, two orders for two buyers, keys for all."""
    with server.client(server.admin) as admin:
        for tenant in ("shop-a", "shop-b"):
            assert (
                admin.post(
                    "/v1/tenants", json={"id": tenant, "kind": "merchant", "name": tenant}
                ).status_code
                == 201
            )
    keys = {
        "merchant": server.key("merchant", "shop-a"),
        "other_merchant": server.key("merchant", "shop-b"),
        "buyer": server.key("buyer", subject="buyer-1"),
        "other_buyer": server.key("buyer", subject="buyer-2"),
        "reviewer": server.key("reviewer", assign=["shop-a"]),
        "other_reviewer": server.key("reviewer", assign=["shop-b"]),
    }
    with server.client(keys["merchant"]) as merchant:
        sku = merchant.post(
            "/v1/skus",
            data={"external_id": "cup-1", "title": "mug"},
            files=[("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
        )
        assert sku.status_code == 201, sku.text
        sku_id = sku.json()["id"]
        orders = {}
        for buyer in ("buyer-1", "buyer-2"):
            r = merchant.post(
                "/v1/orders",
                json={
                    "external_id": f"o-{buyer}",
                    "sku_id": sku_id,
                    "buyer_id": buyer,
                    "amount": 150.0,
                    "shipped_at": "2026-11-01T08:00:00+08:00",
                    "delivered_at": "2026-11-03T08:00:00+08:00",
                    "buyer": {"name": "张三", "phone": "13800138000", "address": "杭州市西湖区"},
                },
            )
            assert r.status_code == 201, r.text
            orders[buyer] = r.json()["id"]
    return {**keys, "sku": sku_id, "order": orders["buyer-1"], "other_order": orders["buyer-2"]}


def test_a_shop_lists_its_own_skus_and_finds_one_by_its_own_id(
    server: Server, shop: dict[str, str]
) -> None:
    with server.client(shop["merchant"]) as merchant:
        for n in range(3):
            r = merchant.post(
                "/v1/skus",
                data={"external_id": f"list-{n}", "title": f"杯子 {n}"},
                files=[("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
            )
            assert r.status_code == 201 and r.json()["merchant_id"] == "shop-a", r.text
        seen, cursor = [], None
        while True:  # page by page, one SKU a page
            page = merchant.get("/v1/skus", params={"limit": 1, **({"cursor": cursor} if cursor else {})}).json()  # fmt: skip
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert {s["external_id"] for s in seen} >= {"cup-1", "list-0", "list-1", "list-2"}
        assert {s["merchant_id"] for s in seen} == {"shop-a"}
        (found,) = merchant.get("/v1/skus", params={"external_id": "list-1"}).json()["items"]
        assert found["title"] == "杯子 1" and len(found["references"]) == 1
        assert merchant.get(f"/v1/skus/{found['id']}").json() == found
        for made_up in ("../x", "sku_00000000000000000000"):
            bad = merchant.get("/v1/skus", params={"cursor": made_up})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "request.bad_cursor"
    with server.client(shop["other_merchant"]) as other:
        assert other.get("/v1/skus", params={"external_id": "list-1"}).json()["items"] == []
        assert other.get(f"/v1/skus/{found['id']}").status_code == 404
        # Nor is another shop's SKU a cursor: it says nothing of where it sorts.
        assert other.get("/v1/skus", params={"cursor": found["id"]}).status_code == 400
    with server.client(shop["reviewer"]) as reviewer:
        assert reviewer.get(f"/v1/skus/{found['id']}").status_code == 200
    with server.client(shop["other_reviewer"]) as reviewer:
        assert reviewer.get(f"/v1/skus/{found['id']}").status_code == 404
    with server.client(shop["buyer"]) as buyer:
        assert buyer.get("/v1/skus").status_code == 403
        assert buyer.get(f"/v1/skus/{found['id']}").status_code == 403


def _file_claim(
    server: Server,
    key: str,
    order: str,
    photo: str,
    amount: float = 120.0,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
) -> dict:  # type: ignore[type-arg]
    """File a claim with the bundled sample ``photo`` (or ``data``, sent under that name)."""
    with server.client(key) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={
                "order_id": order,
                "type": "refund_only",
                "amount": str(amount),
                "reason": "arrived broken",
            },
            files=[("photos", (photo, data or _sample(photo), "image/jpeg"))],
            headers=headers or {},
        )
        assert r.status_code in (200, 201), r.text
        return r.json()


def test_the_servers_root_leads_to_the_web_page(server: Server) -> None:
    with server.client() as anonymous:
        r = anonymous.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/web/"


def test_load_balancers_may_probe_health_and_readiness_with_head(server: Server) -> None:
    with server.client() as anonymous:
        for path in ("/healthz", "/readyz"):
            assert anonymous.head(path).status_code == 200, path


def test_health_names_the_database_and_the_task_runner(server: Server) -> None:
    with server.client() as anyone:
        body = anyone.get("/healthz").json()
    assert body["status"] == "ok"
    assert body["database"] in ("sqlite", "postgresql")
    assert body["tasks"] == "in-process"


def test_a_forged_claim_goes_to_the_merchant_then_a_person_rejects_it_on_record(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    assert claim["state"] in ("submitted", "analysing")
    with server.client(shop["buyer"]) as buyer:
        wait_analysed(buyer, claim["id"])
    analysed = assessed(server, claim["id"])
    assert analysed["state"] == "awaiting_merchant"
    assert analysed["action"] == "escalate"
    codes = [f["code"] for f in analysed["assessment"]["images"][0]["findings"]]
    assert "reference.derived" in codes
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            f"/v1/claims/{claim['id']}/evidence",
            data={"kind": "statement", "statement": "packed intact, video attached later"},
        )
        assert r.status_code == 201 and r.json()["claim_state"] == "under_review"
    reason = "reference.derived: the photo is the listing photo with a crack painted in"
    note = "您提交的照片是店铺的商品展示图，不是您收到的商品的照片。"
    with server.client(shop["reviewer"]) as reviewer:
        # A note to the buyer says why (a final decision) or what to photograph (a live
        # capture); an escalation has nothing to tell the buyer.
        r = reviewer.post(
            f"/v1/claims/{claim['id']}/decision",
            json={"decision": "escalate", "reason": "x", "buyer_note": "hello"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "decision.note_not_allowed"
        r = reviewer.post(
            f"/v1/claims/{claim['id']}/decision",
            json={"decision": "reject", "reason": reason, "buyer_note": note},
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "decided"
        [decided] = r.json()["decisions"]
        assert decided["outcome"] == "rejected" and decided["buyer_note"] == note
        # Each piece of evidence says when it came (a walkthrough: only report.json did).
        [statement] = r.json()["evidence"]
        assert statement["at"] is not None and statement["at"] <= decided["at"]
        # Sent again after a lost answer: the claim as it is, nothing recorded twice (it was a
        # 409 that read as "not decided": an integrator's walkthrough). Another decision is
        # still refused.
        again = reviewer.post(
            f"/v1/claims/{claim['id']}/decision",
            json={"decision": "reject", "reason": reason, "buyer_note": note},
        )
        assert again.status_code == 200 and len(again.json()["decisions"]) == 1
        other = reviewer.post(
            f"/v1/claims/{claim['id']}/decision", json={"decision": "approve", "reason": reason}
        )
        assert other.status_code == 409
    # The buyer reads the note, never the reason (which may name a finding).
    with server.client(shop["buyer"]) as buyer:
        seen = buyer.get(f"/v1/claims/{claim['id']}").json()
    assert seen["decision"] == {
        "outcome": "rejected",
        "amount": None,
        "note": note,
        "reviewed_again": False,
    }
    assert "reference." not in str(seen) and _buyer_leaks(seen) == []
    with server.client(server.admin) as admin:
        assert admin.get("/v1/audit/verify").json()["ok"] is True
    [entry] = [d for a, d in audit_entries(server, claim["id"]) if a == "decision.reject"]
    assert entry["buyer_note"] == note


# What would let a forger tune an edit: none of it may reach a buyer, on any route it can call.
_DETECTOR_WORDS = (
    "finding",
    "facts",
    "risk",
    "threshold",
    "assessment",
    "routing_reason",
    "reference.",
    "pixels.",
    "action",
    "heatmap",
    "pictures",
    "strength",
)


def _buyer_leaks(body: object) -> list[str]:
    import json as _json

    text = _json.dumps(body)
    return [w for w in _DETECTOR_WORDS if w in text]


def test_an_api_key_fetches_the_evidence_report_and_the_files_an_assessment_names(
    server: Server, shop: dict[str, str]
) -> None:
    # Only the web pages (a session) and the CLI served the report and the analysis' pictures:
    # an integrator with an API key had neither (a walkthrough).
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    analysed = assessed(server, claim["id"])
    photo = analysed["photos"][0]["sha256"]
    pictures = list(analysed["assessment"]["images"][0]["pictures"].values())
    assert pictures
    base = f"/v1/claims/{claim['id']}"
    with server.client(shop["merchant"]) as merchant:
        content = merchant.get(f"{base}/report.json")
        assert content.status_code == 200 and content.headers["content-type"] == "application/json"
        assert json.loads(content.content)["claim"]["id"] == claim["id"]
        html = merchant.get(f"{base}/report.html", params={"lang": "en"})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert html.headers["content-security-policy"].startswith("default-src 'none'")
        assert "attachment" in html.headers["content-disposition"] and claim["id"] in html.text
        # Each language its own file name: saved side by side, neither overwrites the other.
        chinese = merchant.get(f"{base}/report.html", params={"lang": "zh_CN"})
        names = {r.headers["content-disposition"] for r in (html, chinese)}
        assert names == {
            f'attachment; filename="refundlens-{claim["id"]}-{lang}.html"'
            for lang in ("en", "zh_CN")
        }
        sent = merchant.get(f"{base}/files/{photo}")
        assert sent.status_code == 200 and sent.content == _sample("claim_forged.jpg")
        assert sent.headers["content-disposition"] == (
            f'attachment; filename="{claim["id"]}-{photo[:12]}.jpg"'
        )
        heat = merchant.get(f"{base}/files/{pictures[0]}")
        assert heat.status_code == 200 and heat.headers["content-type"].startswith("image/")
        for made_up in ("0" * 64, "../etc/passwd", photo.upper()):
            missing = merchant.get(f"{base}/files/{made_up}")
            assert missing.status_code in (404, 422), made_up
    with server.client(shop["buyer"]) as buyer:
        refused = buyer.get(f"{base}/report.html")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "report.not_for_buyers"
        assert buyer.get(f"{base}/files/{photo}").status_code == 200  # its own photo
        hidden = buyer.get(f"{base}/files/{pictures[0]}")  # the analysis' picture: not its
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "file.not_found"
    with server.client(shop["other_merchant"]) as stranger:
        assert stranger.get(f"{base}/report.json").status_code == 404
        assert stranger.get(f"{base}/files/{photo}").status_code == 404


def test_a_buyer_is_told_the_state_and_what_is_asked_never_the_detectors_numbers(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    assert _buyer_leaks(claim) == []  # the create answer itself
    with server.client(shop["buyer"]) as buyer:
        analysed = wait_analysed(buyer, claim["id"])
        assert _buyer_leaks(analysed) == [], analysed
        assert analysed["status"]["zh"] and analysed["status"]["en"]
        # The merchant's window is not the buyer's deadline: it would time the analysis.
        assert analysed["deadline_at"] is None
        listed = buyer.get("/v1/claims").json()["items"]
        assert all(c["deadline_at"] is None for c in listed if c["state"] != "awaiting_capture")
        assert _buyer_leaks(buyer.get("/v1/claims").json()) == []
        appeal = buyer.post(f"/v1/claims/{claim['id']}/appeal", json={"reason": "please"})
        assert _buyer_leaks(appeal.json()) == []
        evidence = buyer.post(
            f"/v1/claims/{claim['id']}/evidence", data={"kind": "statement", "statement": "x"}
        )
        assert _buyer_leaks(evidence.json()) == []
    # The platform still sees everything.
    assert assessed(server, claim["id"])["assessment"]["images"][0]["findings"]


def test_a_genuine_claim_under_the_limit_is_approved_automatically(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(
        server, shop["other_buyer"], shop["other_order"], "claim_genuine.jpg", amount=90.0
    )
    with server.client(shop["other_buyer"]) as buyer:
        wait_analysed(buyer, claim["id"])
    analysed = assessed(server, claim["id"])
    assert analysed["state"] == "approved", analysed["routing_reason"]
    assert analysed["assessment"]["claim"]["action"] == "approve"
    # The platform's risk team reads why in Chinese too, as the web page shows it.
    zh = analysed["routing_reason_zh"]
    assert zh and zh != analysed["routing_reason"] and re.search(r"[\u4e00-\u9fff]", zh), zh


def test_a_retried_create_with_the_same_idempotency_key_returns_the_same_claim(
    server: Server, shop: dict[str, str]
) -> None:
    first = _file_claim(
        server,
        shop["buyer"],
        shop["order"],
        "claim_unrelated.jpg",
        headers={"Idempotency-Key": "retry-7"},
    )
    second = _file_claim(
        server,
        shop["buyer"],
        shop["order"],
        "claim_unrelated.jpg",
        headers={"Idempotency-Key": "retry-7"},
    )
    assert first["id"] == second["id"]


def test_the_same_idempotency_key_with_another_claim_is_refused_not_answered_with_the_first(
    server: Server, shop: dict[str, str]
) -> None:
    _file_claim(
        server,
        shop["buyer"],
        shop["order"],
        "claim_unrelated.jpg",
        headers={"Idempotency-Key": "k1"},
    )
    with server.client(shop["buyer"]) as buyer:
        before = len(buyer.get("/v1/claims").json()["items"])
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "120"},
            files=[("photos", ("forged.jpg", _sample("claim_forged.jpg"), "image/jpeg"))],
            headers={"Idempotency-Key": "k1"},
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "idempotency.key_reused"
        assert len(buyer.get("/v1/claims").json()["items"]) == before


def test_a_corrupt_upload_gets_a_4xx_with_the_media_code_and_creates_nothing(
    server: Server, shop: dict[str, str]
) -> None:
    with server.client(shop["other_buyer"]) as buyer:
        before = len(buyer.get("/v1/claims", params={"limit": 200}).json()["items"])
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["other_order"], "type": "refund_only", "amount": "10"},
            files=[
                ("photos", ("fine.jpg", _sample("claim_genuine.jpg"), "image/jpeg")),
                ("photos", ("broken.jpg", b"this is not a jpeg", "image/jpeg")),
            ],
        )
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "media.not_an_image"
        # With several photos, the answer says which one failed.
        assert error["file"] == {"field": "photos", "index": 1, "name": "broken.jpg"}
        assert "photos[1] (broken.jpg)" in error["message"]
        assert len(buyer.get("/v1/claims", params={"limit": 200}).json()["items"]) == before


def test_missing_fields_and_bad_values_are_refused_clearly(
    server: Server, shop: dict[str, str]
) -> None:
    with server.client(shop["buyer"]) as buyer:
        assert buyer.post("/v1/claims", data={"type": "refund_only"}).status_code == 422
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_everything", "amount": "1"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "claim.bad_type"
        r = buyer.post(
            "/v1/claims", data={"order_id": shop["order"], "type": "refund_only", "amount": "9999"}
        )
        assert r.json()["error"]["code"] == "claim.bad_amount"


def _claims_in_database(server: Server) -> int:
    database = Database(server.settings)
    try:
        with database.session() as session:
            return int(session.execute(text("SELECT count(*) FROM claims")).scalar_one())
    finally:
        database.dispose()


def test_a_field_the_route_does_not_take_is_refused_not_dropped(
    server: Server, shop: dict[str, str]
) -> None:
    """A claim's photos sent as ``photo`` were dropped and the claim filed without them (201);
    an order's ``shipped`` and a decision's ``buyer_notes`` were dropped too (a walkthrough)."""
    before = _claims_in_database(server)
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "10"},
            files=[("photo", ("c.jpg", _sample("claim_genuine.jpg"), "image/jpeg"))],
        )
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid", r.text
    said = r.json()["error"]["message"]
    assert "'photo'" in said and "photos" in said, said
    assert _claims_in_database(server) == before
    # Without a key it is refused for that first: a stranger is not told the route's fields.
    with server.client() as stranger:
        r = stranger.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "10"},
            files=[("photo", ("c.jpg", b"x", "image/jpeg"))],
        )
    assert r.status_code == 401, r.text
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            "/v1/orders",
            json={
                "external_id": "o-misspelt",
                "sku_id": shop["sku"],
                "buyer_id": "buyer-1",
                "amount": 10,
                "shipped": "2026-11-01T08:00:00+08:00",
            },
        )
        assert r.status_code == 422 and "shipped" in r.json()["error"]["message"], r.text
        r = merchant.post(  # a SKU's form too
            "/v1/skus",
            data={"external_id": "cup-x", "titel": "mug"},
            files=[("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
        )
        assert r.status_code == 422 and "'titel'" in r.json()["error"]["message"], r.text


def test_a_claim_without_a_photo_is_never_rejected_as_forged(
    server: Server, shop: dict[str, str]
) -> None:
    """Rejected with the default, a claim filed without photos put its buyer on record as a
    confirmed forger (a walkthrough): there is nothing in it to forge."""
    with server.client(shop["merchant"]) as merchant:  # an order of its own: it is rejected
        r = merchant.post(
            "/v1/orders",
            json={"external_id": "o-no-photo", "sku_id": shop["sku"], "buyer_id": "buyer-2",
                  "amount": 10, "buyer": {"name": "李四"}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
    with server.client(shop["other_buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": r.json()["id"], "type": "refund_only", "amount": "10"},
        )
        assert r.status_code == 201 and r.json()["photos"] == [], r.text
        claim = r.json()["id"]
        wait_analysed(buyer, claim)
    with server.client(shop["reviewer"]) as reviewer:
        r = reviewer.post(
            f"/v1/claims/{claim}/decision",
            json={"decision": "reject", "reason": "no photo", "forgery": True},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "decision.bad_value", r.text
        r = reviewer.post(
            f"/v1/claims/{claim}/decision", json={"decision": "reject", "reason": "no photo"}
        )
        assert r.status_code == 200, r.text
        (decision,) = reviewer.get(f"/v1/claims/{claim}").json()["decisions"]
    assert decision["outcome"] == "rejected" and decision["forgery"] is False


def test_each_role_sees_only_its_own_claims_and_refusals_say_so(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    path = f"/v1/claims/{claim['id']}"
    for key in ("other_buyer", "other_merchant", "other_reviewer"):
        with server.client(shop[key]) as outsider:
            r = outsider.get(path)
            assert r.status_code == 404, key
            assert claim["id"] not in [c["id"] for c in outsider.get("/v1/claims").json()["items"]]
    for key in ("buyer", "merchant", "reviewer"):
        with server.client(shop[key]) as insider:
            assert insider.get(path).status_code == 200, key
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(f"{path}/decision", json={"decision": "approve", "reason": "mine"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "auth.forbidden"
    with server.client() as anonymous:
        assert anonymous.get(path).status_code == 401
    with server.client("rlk_forged.secret") as forged:
        assert forged.get(path).json()["error"]["code"] == "auth.invalid"


def test_an_illegal_transition_is_refused_with_the_allowed_moves(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(
        server, shop["other_buyer"], shop["other_order"], "claim_genuine.jpg", amount=50.0
    )
    with server.client(shop["other_buyer"]) as buyer:
        assert wait_analysed(buyer, claim["id"])["state"] == "approved"
    with server.client(server.admin) as admin:
        r = admin.post(
            f"/v1/claims/{claim['id']}/decision", json={"decision": "reject", "reason": "x"}
        )
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "claim.illegal_transition"
        r = admin.post(
            f"/v1/claims/{claim['id']}/decision", json={"decision": "reject", "reason": "  "}
        )
        assert r.json()["error"]["code"] == "decision.reason_required"


def test_a_reviewer_decides_a_claim_that_waits_for_the_merchant_and_the_window_closes_on_record(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    assert assessed(server, claim["id"])["state"] == "awaiting_merchant"
    with server.client(shop["reviewer"]) as reviewer:
        r = reviewer.post(
            f"/v1/claims/{claim['id']}/decision",
            # Not a reject: a second confirmed forgery of this buyer would route its later
            # claims in this module to a person.
            json={"decision": "approve", "reason": "the merchant agreed to refund at once"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "decided"
    database = Database(server.settings)
    try:
        with database.session() as session:
            actions = (
                session.execute(
                    text("SELECT action FROM audit_log WHERE claim_id = :c ORDER BY seq"),
                    {"c": claim["id"]},
                )
                .scalars()
                .all()
            )
    finally:
        database.dispose()
    assert actions[-2:] == ["claim.window_closed", "decision.approve"]


def test_a_decision_the_state_does_not_allow_is_refused_with_the_allowed_ones(
    server: Server, shop: dict[str, str]
) -> None:
    from refundlens.cases import allowed_decisions

    assert "request_capture" not in allowed_decisions("awaiting_capture")
    assert allowed_decisions("decided") == () and allowed_decisions("analysing") == ()
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    assessed(server, claim["id"])
    with server.client(shop["reviewer"]) as reviewer:
        path = f"/v1/claims/{claim['id']}/decision"
        asked = reviewer.post(
            path,
            json={
                "decision": "request_capture",
                "reason": "show it",
                "buyer_note": "请拍摄杯底裂纹，从左侧拍。",
            },
        )
        assert asked.status_code == 200 and asked.json()["state"] == "awaiting_capture"
    with server.client(shop["buyer"]) as buyer:
        view = buyer.get(f"/v1/claims/{claim['id']}").json()
        assert view["capture_ask"] == "请拍摄杯底裂纹，从左侧拍。"
        url = buyer.post(f"/v1/claims/{claim['id']}/capture-token").json()["url"]
    with httpx.Client(base_url=server.url, timeout=60) as anyone:  # the buyer's phone
        assert "请拍摄杯底裂纹，从左侧拍。" in anyone.get(url).text
    with server.client(shop["reviewer"]) as reviewer:
        again = reviewer.post(path, json={"decision": "request_capture", "reason": "again"})
        assert again.status_code == 409
        assert "allowed now: approve, reject, partial, escalate" in again.json()["error"]["message"]
        assert reviewer.post(path, json={"decision": "approve", "reason": "ok"}).status_code == 200
    with server.client(shop["buyer"]) as buyer:  # asked no more: not shown
        assert buyer.get(f"/v1/claims/{claim['id']}").json()["capture_ask"] is None


def test_the_claim_list_pages_with_a_cursor(server: Server, shop: dict[str, str]) -> None:
    with server.client(server.admin) as admin:
        everything = admin.get("/v1/claims", params={"limit": 200}).json()["items"]
        assert len(everything) >= 3
        first = admin.get("/v1/claims", params={"limit": 2}).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        second = admin.get("/v1/claims", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        ids = [c["id"] for c in first["items"] + second["items"]]
        assert ids == [c["id"] for c in everything[: len(ids)]]
        assert admin.get("/v1/claims", params={"cursor": "abc"}).status_code == 400
    # The cursor names the page's last claim, not its platform-wide number (which told any
    # shop how many claims the platform had); a claim the caller may not see is no cursor.
    assert first["next_cursor"] == first["items"][-1]["id"]
    with server.client(shop["other_merchant"]) as other:
        for claim in everything:
            if claim["merchant_id"] != "shop-b":
                answer = other.get("/v1/claims", params={"cursor": claim["id"]})
                assert answer.status_code == 400, answer.text
                assert answer.json()["error"]["code"] == "request.bad_cursor"
                break


def test_a_platform_syncs_the_claims_that_changed_since_its_last_look(
    server: Server, shop: dict[str, str]
) -> None:
    # An integrator could only read every claim to learn what changed, and the list's items
    # named neither the order, the type nor any time (a walkthrough).
    import datetime as dt

    with server.client(server.admin) as admin:
        everything = admin.get("/v1/claims", params={"limit": 200}).json()["items"]
        assert everything
        item = everything[0]
        assert {"order_id", "type", "created_at", "updated_at"} <= set(item)
        latest = max(dt.datetime.fromisoformat(c["updated_at"]) for c in everything)
        since = admin.get("/v1/claims", params={"updated_since": latest.isoformat()}).json()
        assert since["items"] and all(
            dt.datetime.fromisoformat(c["updated_at"]) >= latest for c in since["items"]
        )
        later = (latest + dt.timedelta(seconds=1)).isoformat()
        assert admin.get("/v1/claims", params={"updated_since": later}).json()["items"] == []
        # Oldest change first: asking again from the last item's updated_at misses nothing
        # (newest claim first, a claim of page 1 changed while page 2 was read was lost).
        earliest = min(dt.datetime.fromisoformat(c["updated_at"]) for c in everything)
        synced = admin.get(
            "/v1/claims", params={"updated_since": earliest.isoformat(), "limit": 200}
        ).json()["items"]
        times = [dt.datetime.fromisoformat(c["updated_at"]) for c in synced]
        assert times == sorted(times) and len(synced) == len(everything)
        # The sync loop as the docs say it, a page of one: it reads every claim once and ends
        # (asking again from the last item's time alone, a page of one came back for ever).
        seen: list[str] = []
        params: dict[str, object] = {"updated_since": earliest.isoformat(), "limit": 1}
        for _ in range(len(everything) + 2):
            page = admin.get("/v1/claims", params=params).json()
            seen += [c["id"] for c in page["items"]]
            if not page["next_cursor"]:
                break
            params = {
                "updated_since": page["items"][-1]["updated_at"],
                "cursor": page["next_cursor"],
                "limit": 1,
            }
        assert sorted(seen) == sorted(c["id"] for c in everything)
        # A "+" sent unencoded arrives as a space: read as the "+" it was.
        spaced = earliest.astimezone(dt.timezone(dt.timedelta(hours=8))).isoformat()
        spaced = spaced.replace("+08:00", " 08:00")
        assert admin.get("/v1/claims", params={"updated_since": spaced}).status_code == 200
        # A claim's own answer says when it changed, as its list item does.
        one = admin.get(f"/v1/claims/{item['id']}").json()
        assert one["updated_at"] == item["updated_at"]
        for refused in (
            {"updated_since": "2026-11-01T08:00:00"},  # no offset
            {"updated_since": "0001-01-01T00:00:00+01:00"},  # overflows in UTC (a 500)
            {"updated_since": "yesterday"},
        ):
            answer = admin.get("/v1/claims", params=refused)
            assert answer.status_code == 422, (refused, answer.text)
            assert answer.json()["error"]["code"] == "request.bad_field"
    with server.client(shop["buyer"]) as buyer:
        own = buyer.get("/v1/claims").json()["items"]
        # A buyer reads when it filed, never when its claim last changed (the analysis' time).
        assert own and "updated_at" not in own[0] and own[0]["created_at"]
        refused = buyer.get("/v1/claims", params={"updated_since": latest.isoformat()})
        assert refused.status_code == 403


def test_an_order_reads_back_its_times_in_the_zone_they_were_sent_in(
    server: Server, shop: dict[str, str]
) -> None:
    # They came back in UTC, though the order keeps its offset (an integrator's walkthrough).
    with server.client(shop["merchant"]) as merchant:
        order = merchant.get(f"/v1/orders/{shop['order']}").json()
    assert order["shipped_at"] == "2026-11-01T08:00:00+08:00"
    assert order["delivered_at"] == "2026-11-03T08:00:00+08:00"


def test_a_platform_reads_what_each_decided_claim_pays_and_in_which_currency(
    server: Server, shop: dict[str, str]
) -> None:
    """A partial refund's amount was in no event and no list item, and no claim said its
    currency: a risk team summed its refunds by reading every claim and every order (a
    walkthrough). The claim, its list item and the claim.decided event say them now."""
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            "/v1/orders",
            json={"external_id": "o-usd", "sku_id": shop["sku"], "buyer_id": "buyer-1",
                  "amount": 80, "currency": "USD", "buyer": {"name": "Ann"}},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        order = r.json()["id"]
    claim = _file_claim(server, shop["buyer"], order, "claim_forged.jpg", amount=60)
    assert claim["currency"] == "USD"  # the buyer's view says it too
    assessed(server, claim["id"])
    with server.client(shop["reviewer"]) as reviewer:
        open_claim = reviewer.get(f"/v1/claims/{claim['id']}").json()
        assert open_claim["outcome"] is None and open_claim["refund"] is None
        r = reviewer.post(
            f"/v1/claims/{claim['id']}/decision",
            json={"decision": "partial", "amount": 40, "reason": "one of two cups broke"},
        )
        assert r.status_code == 200, r.text
        assert (r.json()["outcome"], r.json()["refund"], r.json()["currency"]) == (
            "partial", 40.0, "USD",
        )  # fmt: skip
        items = reviewer.get("/v1/claims", params={"state": "decided", "limit": 200}).json()
        [item] = [i for i in items["items"] if i["id"] == claim["id"]]
        assert (item["outcome"], item["refund"], item["currency"]) == ("partial", 40.0, "USD")
    database = Database(server.settings)
    try:
        with database.session() as session:
            bodies = (
                session.execute(
                    text(
                        "SELECT body FROM webhook_events WHERE claim_id = :c AND event = "
                        "'claim.decided'"
                    ),
                    {"c": claim["id"]},
                )
                .scalars()
                .all()
            )
    finally:
        database.dispose()
    assert bodies
    for body in bodies:
        event = body if isinstance(body, dict) else json.loads(body)
        assert event["outcome"] == "partial" and event["refund"] == 40.0
        assert event["claim"]["order_external_id"] == "o-usd"
        assert event["claim"]["currency"] == "USD" and event["claim"]["amount"] == 60.0


def test_buyer_personal_data_is_encrypted_at_rest(server: Server, shop: dict[str, str]) -> None:
    database = Database(server.settings)
    try:
        with database.session() as session:
            raw = session.execute(text("SELECT buyer_pii FROM orders")).scalars().all()
    finally:
        database.dispose()
    assert raw and all(value is not None for value in raw)
    for value in raw:
        blob = bytes(value)
        assert b"13800138000" not in blob and "张三".encode() not in blob


def test_an_altered_audit_row_is_found_by_audit_verify(
    server: Server, shop: dict[str, str]
) -> None:
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": server.settings.data_dir,
        "REFUNDLENS_DATABASE_URL": server.settings.database_url,
    }

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "refundlens", "audit", "verify"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert "chain verified" in ok.stdout
    database = Database(server.settings)
    try:
        with database.session() as session:
            original = session.execute(
                text("SELECT actor FROM audit_log WHERE seq = 3")
            ).scalar_one()
            session.execute(text("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3"))
        broken = verify()
        assert broken.returncode == 1
        assert "entry 3" in broken.stderr and "altered" in broken.stderr
    finally:
        with database.session() as session:
            session.execute(text("UPDATE audit_log SET actor = :a WHERE seq = 3"), {"a": original})
        database.dispose()
    assert verify().returncode == 0


def _exif_photo(
    taken: str,
    offset: str = "+08:00",
    seed: int = 3,
    base: str = "claim_unrelated.jpg",
    turn: float = 0.0,
    scale: float = 1.0,
) -> bytes:
    """A bundled photo, turned by ``turn`` degrees (a new angle: another claim may have sent
    the bundled photo itself), cropped by ``seed`` pixels and enlarged by ``scale``, with a
    camera's capture time."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(_sample(base))).convert("RGB")
    if turn:
        width, height = image.size
        image = image.rotate(turn, Image.Resampling.BICUBIC)
        image = image.crop((width // 8, height // 8, width - width // 8, height - height // 8))
    image = image.crop((seed, seed, image.width - seed, image.height - seed))
    if scale != 1.0:
        size = (round(image.width * scale), round(image.height * scale))
        image = image.resize(size, Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "P60"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x9011] = taken, offset
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def test_a_photo_taken_before_shipment_asks_for_a_live_capture_which_reopens_the_analysis(
    server: Server, shop: dict[str, str]
) -> None:
    import datetime as dt

    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "20"},
            files=[("photos", ("old.jpg", _exif_photo("2026:10:20 10:00:00"), "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        claim = assessed(server, r.json()["id"])
        assert claim["state"] == "awaiting_capture", claim["routing_reason"]
        # The buyer's own deadline, to the minute: to the microsecond, deadlines told a forger
        # how long the analysis took (shorter when a cheap check had already found it).
        mine = dt.datetime.fromisoformat(
            buyer.get(f"/v1/claims/{claim['id']}").json()["deadline_at"]
        )
        exact = dt.datetime.fromisoformat(claim["deadline_at"])
        assert mine == exact.replace(second=0, microsecond=0) and exact - mine < dt.timedelta(
            minutes=1
        )
        token = buyer.post(f"/v1/claims/{claim['id']}/capture-token").json()["token"]
        # A made-up token is refused before anything is read or decoded, and spends nothing.
        for made_up in ("cap_00000000000000000000.nothing-of-the-kind", token[:-4] + "abcd"):
            r = buyer.post(
                f"/v1/claims/{claim['id']}/capture",
                data={"token": made_up},
                files=[("photo", ("x.jpg", _exif_photo("2026:10:21 10:00:00"), "image/jpeg"))],
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "capture.bad_token"
        # No photo at all: the capture page's code, not a framework's 422 (docs/errors.md).
        r = buyer.post(f"/v1/claims/{claim['id']}/capture", data={"token": token})
        assert r.status_code == 400 and r.json()["error"]["code"] == "capture.no_photo", r.text
        refused = [a for a, _ in audit_entries(server, claim["id"]) if a == "capture.refused"]
        assert refused == []
        # Another photo of the product, but taken the day after the old one: not live.
        stale = _exif_photo("2026:10:21 10:00:00", seed=4, base="claim_genuine.jpg", turn=15)
        r = buyer.post(
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token},
            files=[("photo", ("stale.jpg", stale, "image/jpeg"))],
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "capture.not_live"
        # The claim's own photo again, stale: refused as stale, before it is looked up among
        # the pictures on file, so that a stale file never learns whether it is on file (any
        # buyer's, any shop's, the bank's).
        r = buyer.post(
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token},
            files=[("photo", ("again.jpg", _exif_photo("2026:10:21 10:00:00", seed=5), "image/jpeg"))],
        )  # fmt: skip
        assert r.status_code == 400 and r.json()["error"]["code"] == "capture.not_live"
        now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
        # The claim's own photo again, re-cropped, with a fresh capture time: a replay.
        r = buyer.post(
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token},
            files=[("photo", ("again.jpg", _exif_photo(now, seed=5), "image/jpeg"))],
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "capture.replayed"
        live_photo = _drawn_photo(now, seed=31)
        r = buyer.post(  # the app's box is checked before the photo counts
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token, "damage_boxes": "[[0.2, 0.2, 0.4], null]"},
            files=[("photo", ("live.jpg", live_photo, "image/jpeg"))],
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "claim.bad_damage_box"
        r = buyer.post(
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token, "damage_boxes": "[[0.2, 0.25, 0.5, 0.6]]"},
            files=[("photo", ("live.jpg", live_photo, "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        assert [p["live_capture"] for p in r.json()["photos"]] == [False, True]
        assert [p["damage_box"] for p in r.json()["photos"]] == [[0.2, 0.25, 0.5, 0.6], None]
        again = buyer.post(
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token},
            files=[("photo", ("live.jpg", _exif_photo(now, seed=6), "image/jpeg"))],
        )
        assert again.json()["error"]["code"] in ("capture.token_used", "capture.not_requested")
        final = assessed(server, claim["id"])
    # The old photo still predates shipment, but a live photo was given: a person decides now.
    assert final["state"] == "awaiting_merchant", final["routing_reason"]


def test_a_live_capture_that_repeats_another_claims_photo_is_taken_recorded_and_sent_to_a_person(
    server: Server, shop: dict[str, str]
) -> None:
    # Refusing it told the sender, about any picture, whether it was on file in another
    # buyer's claim (or the bank): the capture is taken like any other, the repeat recorded,
    # and the analysis that follows finds it, so a person decides.
    import datetime as dt

    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
    # Another buyer's claim on file with its photo (drawn here: the live capture is indexed,
    # and a bundled photo would then be seen again in a later test's claim of it).
    elsewhere = _drawn_photo("2026:10:20 09:00:00", seed=41)
    other = _file_claim(server, shop["other_buyer"], shop["other_order"], "e.jpg", data=elsewhere)
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "20"},
            files=[
                ("photos", ("old.jpg", _exif_photo("2026:10:20 10:00:00", seed=7), "image/jpeg"))
            ],
        )
        assert r.status_code == 201, r.text
        claim = assessed(server, r.json()["id"])
        assert claim["state"] == "awaiting_capture", claim["routing_reason"]
        token = buyer.post(f"/v1/claims/{claim['id']}/capture-token").json()["token"]
        # The other claim's photo, with a fresh capture time: answered as any capture is, so
        # the sender learns nothing of what is on file.
        replay = _drawn_photo(now, seed=41)
        r = buyer.post(
            f"/v1/claims/{claim['id']}/capture",
            data={"token": token},
            files=[("photo", ("live.jpg", replay, "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        assert other["id"] not in r.text and "on file" not in r.text
    (recorded,) = [
        d for action, d in audit_entries(server, claim["id"]) if action == "capture.repeats_on_file"
    ]
    assert recorded["how"] == "pdq" and recorded["other_claim"] == other["id"]
    assert not [a for a, _ in audit_entries(server, claim["id"]) if a == "capture.refused"]
    final = assessed(server, claim["id"])
    live = [i for i in final["assessment"]["images"] if i["path"] == "live.jpg"]
    assert live and "reuse.seen_before" in {f["code"] for f in live[0]["findings"]}
    assert final["state"] not in ("approved", "decided", "final"), final["state"]
    assert final["action"] in ("review", "escalate"), final["action"]


def test_a_live_capture_never_answers_whether_the_shops_photo_or_a_variant_was_traced(
    tmp_path: Path,
) -> None:
    # A security review: with a claim photo that was no copy of the shop's, "capture.replayed"
    # for an edit of the shop's photo said "that edit was traced", and ten links of five
    # refusals were fifty tries. A repeat of the shop's photo is taken, recorded, and a person
    # decides; after capture_max_replay_refusals refusals on a claim, so is a repeat of the
    # claim's own photo.
    import datetime as dt

    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a")
        merchant, buyer_key = server.key("merchant", "shop-a"), server.key("buyer", subject="b-9")
        sku = listed_sku(server, merchant)
        claims = []
        for n in range(2):
            order = order_for(
                server, merchant, sku, "b-9", f"o-{n}", amount=150.0,
                delivered_at="2026-11-03T08:00:00+08:00",
            )  # fmt: skip
            with server.client(buyer_key) as buyer:
                r = buyer.post(
                    "/v1/claims",
                    data={"order_id": order, "type": "refund_only", "amount": "20"},
                    files=[("photos", ("old.jpg", _drawn_photo("2026:10:20 10:00:00", seed=60 + n), "image/jpeg"))],
                )  # fmt: skip
                assert r.status_code == 201, r.text
                claim = wait_analysed(buyer, r.json()["id"])
                assert claim["state"] == "awaiting_capture", claim
                claims.append(claim["id"])
        with server.client(buyer_key) as buyer:
            # The shop's listing photo, with a fresh capture time: taken, not refused.
            token = buyer.post(f"/v1/claims/{claims[0]}/capture-token").json()["token"]
            # (enlarged: the bundled one is under claim_photo_min_side)
            shop_photo = _exif_photo(now, seed=6, base="listing.jpg", scale=2.0)
            r = buyer.post(
                f"/v1/claims/{claims[0]}/capture",
                data={"token": token},
                files=[("photo", ("live.jpg", shop_photo, "image/jpeg"))],
            )
            assert r.status_code == 201, r.text
            # The claim's own photo: refused while refusals are few, then taken.
            token = buyer.post(f"/v1/claims/{claims[1]}/capture-token").json()["token"]
            codes = []
            for _ in range(server.settings.capture_max_replay_refusals + 1):
                r = buyer.post(
                    f"/v1/claims/{claims[1]}/capture",
                    data={"token": token},
                    files=[("photo", ("again.jpg", _drawn_photo(now, seed=61), "image/jpeg"))],
                )
                codes.append(r.json()["error"]["code"] if r.status_code != 201 else "taken")
            assert codes == ["capture.replayed"] * server.settings.capture_max_replay_refusals + [
                "taken"
            ], codes
        for claim_id in claims:
            actions = [a for a, _ in audit_entries(server, claim_id)]
            assert "capture.repeats_on_file" in actions, actions
            final = assessed(server, claim_id)
            assert final["state"] not in ("approved", "decided", "final"), final["routing_reason"]
        (recorded,) = [
            d for a, d in audit_entries(server, claims[0]) if a == "capture.repeats_on_file"
        ]
        assert recorded["repeats"] == "the shop's product photo"


def _drawn_photo(taken: str, seed: int = 21) -> bytes:
    """Coloured shapes on a grey ground with a camera's capture time: a photo unlike the
    bundled ones (and, by ``seed``, unlike each other), so that no reuse or reference finding
    touches it. Live captures are indexed for reuse: one made from a bundled photo would be
    seen again in a later test's claim of that photo."""
    import io

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (800, 600), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(0, 760)), int(rng.integers(0, 560))
        w, h = int(rng.integers(20, 200)), int(rng.integers(20, 200))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x, y, x + w, y + h), fill=colour)
    pixels = np.asarray(image).astype(np.int16) + rng.integers(-6, 7, (600, 800, 3))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "P60"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x9011] = taken, "+08:00"
    out = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
        out, "JPEG", quality=92, exif=exif.tobytes()
    )
    return out.getvalue()


def _delivered_order(server: Server, shop: dict[str, str], buyer: str, tag: str) -> str:
    """A new order of the shop's SKU for ``buyer``, shipped and delivered in November; its id."""
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            "/v1/orders",
            json={
                "external_id": f"o-{tag}-{buyer}", "sku_id": shop["sku"], "buyer_id": buyer,
                "amount": 90.0, "shipped_at": "2026-11-01T08:00:00+08:00",
                "delivered_at": "2026-11-03T08:00:00+08:00",
            },
        )  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_one_live_capture_serves_one_claim_and_is_on_file_for_the_next(
    server: Server, shop: dict[str, str]
) -> None:
    # A capture accepted on one claim is indexed like a filed photo: the same picture sent as
    # the live capture of another claim (another buyer's even) is recorded as a repeat and
    # found by that claim's analysis, and a claim filed with it is seen as reuse.
    import datetime as dt

    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
    orders = {
        buyer: _delivered_order(server, shop, buyer, "live") for buyer in ("buyer-1", "buyer-2")
    }
    live = _drawn_photo(now, seed=32)
    firsts = []
    # Two unrelated old photos (no reuse between them): the bundled one, and shapes drawn here.
    pairs = (
        ("buyer", "buyer-1", _drawn_photo("2026:10:20 10:00:00", seed=33)),
        ("other_buyer", "buyer-2", _drawn_photo("2026:10:20 10:00:00", seed=34)),
    )
    for key, buyer, old_photo in pairs:
        with server.client(shop[key]) as client:
            r = client.post(
                "/v1/claims",
                data={"order_id": orders[buyer], "type": "refund_only", "amount": "20"},
                files=[("photos", ("old.jpg", old_photo, "image/jpeg"))],
            )  # fmt: skip
            assert r.status_code == 201, r.text
            claim = assessed(server, r.json()["id"])
            assert claim["state"] == "awaiting_capture", [
                f["code"] for i in claim["assessment"]["images"] for f in i["findings"]
            ]
            token = client.post(f"/v1/claims/{claim['id']}/capture-token").json()["token"]
            if key == "other_buyer":
                # Nor is a buyer told what the checks read in a refused file sent as a capture.
                from refundlens.detectors.provenance._examples import comfyui_webp

                r = client.post(
                    f"/v1/claims/{claim['id']}/capture",
                    data={"token": token},
                    files=[("photo", ("anim.webp", comfyui_webp(frames=3), "image/webp"))],
                )
                assert r.json()["error"]["code"] == "media.animated", r.text
                assert "facts" not in r.json()["error"] and "ComfyUI" not in r.text
            r = client.post(
                f"/v1/claims/{claim['id']}/capture",
                data={"token": token},
                files=[("photo", ("live.jpg", live, "image/jpeg"))],
            )
            firsts.append((claim["id"], r))
    (first, accepted), (second, repeated) = firsts
    assert accepted.status_code == 201, accepted.text
    assert repeated.status_code == 201, repeated.text  # answered as any capture is
    (entry,) = [
        d for action, d in audit_entries(server, second) if action == "capture.repeats_on_file"
    ]
    assert entry["how"] == "pdq" and entry["other_claim"] == first
    found = assessed(server, second)
    assert "reuse.seen_before" in {
        f["code"] for i in found["assessment"]["images"] for f in i["findings"]
    }
    assert found["action"] in ("review", "escalate"), found["action"]
    reused = _file_claim(
        server, shop["other_buyer"], orders["buyer-2"], "live.jpg", amount=20.0, data=live
    )
    with server.client(shop["other_buyer"]) as buyer:
        wait_analysed(buyer, reused["id"])
    with server.client(server.admin) as admin:
        body = admin.get(f"/v1/claims/{reused['id']}").json()
    codes = {f["code"] for image in body["assessment"]["images"] for f in image["findings"]}
    assert "reuse.seen_before" in codes, codes


def test_two_captures_of_one_photo_sent_at_once_on_two_claims_are_both_found_as_one(
    server: Server, shop: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replay check runs outside any transaction. Here the same photo is accepted as another
    # claim's capture while the first capture is between its check and its acceptance: the
    # acceptance looks again under the audit log's lock and records the repeat, which the
    # analysis finds (a person decides).
    import datetime as dt

    from refundlens.service import live_capture

    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
    claims = {}
    for key, buyer, seed in (("buyer", "buyer-1", 36), ("other_buyer", "buyer-2", 37)):
        order = _delivered_order(server, shop, buyer, "race")
        with server.client(shop[key]) as client:
            r = client.post(
                "/v1/claims",
                data={"order_id": order, "type": "refund_only", "amount": "20"},
                files=[("photos", ("old.jpg", _drawn_photo("2026:10:20 10:00:00", seed), "image/jpeg"))],
            )  # fmt: skip
            assert r.status_code == 201, r.text
            claim = assessed(server, r.json()["id"])
            assert claim["state"] == "awaiting_capture", claim["routing_reason"]
            token = client.post(f"/v1/claims/{claim['id']}/capture-token").json()["token"]
            claims[key] = (claim["id"], token)
    live = _drawn_photo(now, seed=38)

    def send(key: str) -> httpx.Response:
        claim_id, token = claims[key]
        with server.client(shop[key]) as client:
            return client.post(
                f"/v1/claims/{claim_id}/capture",
                data={"token": token},
                files=[("photo", ("live.jpg", live, "image/jpeg"))],
            )

    checked_first = live_capture._refuse_replays
    raced: list[bool] = []
    meanwhile: list[httpx.Response] = []

    def check_then_race(*args: object, **kwargs: object) -> object:
        checked = checked_first(*args, **kwargs)  # type: ignore[arg-type]
        if not raced:  # the first capture only: the other one passes straight through
            raced.append(True)
            meanwhile.append(send("other_buyer"))
        return checked

    monkeypatch.setattr(live_capture, "_refuse_replays", check_then_race)
    first = send("buyer")
    monkeypatch.undo()
    assert meanwhile[0].status_code == 201, meanwhile[0].text
    assert first.status_code == 201, first.text
    (entry,) = [
        d
        for action, d in audit_entries(server, claims["buyer"][0])
        if action == "capture.repeats_on_file"
    ]
    assert entry["meanwhile"] is True and entry["other_claim"] == claims["other_buyer"][0]
    # The analysis counts only claims filed before this one (the other was filed after), so
    # the recorded repeat is what sends it to a person.
    found = assessed(server, claims["buyer"][0])
    assert found["state"] == "awaiting_merchant", found["routing_reason"]
    # The other claim, filed after, finds the first's picture in its analysis.
    other = assessed(server, claims["other_buyer"][0])
    assert other["state"] == "awaiting_merchant", other["routing_reason"]


def test_a_live_photo_that_shows_nothing_is_refused_and_the_link_kept(
    server: Server, shop: dict[str, str]
) -> None:
    # A covered lens or a camera's first black frame: it shows no damage, and accepting it
    # spent the buyer's only link on nothing.
    import datetime as dt
    import io

    from PIL import Image

    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
    order = _delivered_order(server, shop, "buyer-1", "blank")
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "20"},
            files=[("photos", ("old.jpg", _drawn_photo("2026:10:20 10:00:00", 39), "image/jpeg"))],
        )  # fmt: skip
        assert r.status_code == 201, r.text
        claim = assessed(server, r.json()["id"])
        assert claim["state"] == "awaiting_capture", claim["routing_reason"]
        token = buyer.post(f"/v1/claims/{claim['id']}/capture-token").json()["token"]
        black = io.BytesIO()
        Image.new("RGB", (640, 480)).save(black, "JPEG")
        for sent, status in ((black.getvalue(), 400), (_drawn_photo(now, seed=40), 201)):
            r = buyer.post(
                f"/v1/claims/{claim['id']}/capture",
                data={"token": token},
                files=[("photo", ("live.jpg", sent, "image/jpeg"))],
            )
            assert r.status_code == status, r.text
            if status == 400:
                assert r.json()["error"]["code"] == "capture.blank"


def _filed_drawn(server: Server, key: str, order: str, kind: str, amount: float, seed: int) -> str:
    """A claim on ``order`` with a drawn photo of its own (``seed``), analysed: its id."""
    with server.client(key) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": kind, "amount": str(amount)},
            files=[("photos", ("p.jpg", _drawn_photo("2026:11:04 10:00:00", seed=seed), "image/jpeg"))],
        )  # fmt: skip
        assert r.status_code == 201, r.text
        wait_analysed(buyer, r.json()["id"])
    return str(r.json()["id"])


def _captured(server: Server, key: str, claim_id: str, live: bytes) -> dict:  # type: ignore[type-arg]
    """The claim as staff read it once ``live`` was taken as its live capture and analysed."""
    with server.client(key) as buyer:
        token = buyer.post(f"/v1/claims/{claim_id}/capture-token").json()["token"]
        r = buyer.post(
            f"/v1/claims/{claim_id}/capture",
            data={"token": token},
            files=[("photo", ("live.jpg", live, "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        wait_analysed(buyer, claim_id)
    return assessed(server, claim_id)


def _decided(server: Server, key: str, claim_id: str, decision: str) -> int:
    """A reviewer's ``decision`` on the claim: the answer's status."""
    with server.client(key) as person:
        r = person.post(
            f"/v1/claims/{claim_id}/decision", json={"decision": decision, "reason": "looked"}
        )
        return r.status_code


def test_a_live_photo_does_not_approve_a_claim_the_merchant_answered_or_that_would_overdraw_its_order(
    tmp_path: Path,
) -> None:
    # A security review: the analysis after a live photo approved (1) a claim the merchant had
    # answered with evidence while it waited for the photo, and (2) a claim rejected, appealed
    # and sent for a live photo by a reviewer after another claim had taken the order's
    # amount: 500 paid on an order of 300. Both go to a person now. The policy approves after a
    # capture without a confirmed box, as the review's did, and the live photo shows the
    # product (a new exposure of the bundled genuine photo): only the new rules stop them.
    import datetime as dt

    policy = tmp_path / "policy.yaml"
    policy.write_text("routing:\n  capture_must_confirm_damage: false\n")
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).strftime("%Y:%m:%d %H:%M:%S")
    live = _exif_photo(now, seed=4, base="claim_genuine.jpg", scale=2.0)
    for case in ("answered", "overdrawn"):
        # A server each: the same live photo twice would be a repeat (reuse.seen_before).
        with running_server(tmp_path / case, policy_path=str(policy)) as server:
            add_tenants(server, "shop-a")
            merchant = server.key("merchant", "shop-a")
            reviewer = server.key("reviewer", assign=["shop-a"])
            buyer_key = server.key("buyer", subject="b-7")
            sku = listed_sku(server, merchant)

            if case == "answered":  # the merchant answers while the claim waits for a photo
                order = order_for(
                    server, merchant, sku, "b-7", "o-1", amount=150.0,
                    delivered_at="2026-11-03T08:00:00+08:00",
                )  # fmt: skip
                claim = _filed_drawn(server, buyer_key, order, "refund_only", 150.0, 71)
                assert assessed(server, claim)["state"] == "awaiting_capture"
                with server.client(merchant) as shop:
                    r = shop.post(
                        f"/v1/claims/{claim}/evidence",
                        data={"kind": "statement", "statement": "it left intact, please reject"},
                    )
                    assert r.status_code == 201 and r.json()["claim_state"] == "awaiting_capture"
                said, then = "merchant answered", "under_review"
            else:  # another claim takes the order's amount while the first is appealed
                order = order_for(
                    server, merchant, sku, "b-7", "o-2", amount=300.0,
                    delivered_at="2026-11-03T08:00:00+08:00",
                )  # fmt: skip
                claim = _filed_drawn(server, buyer_key, order, "return_and_refund", 300.0, 72)
                assert _decided(server, reviewer, claim, "escalate") == 200
                assert _decided(server, reviewer, claim, "reject") == 200
                second = _filed_drawn(server, buyer_key, order, "refund_only", 200.0, 73)
                if assessed(server, second)["state"] != "under_review":
                    assert _decided(server, reviewer, second, "escalate") == 200
                assert _decided(server, reviewer, second, "approve") == 200
                with server.client(buyer_key) as buyer:
                    r = buyer.post(f"/v1/claims/{claim}/appeal", json={"reason": "it broke"})
                    assert r.status_code == 200, r.text
                # Someone who has not decided it decides the appeal (appeal_decided_by_another).
                other = server.key("reviewer", assign=["shop-a"])
                assert _decided(server, reviewer, claim, "request_capture") == 409
                over = _decided(server, other, claim, "approve")
                assert over == 409  # claim.over_order_amount
                assert _decided(server, other, claim, "request_capture") == 200
                # A person decided it before: a person decides again (the order's amount would
                # send it to one too: tests/test_cases.py, the routing rules).
                said, then = "a person decided on this claim before", "under_review"
            after = _captured(server, buyer_key, claim, live)
            assert after["state"] == then, after["routing_reason"]
            assert said in after["routing_reason"], after["routing_reason"]


def test_a_confirmed_forgery_cropped_and_filed_at_another_shop_is_found_in_the_bank(
    tmp_path: Path,
) -> None:
    # A security review: this platform's bank kept only the PDQ of a confirmed forgery's photos;
    # the photo cropped by 5% on one side (PDQ 60 bits away) and filed at another shop, for
    # another SKU, was approved minutes after a person rejected the first as forged. The bank
    # entry now carries the photo's local print.
    import io

    from PIL import Image

    def jpeg(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        return out.getvalue()

    forged = Image.open(io.BytesIO(_sample("claim_genuine.jpg"))).convert("RGB")
    forged = forged.resize((forged.width * 2, forged.height * 2), Image.Resampling.BICUBIC)
    cropped = forged.crop((forged.width // 20, 0, forged.width, forged.height))
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a", "shop-b")
        reviewer = server.key("reviewer", assign=["shop-a", "shop-b"])
        buyer_key = server.key("buyer", subject="ring-1")
        orders = []
        for shop in ("shop-a", "shop-b"):
            merchant = server.key("merchant", shop)
            orders.append(
                order_for(server, merchant, listed_sku(server, merchant), "ring-1", f"o-{shop}")
            )
        first = _file_claim(server, buyer_key, orders[0], "f.jpg", data=jpeg(forged))
        with server.client(buyer_key) as buyer:
            wait_analysed(buyer, first["id"])
        assert assessed(server, first["id"])["state"] == "approved"
        with server.client(server.key("merchant", "shop-a")) as shop_a:
            r = shop_a.post(f"/v1/claims/{first['id']}/appeal", json={"reason": "forged"})
            assert r.status_code == 200, r.text
        assert _decided(server, reviewer, first["id"], "reject") == 200  # as forged (default)
        second = _file_claim(server, buyer_key, orders[1], "g.jpg", data=jpeg(cropped))
        with server.client(buyer_key) as buyer:
            wait_analysed(buyer, second["id"])
        found = assessed(server, second["id"])
        [image] = found["assessment"]["images"]
        banked = [f for f in image["findings"] if f["code"] == "reuse.bank_local_match"]
        assert banked, [f["code"] for f in image["findings"]]
        assert found["state"] != "approved", found["routing_reason"]


@pytest.mark.parametrize("second_buyer", ["ring-2", "ring-3"])
def test_a_photo_cropped_and_filed_again_at_another_shop_is_seen_before(
    tmp_path: Path, second_buyer: str
) -> None:
    # A security review: before any person confirmed it, a photo cropped by 5% on one side and
    # filed for another SKU at another shop was approved (PDQ 60 bits away; the local-feature
    # check looked at the same SKU only), by the same buyer, and then by another buyer of the
    # ring. The buyer's earlier claims are compared by the local prints kept at filing, and
    # every buyer's latest photos through the sketch index (reuse_print_index_photos).
    import io

    from PIL import Image

    def jpeg(image: Image.Image) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=90)
        return out.getvalue()

    photo = Image.open(io.BytesIO(_sample("claim_genuine.jpg"))).convert("RGB")
    photo = photo.resize((photo.width * 2, photo.height * 2), Image.Resampling.BICUBIC)
    cropped = photo.crop((photo.width // 20, 0, photo.width, photo.height))
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a", "shop-b")
        keys = {name: server.key("buyer", subject=name) for name in {"ring-2", second_buyer}}
        orders = []
        for shop, buyer_id in (("shop-a", "ring-2"), ("shop-b", second_buyer)):
            merchant = server.key("merchant", shop)
            orders.append(
                order_for(server, merchant, listed_sku(server, merchant), buyer_id, f"o-{shop}")
            )
        first = _file_claim(server, keys["ring-2"], orders[0], "f.jpg", data=jpeg(photo))
        with server.client(keys["ring-2"]) as buyer:
            wait_analysed(buyer, first["id"])
        assert assessed(server, first["id"])["state"] == "approved"
        second = _file_claim(server, keys[second_buyer], orders[1], "g.jpg", data=jpeg(cropped))
        with server.client(keys[second_buyer]) as buyer:
            wait_analysed(buyer, second["id"])
        found = assessed(server, second["id"])
        [image] = found["assessment"]["images"]
        # A print match counts as a copy where the pixels agree (the reference check), by the
        # same buyer or by another: two shots of one product match by their prints too.
        [seen] = [f for f in image["findings"] if f["code"] == "reuse.seen_before"]
        [top] = seen["facts"]["matches"]
        assert top["claim"] == first["id"] and top["matched_by"] == "local_print"
        assert top["verdict"] in ("identical", "derived")
        assert top["same_buyer"] is (second_buyer == "ring-2")
        assert top["distance"] > server.settings.reuse_max_distance  # PDQ alone missed it
        assert "cropped, resized or mirrored copy" in seen["reason"]["en"]
        assert found["state"] != "approved", found["routing_reason"]
        with server.client(server.key("merchant", "shop-b")) as shop:
            shown = shop.get(f"/v1/claims/{second['id']}").json()["assessment"]
        [told] = [f for f in shown["images"][0]["findings"] if f["code"] == "reuse.seen_before"]
        # The shop reads that such a picture exists, not whose or which claim; and not "the
        # same picture, 80 bits away", which read as a doubtful match (a walkthrough).
        assert first["id"] not in str(told) and "ring-" not in str(told)
        assert told["reason"]["en"].startswith("A cropped, resized or mirrored copy")


def test_copies_filed_after_a_claim_do_not_hide_the_photo_it_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A security review: ring-3 filed 8 re-encodes of ring-2's cropped copy just after it, and
    # they took every place among the sketch index's nearest neighbours and candidates before
    # the claims filed later were left out: ring-2's claim was approved.
    import io
    import threading

    from PIL import Image

    import refundlens.cases as cases_module

    def jpeg(image: Image.Image, quality: int = 90) -> bytes:
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        return out.getvalue()

    photo = Image.open(io.BytesIO(_sample("claim_genuine.jpg"))).convert("RGB")
    photo = photo.resize((photo.width * 2, photo.height * 2), Image.Resampling.BICUBIC)
    cropped = photo.crop((photo.width // 5, 0, photo.width, photo.height))
    with running_server(tmp_path, embedded_analysis_processes=0) as server:
        add_tenants(server, "shop-a", "shop-b", "shop-c")
        keys = {n: server.key("buyer", subject=n) for n in ("ring-1", "ring-2", "ring-3")}
        orders = {}
        for shop, buyer_id in (("shop-a", "ring-1"), ("shop-b", "ring-2"), ("shop-c", "ring-3")):
            merchant = server.key("merchant", shop)
            orders[buyer_id] = order_for(
                server, merchant, listed_sku(server, merchant), buyer_id, f"o-{shop}"
            )
        first = _file_claim(server, keys["ring-1"], orders["ring-1"], "f.jpg", data=jpeg(photo))
        assert assessed(server, first["id"])["state"] == "approved"
        # The analyses wait while both claims are filed (a busy queue).
        gate, analyse = threading.Event(), cases_module.unboxing_video_frames

        def held(*args: Any, **kwargs: Any) -> Any:
            gate.wait(60)
            return analyse(*args, **kwargs)

        monkeypatch.setattr(cases_module, "unboxing_video_frames", held)
        try:
            second = _file_claim(
                server, keys["ring-2"], orders["ring-2"], "g.jpg", data=jpeg(cropped, 85)
            )
            with server.client(keys["ring-3"]) as buyer:
                r = buyer.post(
                    "/v1/claims",
                    data={"order_id": orders["ring-3"], "type": "refund_only", "amount": "120"},
                    files=[
                        ("photos", (f"d{q}.jpg", jpeg(cropped, q), "image/jpeg"))
                        for q in (95, 93, 91, 89, 87, 83, 81, 79)
                    ],
                )
                assert r.status_code == 201, r.text
        finally:
            gate.set()
        found = assessed(server, second["id"])
        codes = {f["code"] for f in found["assessment"]["images"][0]["findings"]}
        assert "reuse.seen_before" in codes and found["state"] != "approved"


def test_an_automatic_approval_can_be_appealed_by_the_merchant_to_a_person(
    tmp_path: Path,
) -> None:
    # A server of its own: the amount rules weigh a claim with its order's other claims, and a
    # photo on file from another order goes to a person, so this module's shared orders and
    # photos could not be approved automatically any more.
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a", "shop-b")
        merchant, stranger = server.key("merchant", "shop-a"), server.key("merchant", "shop-b")
        buyer_key = server.key("buyer", subject="buyer-2")
        order = order_for(
            server, merchant, listed_sku(server, merchant), "buyer-2", "o-1", amount=150.0,
            delivered_at="2026-11-03T08:00:00+08:00",
        )  # fmt: skip
        claim = _file_claim(server, buyer_key, order, "claim_genuine.jpg", amount=30.0)
        with server.client(buyer_key) as buyer:
            assert wait_analysed(buyer, claim["id"])["state"] == "approved"
        with server.client(stranger) as other_shop:
            r = other_shop.post(f"/v1/claims/{claim['id']}/appeal", json={"reason": "x"})
            assert r.status_code == 404
        with server.client(buyer_key) as buyer:  # an approval is not the buyer's to appeal
            r = buyer.post(f"/v1/claims/{claim['id']}/appeal", json={"reason": "spend it"})
            assert r.status_code == 409 and r.json()["error"]["code"] == "appeal.in_your_favour"
        with server.client(merchant) as shop:
            r = shop.post(
                f"/v1/claims/{claim['id']}/appeal",
                json={"reason": "the goods were returned unopened"},
            )
            assert r.status_code == 200, r.text
            assert r.json()["state"] == "under_review"


def test_a_reviewer_takes_a_claim_for_itself_but_not_for_another(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    reviewer_id = shop["reviewer"].split(".")[0]
    with server.client(shop["reviewer"]) as reviewer:
        r = reviewer.post(f"/v1/claims/{claim['id']}/assign", json={"reviewer": reviewer_id})
        assert r.status_code == 200 and r.json()["assigned_to"] == reviewer_id
        other = reviewer.post(
            f"/v1/claims/{claim['id']}/assign", json={"reviewer": "rlk_someoneelse"}
        )
        assert other.status_code == 403
    with server.client(shop["merchant"]) as merchant:
        assert (
            merchant.post(f"/v1/claims/{claim['id']}/assign", json={"reviewer": None}).status_code
            == 403
        )


def test_reference_features_are_computed_once_when_the_sku_is_saved_and_kept_on_disk(
    server: Server, shop: dict[str, str]
) -> None:
    from pathlib import Path

    from refundlens.media import media_from_bytes

    kept = list(Path(server.settings.data_dir, "features").rglob("*.npz"))
    listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
    sha = media_from_bytes(listing, "listing.jpg").sha256
    assert any(p.name.startswith(sha) for p in kept), kept


def _at_once(*calls: Callable[[], httpx.Response]) -> list[httpx.Response]:
    """Run the calls in threads released at the same moment; their responses in call order."""
    import threading

    barrier = threading.Barrier(len(calls))
    out: list[httpx.Response | None] = [None] * len(calls)

    def run(i: int, call: Callable[[], httpx.Response]) -> None:
        barrier.wait()
        out[i] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None for r in out), "a request raised instead of answering"
    return [r for r in out if r is not None]


def _post(server: Server, key: str, path: str, **request: Any) -> Callable[[], httpx.Response]:
    def call() -> httpx.Response:
        with server.client(key) as client:
            return client.post(path, **request)

    return call


def _claim_request(shop: dict[str, str], **headers: str) -> dict[str, Any]:
    return {
        "data": {"order_id": shop["order"], "type": "refund_only", "amount": "10"},
        "files": [("photos", ("c.jpg", _sample("claim_unrelated.jpg"), "image/jpeg"))],
        "headers": headers,
    }


def test_two_concurrent_creates_with_one_idempotency_key_make_one_claim(
    server: Server, shop: dict[str, str]
) -> None:
    for attempt in range(4):
        request = _claim_request(shop, **{"Idempotency-Key": f"race-{attempt}"})
        answers = _at_once(*[_post(server, shop["buyer"], "/v1/claims", **request)] * 2)
        assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
        assert answers[0].json()["id"] == answers[1].json()["id"]


def test_claims_filed_at_the_same_moment_are_all_created(
    server: Server, shop: dict[str, str]
) -> None:
    answers = _at_once(*[_post(server, shop["buyer"], "/v1/claims", **_claim_request(shop))] * 4)
    assert [r.status_code for r in answers] == [201] * 4, [r.text[:200] for r in answers]
    assert len({r.json()["id"] for r in answers}) == 4


def test_two_people_deciding_one_claim_at_once_make_one_decision(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    with server.client(shop["buyer"]) as buyer:
        assert wait_analysed(buyer, claim["id"])["state"] == "awaiting_merchant"
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            f"/v1/claims/{claim['id']}/evidence", data={"kind": "statement", "statement": "intact"}
        )
        assert r.json()["claim_state"] == "under_review"
    path = f"/v1/claims/{claim['id']}/decision"
    answers = _at_once(
        _post(server, shop["reviewer"], path, json={"decision": "approve", "reason": "seen"}),
        _post(server, server.admin, path, json={"decision": "reject", "reason": "seen"}),
    )
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 409], [r.text[:200] for r in answers]
    with server.client(server.admin) as admin:
        final = admin.get(f"/v1/claims/{claim['id']}").json()
        assert len(final["decisions"]) == 1
        assert admin.get("/v1/audit/verify").json()["ok"] is True


def test_an_order_and_a_sku_synced_twice_at_once_are_created_once(
    server: Server, shop: dict[str, str]
) -> None:
    sku = _post(
        server,
        shop["merchant"],
        "/v1/skus",
        data={"external_id": "vase-9", "title": "vase"},
        files=[("photos", ("vase.jpg", _sample("listing.jpg"), "image/jpeg"))],
    )
    order = _post(
        server,
        shop["merchant"],
        "/v1/orders",
        json={
            "external_id": "o-sync-9",
            "sku_id": shop["sku"],
            "buyer_id": "buyer-1",
            "amount": 99.0,
        },
    )
    answers = _at_once(sku, sku, order, order)
    for pair in (answers[:2], answers[2:]):
        assert [r.status_code for r in pair] == [201, 201], [r.text[:200] for r in pair]
        assert pair[0].json()["id"] == pair[1].json()["id"]


def test_an_animated_generator_output_is_refused_with_what_its_metadata_says_on_record(
    server: Server, shop: dict[str, str]
) -> None:
    from sqlalchemy import select

    from refundlens.detectors.provenance._examples import comfyui_webp
    from refundlens.store import Database
    from refundlens.store.sql.models import AuditEntry

    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "10"},
            files=[("photos", ("anim.webp", comfyui_webp(frames=3), "image/webp"))],
        )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "media.animated" and error["file"]["name"] == "anim.webp"
    # The buyer is not told what the checks read (a forger could probe them with any edit);
    # the platform filing for a buyer is.
    assert "facts" not in error and "ComfyUI" not in r.text
    with server.client(server.admin) as platform:
        r = platform.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "10"},
            files=[("photos", ("anim.webp", comfyui_webp(frames=3), "image/webp"))],
        )
    [said] = r.json()["error"]["facts"]["provenance"]
    assert said["code"] == "provenance.generator_metadata"
    assert said["facts"]["generator"] == "ComfyUI"
    database = Database(server.settings)
    with database.session() as session:
        entry, _ = session.execute(
            select(AuditEntry)
            .where(AuditEntry.action == "claim.file_refused")
            .order_by(AuditEntry.seq)
        ).scalars()
        assert entry.details["order"] == shop["order"]
        assert entry.details["code"] == "media.animated"
        assert entry.details["facts"]["provenance"][0]["facts"]["generator"] == "ComfyUI"
    database.dispose()


def test_a_photo_too_small_to_show_damage_is_refused_with_what_its_metadata_says(
    server: Server, shop: dict[str, str]
) -> None:
    # A 160 x 120 px file shows a person no damage and no check can judge it: every detector
    # abstained and the claim read "no pixel evidence found". Refused with its size; a
    # generator named in its metadata is still put on record.
    from refundlens.detectors.provenance._examples import comfyui_webp

    with server.client(server.admin) as platform:
        before = platform.get("/v1/claims", params={"limit": 200}).json()["items"]
        r = platform.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "10"},
            files=[("photos", ("small.webp", comfyui_webp(), "image/webp"))],
        )
        assert platform.get("/v1/claims", params={"limit": 200}).json()["items"] == before
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "media.too_small" and error["file"]["name"] == "small.webp"
    assert error["facts"]["width"] == 160 and error["facts"]["height"] == 120
    assert error["facts"]["claim_photo_min_side"] == server.settings.claim_photo_min_side
    [said] = error["facts"]["provenance"]
    assert said["facts"]["generator"] == "ComfyUI"


def test_a_buyer_cannot_learn_the_machines_action_by_filtering_its_claims_by_it(
    server: Server, shop: dict[str, str]
) -> None:
    # The action is never in a buyer's answer; a filter by it would tell the same thing by
    # which claims come back (escalate: the forgery was seen; approve: it passed).
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_forged.jpg")
    with server.client(shop["buyer"]) as buyer:
        wait_analysed(buyer, claim["id"])
    assert assessed(server, claim["id"])["action"] == "escalate"
    with server.client(shop["buyer"]) as buyer:
        for action in ("escalate", "approve"):
            r = buyer.get("/v1/claims", params={"action": action, "limit": 200})
            assert r.status_code == 403, r.text
            assert r.json()["error"]["code"] == "auth.forbidden"
        assert claim["id"] in [c["id"] for c in buyer.get("/v1/claims").json()["items"]]
    with server.client(shop["merchant"]) as merchant:
        listed = merchant.get("/v1/claims", params={"action": "escalate", "limit": 200}).json()
        assert claim["id"] in [c["id"] for c in listed["items"]]


def test_a_buyer_adds_only_its_own_kinds_of_evidence_never_the_shops(
    server: Server, shop: dict[str, str]
) -> None:
    # A packing video or a reference photo is the shop's evidence of what it sent; the evidence
    # report's summary lists them by kind. The buyer's page offers statement and other only.
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    with server.client(shop["buyer"]) as buyer:
        for kind in ("packing_video", "reference_photo"):
            r = buyer.post(
                f"/v1/claims/{claim['id']}/evidence",
                data={"kind": kind, "statement": "the shop's own video"},
                files=[("file", ("packing.mp4", b"\x00" * 64, "video/mp4"))],
            )
            assert r.status_code == 400 and r.json()["error"]["code"] == "evidence.bad_kind", r.text
        # A kind of no one's is the same code, with the kinds (a pattern answered 422 with a
        # regular expression: an integrator's walkthrough).
        r = buyer.post(f"/v1/claims/{claim['id']}/evidence", data={"kind": "foo", "statement": "x"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "evidence.bad_kind", r.text
        assert "statement" in r.json()["error"]["message"]
        r = buyer.post(
            f"/v1/claims/{claim['id']}/evidence", data={"kind": "other", "statement": "x"}
        )
        assert r.status_code == 201, r.text
    kinds = [e["kind"] for e in assessed(server, claim["id"])["evidence"]]
    assert kinds == ["other"], kinds


def test_each_party_adds_at_most_max_evidence_per_party_items_to_a_claim(
    server: Server, shop: dict[str, str]
) -> None:
    # Each item may carry a file of max_file_bytes: unbounded, one party fills the disk.
    most = server.settings.max_evidence_per_party
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    path = f"/v1/claims/{claim['id']}/evidence"
    with server.client(shop["buyer"]) as buyer:
        for n in range(most):
            r = buyer.post(path, data={"kind": "statement", "statement": f"note {n}"})
            assert r.status_code == 201, r.text
        r = buyer.post(
            path,
            data={"kind": "other"},
            files=[("file", ("more.bin", b"x" * 4096, "application/octet-stream"))],
        )
        assert r.status_code == 409 and r.json()["error"]["code"] == "evidence.too_many", r.text
    # The other party is counted apart: the merchant can still answer.
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(path, data={"kind": "statement", "statement": "sent intact"})
        assert r.status_code == 201, r.text
    evidence = assessed(server, claim["id"])["evidence"]
    assert [e["by"] for e in evidence].count("buyer") == most
    assert not [e for e in evidence if e["name"] == "more.bin"]


def test_evidence_sent_again_with_its_idempotency_key_is_added_once(
    server: Server, shop: dict[str, str]
) -> None:
    # A packing video sent again after a dropped connection was stored twice and counted twice
    # against the party's limit (an integrator's walkthrough).
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    path = f"/v1/claims/{claim['id']}/evidence"
    photo = ("shelf.jpg", _sample("listing.jpg"), "image/jpeg")
    sent = {
        "data": {"kind": "reference_photo", "statement": "as packed"},
        "files": [("file", photo)],
    }
    with server.client(shop["merchant"]) as merchant:
        first = merchant.post(path, **sent, headers={"Idempotency-Key": "ev-1"})
        again = merchant.post(path, **sent, headers={"Idempotency-Key": "ev-1"})
        assert (first.status_code, again.status_code) == (201, 200), again.text
        assert again.json() == first.json()
        # Another request under that key is refused, not answered with the first evidence.
        other = merchant.post(
            path,
            data={"kind": "statement", "statement": "other"},
            headers={"Idempotency-Key": "ev-1"},
        )
        assert (
            other.status_code == 422 and other.json()["error"]["code"] == "idempotency.key_reused"
        )
        # Keys are the holder's: the buyer's "ev-1" is its own.
        with server.client(shop["buyer"]) as buyer:
            r = buyer.post(
                path,
                data={"kind": "statement", "statement": "broken"},
                headers={"Idempotency-Key": "ev-1"},
            )
            assert r.status_code == 201, r.text
            # A key that filed a claim adds no evidence.
            filed = _file_claim(
                server,
                shop["buyer"],
                shop["order"],
                "claim_unrelated.jpg",
                headers={"Idempotency-Key": "filed-9"},
            )
            assert filed["id"]
            r = buyer.post(
                path,
                data={"kind": "statement", "statement": "x"},
                headers={"Idempotency-Key": "filed-9"},
            )
            assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency.key_reused"
    evidence = assessed(server, claim["id"])["evidence"]
    assert [e["kind"] for e in evidence].count("reference_photo") == 1, evidence
    assert len(evidence) == 2, evidence


def test_two_concurrent_evidence_posts_with_one_idempotency_key_add_one(
    server: Server, shop: dict[str, str]
) -> None:
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    path = f"/v1/claims/{claim['id']}/evidence"
    for attempt in range(3):
        request = {
            "data": {"kind": "statement", "statement": f"said once {attempt}"},
            "headers": {"Idempotency-Key": f"ev-race-{attempt}"},
        }
        answers = _at_once(*[_post(server, shop["merchant"], path, **request)] * 2)
        assert sorted(r.status_code for r in answers) == [200, 201], [r.text for r in answers]
        assert answers[0].json()["id"] == answers[1].json()["id"]
    statements = [e["statement"] for e in assessed(server, claim["id"])["evidence"]]
    assert sorted(statements) == [f"said once {n}" for n in range(3)], statements


def test_a_file_that_is_not_what_its_evidence_kind_says_is_refused_and_not_stored(
    server: Server, shop: dict[str, str]
) -> None:
    # The evidence report lists files by kind: junk filed as a packing video would read as the
    # shop's video, and a bomb filed as a reference photo would be kept for a person to open.
    from .test_media import _png_header_only

    bomb = _png_header_only(50000, 50000)
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    with server.client(shop["merchant"]) as merchant:
        for kind, file, code in (
            ("packing_video", ("packing.mp4", bytes(range(256)) * 8), "media.video_unreadable"),
            ("reference_photo", ("ref.png", bomb), "media.decompression_bomb"),
            ("reference_photo", ("ref.jpg", b"not a photo"), "media.not_an_image"),
        ):
            r = merchant.post(
                f"/v1/claims/{claim['id']}/evidence",
                data={"kind": kind},
                files=[("file", (*file, "application/octet-stream"))],
            )
            assert r.status_code in (400, 413, 422), r.text
            assert r.json()["error"]["code"] == code, r.text
        for kind in ("packing_video", "reference_photo"):  # a statement under a file's kind
            r = merchant.post(
                f"/v1/claims/{claim['id']}/evidence", data={"kind": kind, "statement": "x"}
            )
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "evidence.file_required", r.text
        r = merchant.post(
            f"/v1/claims/{claim['id']}/evidence",
            data={"kind": "reference_photo"},
            files=[("file", ("ref.jpg", _sample("listing.jpg"), "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
    kinds = [e["kind"] for e in assessed(server, claim["id"])["evidence"]]
    assert kinds == ["reference_photo"], kinds


def test_what_a_new_user_tripped_over_gets_its_documented_code(
    server: Server, shop: dict[str, str]
) -> None:
    # A SKU's bad photo says which one; a SKU with none, a decision or an appeal with no reason
    # and an order delivered before it shipped each get the code docs/errors.md gives them.
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            "/v1/skus",
            data={"external_id": "two-photos"},
            files=[
                ("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg")),
                ("photos", ("notes.jpg", b"just text", "image/jpeg")),
            ],
        )
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "media.not_an_image"
        assert error["file"] == {"field": "photos", "index": 1, "name": "notes.jpg"}, error
        r = merchant.post("/v1/skus", data={"external_id": "no-photos"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "sku.no_reference"), r.text
        r = merchant.post(
            "/v1/orders",
            json={
                "external_id": "late",
                "sku_id": shop["sku"],
                "buyer_id": "buyer-1",
                "amount": 10,
                "shipped_at": "2026-12-03T08:00:00+08:00",
                "delivered_at": "2026-11-01T08:00:00+08:00",
            },
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "order.bad_dates"), r.text
    claim = _file_claim(server, shop["buyer"], shop["order"], "claim_unrelated.jpg")
    with server.client(shop["reviewer"]) as reviewer:
        r = reviewer.post(f"/v1/claims/{claim['id']}/decision", json={"decision": "approve"})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "decision.reason_required")


def test_the_buyers_box_around_the_damage_is_kept_with_its_photo_and_asked_of_the_other_view(
    server: Server, shop: dict[str, str]
) -> None:
    # Two photos of one crack, the buyer's box around it on the first: the analysis compares
    # the second view there, and says so (the marked damage itself was compared).
    from refundlens import synth
    from refundlens.detectors._consistency_examples import crack, damage_box, new_exposure, scene

    base, obj = scene(31)
    damaged = crack(base, obj, 31)
    box = [round(float(v), 4) for v in damage_box(base, damaged)]
    photos = [
        ("front.jpg", synth.jpeg_bytes(damaged, 88)),
        ("side.jpg", synth.jpeg_bytes(new_exposure(damaged, 31, degrees=30.0), 84)),
    ]
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={
                "order_id": shop["order"],
                "type": "refund_only",
                "amount": "30",
                "damage_boxes": json.dumps([box, None]),
            },
            files=[("photos", (n, d, "image/jpeg")) for n, d in photos],
        )
        assert r.status_code == 201, r.text
        claim = r.json()
    assert [p["damage_box"] for p in claim["photos"]] == [box, None]
    analysed = assessed(server, claim["id"])
    by_image = [
        {f["code"]: f for f in image["findings"] if f["code"].startswith("consistency.")}
        for image in analysed["assessment"]["images"]
    ]
    for found in by_image:  # the marked photo, and the other one seen against it
        assert list(found) == ["consistency.marked_damage_confirmed"], found
        facts = found["consistency.marked_damage_confirmed"]["facts"]
        assert facts["buyer_marked_damage_on"] == "front.jpg"
        assert facts["buyer_marked_damage_box"] == box
    submitted = [d for a, d in audit_entries(server, claim["id"]) if a == "claim.submitted"]
    assert submitted[0]["damage_boxes"] == [box, None]


def test_a_box_on_a_spot_the_skus_photo_shows_intact_confirms_no_damage(
    server: Server, shop: dict[str, str]
) -> None:
    # Two photos of the undamaged item, a box drawn on a spot both show: where the SKU's own
    # photo of the intact item shows that spot the same, the service says so, with the numbers.
    from refundlens import synth
    from refundlens.detectors._consistency_examples import new_exposure, scene

    base, _ = scene(31)
    reference = synth.jpeg_bytes(new_exposure(base, 531, degrees=-20.0), 90)
    with server.client(shop["merchant"]) as merchant:
        sku = merchant.post(
            "/v1/skus",
            data={"external_id": "boxed-1", "title": "box"},
            files=[("photos", ("shop.jpg", reference, "image/jpeg"))],
        )
        assert sku.status_code == 201, sku.text
        order = merchant.post(
            "/v1/orders",
            json={
                "external_id": "o-boxed-1",
                "sku_id": sku.json()["id"],
                "buyer_id": "buyer-1",
                "amount": 30.0,
                "shipped_at": "2026-11-01T08:00:00+08:00",
                "delivered_at": "2026-11-03T08:00:00+08:00",
            },
        )
        assert order.status_code == 201, order.text
    photos = [
        ("front.jpg", synth.jpeg_bytes(base, 88)),
        ("side.jpg", synth.jpeg_bytes(new_exposure(base, 31, degrees=30.0), 84)),
    ]
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={
                "order_id": order.json()["id"],
                "type": "refund_only",
                "amount": "30",
                "damage_boxes": json.dumps([[0.3, 0.3, 0.42, 0.42], None]),
            },
            files=[("photos", (n, d, "image/jpeg")) for n, d in photos],
        )
        assert r.status_code == 201, r.text
    analysed = assessed(server, r.json()["id"])
    for image in analysed["assessment"]["images"]:
        found = {f["code"]: f for f in image["findings"] if f["code"].startswith("consistency.")}
        assert list(found) == ["consistency.mark_matches_intact_reference"], found
        facts = found["consistency.mark_matches_intact_reference"]["facts"]
        assert facts["marked_damage_compared_with_reference"] == "shop.jpg"
        assert facts["marked_damage_changed_vs_reference_percent"] < 0.25
