"""Times in the claims service: the same instants on SQLite and PostgreSQL, in the zone they
were sent in, and every fact a reason is worded from actually passed to the analysis."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from importlib import resources

import pytest
from PIL import Image

from refundlens.store import Database
from refundlens.store.sql.models import Order

from .service_support import (
    Server,
    add_tenants,
    backend,
    listed_sku,
    order_for,
    running_server,
    wait_analysed,
)


def _photo_taken(when: str, offset: str) -> bytes:
    """The genuine sample photo with a camera capture time (EXIF DateTimeOriginal + offset)."""
    sample = resources.files("refundlens").joinpath("samples/claim_genuine.jpg").read_bytes()
    image = Image.open(io.BytesIO(sample))
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 13"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x9011] = when, offset
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"times-{request.param}")
    with backend(request.param) as url, running_server(data_dir, url) as srv:
        yield srv


def test_an_orders_times_keep_their_instant_and_their_zone_and_the_claim_time_is_passed(
    server: Server,
) -> None:
    add_tenants(server, "shop-cn")
    merchant_key = server.key("merchant", "shop-cn")
    buyer_key = server.key("buyer", subject="buyer-t")
    order = order_for(
        server,
        merchant_key,
        listed_sku(server, merchant_key),
        "buyer-t",
        "o-t",
        amount=100,
        shipped_at="2026-11-01T08:00:00+08:00",
        delivered_at="2026-11-03T08:00:00+08:00",
    )
    database = Database(server.settings)
    try:
        with database.session() as session:
            stored = session.get(Order, order)
            assert stored is not None
            # The instant, whatever the database: 08:00 in Beijing is 00:00 UTC.
            assert stored.shipped_at == dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.UTC)
            assert stored.shipped_at.tzinfo is not None
    finally:
        database.dispose()
    with server.client(buyer_key) as buyer:
        claim = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "50"},
            # Taken the day after delivery, Beijing time: consistent with the order.
            files=[
                ("photos", ("c.jpg", _photo_taken("2026:11:04 10:00:00", "+08:00"), "image/jpeg"))
            ],
        ).json()
        body = wait_analysed(buyer, claim["id"])
    with server.client(server.admin) as admin:
        body = admin.get(f"/v1/claims/{claim['id']}").json()
    assert body["created_at"].endswith("+00:00")
    findings = [f for image in body["assessment"]["images"] for f in image["findings"]]
    timeline = next(f for f in findings if f["code"] == "capture.consistent_with_order")
    # The times in the offset the merchant sent, and the claim time the analysis was given.
    assert timeline["facts"]["shipped_at"] == "2026-11-01T08:00+08:00"
    assert timeline["facts"]["delivered_at"] == "2026-11-03T08:00+08:00"
    assert timeline["facts"]["claimed_at"] is not None
    assert timeline["facts"]["claimed_at"].endswith("+08:00")
    assert "before the claim" in timeline["reason"]["en"]


def test_an_order_time_of_the_year_one_is_refused_in_words_not_stored_to_break_its_pages(
    server: Server,
) -> None:
    # A security review: the year 1 at +08:00 answered 500 as it was saved; the year 1 at
    # -12:00 was saved, and the order's page and its claims' pages answered 500 from then on.
    add_tenants(server, "shop-y1")
    merchant_key = server.key("merchant", "shop-y1")
    sku = listed_sku(server, merchant_key)
    with server.client(merchant_key) as merchant:
        for field, moment in (
            ("shipped_at", "0001-01-01T05:00:00+08:00"),
            ("delivered_at", "0001-01-02T00:00:00-12:00"),
            ("shipped_at", "1999-12-31T23:59:59Z"),
        ):
            r = merchant.post(
                "/v1/orders",
                json={
                    "external_id": f"o-y1-{field}-{moment[:4]}",
                    "sku_id": sku,
                    "buyer_id": "buyer-y1",
                    "amount": 10,
                    field: moment,
                },
            )
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "order.time_too_early", r.text
    # One stored before the rule still opens (in UTC, where its zone cannot hold it).
    order = order_for(
        server, merchant_key, sku, "buyer-y1", "o-y1-stored", amount=10,
        delivered_at="2026-11-03T08:00:00-12:00",
    )  # fmt: skip
    database = Database(server.settings)
    try:
        with database.session() as session:
            stored = session.get(Order, order)
            assert stored is not None and stored.utc_offset_minutes == -720
            stored.shipped_at = dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    finally:
        database.dispose()
    with server.client(merchant_key) as merchant:
        r = merchant.get(f"/v1/orders/{order}")
        assert r.status_code == 200, r.text
        assert r.json()["shipped_at"].startswith("0001-01-01T00:00:00")
    # Its claims are analysed (the worker converted the time too, and every attempt failed:
    # a review), and their staff page opens with the time shown in UTC.
    from .service_support import web_login

    with server.client(server.key("buyer", subject="buyer-y1")) as buyer:
        claim = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "5"},
            files=[
                ("photos", ("c.jpg", _photo_taken("2026:11:04 10:00:00", "-12:00"), "image/jpeg"))
            ],
        ).json()
        wait_analysed(buyer, claim["id"])
    with server.client(server.admin) as admin:
        body = admin.get(f"/v1/claims/{claim['id']}").json()
    assert body["assessment"] is not None, body["routing_reason"]
    with web_login(server, merchant_key) as merchant:
        page = merchant.get(f"/web/claims/{claim['id']}")
        assert page.status_code == 200 and "0001-01-01T00:00+00:00" in page.text
