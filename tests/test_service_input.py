"""Hostile values over real HTTP, on SQLite and PostgreSQL: every one gets a coded 4xx, never a
500, bodies stop at their limit, and every text field has a maximum length (issue 18, 9-11)."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from markupsafe import Markup

from refundlens.config import Settings
from refundlens.service import create_app, fields

from .service_support import (
    Server,
    assessed,
    postgres_database,
    running_server,
    wait_analysed,
)

MiB = 1 << 20


def _stored(server: Server) -> list[str]:
    """The names of every blob the server keeps: a refused request must add none."""
    return sorted(
        p.name for p in (Path(server.settings.data_dir) / "blobs").rglob("*") if p.is_file()
    )


def _genuine_photo() -> bytes:
    return resources.files("refundlens").joinpath("samples/claim_genuine.jpg").read_bytes()


def _new_order(server: Server, shop: dict[str, str], external_id: str, amount: float) -> str:
    """A new order of the shop's SKU for buyer-1; its id."""
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            "/v1/orders",
            json={
                "external_id": external_id,
                "sku_id": shop["sku"],
                "buyer_id": "buyer-1",
                "amount": amount,
            },
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _decide(
    server: Server, shop: dict[str, str], claim_id: str, decision: dict[str, object]
) -> None:
    """The merchant answers (the claim goes to a person), then the reviewer decides."""
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            f"/v1/claims/{claim_id}/evidence", data={"kind": "statement", "statement": "ok"}
        )
        assert r.json()["claim_state"] == "under_review", r.text
    with server.client(shop["reviewer"]) as reviewer:
        r = reviewer.post(f"/v1/claims/{claim_id}/decision", json=decision)
        assert r.status_code == 200, r.text


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"input-{request.param}")
    # Small limits keep the over-the-limit bodies small: 1 MiB a file, so 10 MiB a multipart
    # request; 64 KiB for anything else.
    limits: dict[str, Any] = {"max_file_bytes": MiB, "max_body_bytes": 64 * 1024}
    if request.param == "sqlite":
        with running_server(data_dir, **limits) as srv:
            yield srv
    else:
        with postgres_database() as url, running_server(data_dir, url, **limits) as srv:
            yield srv


@pytest.fixture(scope="module")
def shop(server: Server) -> dict[str, str]:
    """A merchant with a SKU and an order, its buyer and reviewer, and a claim under review."""
    with server.client(server.admin) as admin:
        r = admin.post("/v1/tenants", json={"id": "shop-a", "kind": "merchant", "name": "A"})
        assert r.status_code == 201, r.text
    ids = {
        "admin": server.admin,
        "merchant": server.key("merchant", "shop-a"),
        "buyer": server.key("buyer", subject="buyer-1"),
        "reviewer": server.key("reviewer", assign=["shop-a"]),
    }
    listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
    with server.client(ids["merchant"]) as merchant:
        r = merchant.post(
            "/v1/skus",
            data={"external_id": "cup-1"},
            files=[("photos", ("listing.jpg", listing, "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        ids["sku"] = r.json()["id"]
        r = merchant.post(
            "/v1/orders",
            json={"external_id": "o-1", "sku_id": ids["sku"], "buyer_id": "buyer-1", "amount": 150},
        )
        assert r.status_code == 201, r.text
        ids["order"] = r.json()["id"]
    with server.client(ids["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims", data={"order_id": ids["order"], "type": "refund_only", "amount": "20"}
        )
        assert r.status_code == 201, r.text
        ids["claim"] = r.json()["id"]
        assert wait_analysed(buyer, ids["claim"])["state"] == "awaiting_merchant"
    with server.client(ids["merchant"]) as merchant:
        r = merchant.post(
            f"/v1/claims/{ids['claim']}/evidence", data={"kind": "statement", "statement": "ok"}
        )
        assert r.json()["claim_state"] == "under_review", r.text
    return ids


SURROGATE = "\\ud800"  # as a JSON escape: json.loads makes a lone surrogate of it
# name: (role, method, path, request); {placeholders} name the shop's ids. Each of these
# answered 500 before (on PostgreSQL at least) or stored what it should have refused.
ODD_VALUES: dict[str, tuple[str | None, str, str, dict[str, Any]]] = {
    "tenant name, lone surrogate": (
        "admin",
        "POST",
        "/v1/tenants",
        {"json_text": '{"id": "shop-x", "kind": "merchant", "name": "' + SURROGATE + '"}'},
    ),
    "order external_id, lone surrogate": (
        "merchant",
        "POST",
        "/v1/orders",
        {
            "json_text": '{"external_id": "'
            + SURROGATE
            + '", "sku_id": "{sku}", "buyer_id": "b", "amount": 1}'
        },
    ),
    "decision reason, lone surrogate": (
        "reviewer",
        "POST",
        "/v1/claims/{claim}/decision",
        {"json_text": '{"decision": "reject", "reason": "' + SURROGATE + '"}'},
    ),
    "assign reviewer, lone surrogate": (
        "admin",
        "POST",
        "/v1/claims/{claim}/assign",
        {"json_text": '{"reviewer": "' + SURROGATE + '"}'},
    ),
    "order amount NaN": (
        "merchant",
        "POST",
        "/v1/orders",
        {"json_text": '{"external_id": "o-n", "sku_id": "{sku}", "buyer_id": "b", "amount": NaN}'},
    ),
    "claim amount=nan": (
        "buyer",
        "POST",
        "/v1/claims",
        {"data": {"order_id": "{order}", "type": "refund_only", "amount": "nan"}},
    ),
    # 1e308 is finite, yet summed in cents with the order's other claims it overflowed into a
    # 500 (found by a walkthrough): amounts stop at fields.MAX_AMOUNT.
    "order amount 1e308": (
        "merchant",
        "POST",
        "/v1/orders",
        {
            "json_text": '{"external_id": "o-h", "sku_id": "{sku}", "buyer_id": "b", "amount": 1e308}'
        },
    ),
    "claim amount=1e308": (
        "buyer",
        "POST",
        "/v1/claims",
        {"data": {"order_id": "{order}", "type": "refund_only", "amount": "1e308"}},
    ),
    # A misspelt filter answered an empty page, read as "no such claims" (a walkthrough).
    "claims of a state that does not exist": (
        "admin",
        "GET",
        "/v1/claims",
        {"params": {"state": "bogus"}},
    ),
    "claims of an action that does not exist": (
        "admin",
        "GET",
        "/v1/claims",
        {"params": {"action": "reject"}},
    ),
    "cursor of a superscript two": ("admin", "GET", "/v1/claims", {"params": {"cursor": "²"}}),
    "cursor over its length": (
        "admin",
        "GET",
        "/v1/claims",
        {"params": {"cursor": "clm_" + "0" * 40}},
    ),
    "cursor of a number (the claim's platform-wide seq it once was)": (
        "admin",
        "GET",
        "/v1/claims",
        {"params": {"cursor": "9999999999999999999"}},
    ),
    "cursor of no claim": (
        "admin",
        "GET",
        "/v1/claims",
        {"params": {"cursor": "clm_" + "0" * 20}},
    ),
    "buyer detail's name, lone surrogate": (
        "merchant",
        "POST",
        "/v1/orders",
        {
            "json_text": '{"external_id": "o-s", "sku_id": "{sku}", "buyer_id": "b", "amount": 1, '
            '"buyer": {"' + SURROGATE + '": "x"}}'
        },
    ),
    "tenant name, NUL": (
        "admin",
        "POST",
        "/v1/tenants",
        {"json": {"id": "shop-y", "kind": "merchant", "name": "a\x00b"}},
    ),
    "order external_id, NUL": (
        "merchant",
        "POST",
        "/v1/orders",
        {"json": {"external_id": "o\x00", "sku_id": "{sku}", "buyer_id": "b", "amount": 1}},
    ),
    "claim reason, NUL": (
        "buyer",
        "POST",
        "/v1/claims",
        {"data": {"order_id": "{order}", "type": "refund_only", "amount": "1", "reason": "\x00"}},
    ),
    "evidence statement, NUL": (
        "merchant",
        "POST",
        "/v1/claims/{claim}/evidence",
        {"data": {"kind": "statement", "statement": "a\x00"}},
    ),
    "list filter, NUL": ("admin", "GET", "/v1/claims", {"params": {"state": "a\x00"}}),
    "claim id in the path, NUL": ("admin", "GET", "/v1/claims/clm%00x", {}),
    "web login key, NUL (no key needed)": (
        None,
        "POST",
        "/web/login",
        {"data": {"key": "a\x00.b"}},
    ),
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, ident in ids.items():
            value = value.replace("{" + name + "}", ident)
        return value
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _send(server: Server, shop: dict[str, str], case: tuple[Any, ...]) -> httpx.Response:
    role, method, path, request = case
    request = _fill(request, shop)
    if "json_text" in request:
        request = {
            "content": request.pop("json_text").encode(),
            "headers": {"Content-Type": "application/json"},
        }
    with server.client(shop[role] if role else None) as client:
        return client.request(method, _fill(path, shop), **request)


@pytest.mark.parametrize("name", sorted(ODD_VALUES))
def test_an_odd_value_gets_a_coded_4xx_and_is_not_stored(
    server: Server, shop: dict[str, str], name: str
) -> None:
    r = _send(server, shop, ODD_VALUES[name])
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if name.startswith("web login"):
        return  # the login page answers in HTML
    error = r.json()["error"]
    assert set(error) == {"code", "message"}
    expected = (
        "request.invalid"
        if name.lower().endswith("nan")
        else "request.bad_cursor"
        if name.startswith("cursor") and name != "cursor over its length"
        else "request.bad_field"  # a NUL, a lone surrogate, a cursor over its 24 characters
    )
    assert error["code"] == expected, error


# The web decision form's amount (a word, nan, inf) is tested in tests/test_web_security.py
# (test_odd_values_in_web_forms_get_a_coded_answer_never_a_500), as a logged-in reviewer.


def test_a_422_has_the_documented_error_shape_and_names_the_field(
    server: Server, shop: dict[str, str]
) -> None:
    with server.client(server.admin) as admin:
        r = admin.post("/v1/tenants", json={"kind": "merchant", "name": "no id"})
    assert r.status_code == 422
    assert set(r.json()) == {"error"}
    assert r.json()["error"]["code"] == "request.invalid"
    assert "body.id" in r.json()["error"]["message"]
    # JSON to a route that takes files, and JSON that does not parse, are said in words (an
    # integrator read "body.order_id: Field required" for a field it had sent, and
    # "body.1: JSON decode error").
    with server.client(shop["buyer"]) as buyer:
        as_json = buyer.post("/v1/claims", json={"order_id": shop["order"], "type": "repair"})
    assert as_json.status_code == 422
    assert "multipart/form-data" in as_json.json()["error"]["message"]
    with server.client(server.admin) as admin:
        broken = admin.post(
            "/v1/tenants", content=b'{"id": ', headers={"Content-Type": "application/json"}
        )
    assert broken.status_code == 422
    assert broken.json()["error"]["message"].startswith("the body is not valid JSON")


@pytest.mark.parametrize(
    ("method", "path", "request_", "code"),
    [
        (
            "POST",
            "/v1/claims",
            {"content": b"--x\r\nnot a part", "headers": {"Content-Type": "multipart/form-data"}},
            "request.malformed",
        ),
        ("GET", "/v1/no-such-thing", {}, "route.not_found"),
        ("DELETE", "/v1/claims", {}, "route.bad_method"),
    ],
)
def test_what_the_framework_refuses_has_the_documented_error_shape(
    server: Server, shop: dict[str, str], method: str, path: str, request_: Any, code: str
) -> None:
    # Found by fuzz/api.py: a body that did not parse answered {"detail": ...}.
    with server.client(shop["buyer"]) as buyer:
        r = buyer.request(method, path, **request_)
    assert 400 <= r.status_code < 500
    assert r.json() == {"error": {"code": code, "message": r.json()["error"]["message"]}}


def test_a_text_over_its_maximum_is_refused_and_one_at_it_is_stored(
    server: Server, shop: dict[str, str]
) -> None:
    def order(external_id: str) -> httpx.Response:
        with server.client(shop["merchant"]) as merchant:
            return merchant.post(
                "/v1/orders",
                json={
                    "external_id": external_id,
                    "sku_id": shop["sku"],
                    "buyer_id": "b",
                    "amount": 1,
                },
            )

    over = order("x" * (fields.MAX_EXTERNAL_ID + 1))
    assert over.status_code == 422
    assert over.json()["error"]["code"] == "request.bad_field"
    assert "external_id" in over.json()["error"]["message"]
    assert order("x" * fields.MAX_EXTERNAL_ID).status_code == 201
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            f"/v1/claims/{shop['claim']}/evidence",
            data={"kind": "statement", "statement": "s" * (fields.MAX_STATEMENT + 1)},
        )
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.bad_field"


def _strings_without_a_maximum(node: Any, where: str) -> Iterator[str]:
    if isinstance(node, dict):
        unbounded = node.get("type") == "string" and not {"maxLength", "enum"} & set(node)
        # files (bounded by max_file_bytes) and times (a fixed format) aside
        if unbounded and "contentMediaType" not in node and node.get("format") != "date-time":
            yield where
        for key, value in node.items():
            yield from _strings_without_a_maximum(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings_without_a_maximum(value, f"{where}/{i}")


def test_every_string_the_api_accepts_has_a_maximum_length(tmp_path: Any) -> None:
    document = create_app(Settings(data_dir=str(tmp_path))).openapi()
    # Header values are bounded by the HTTP server (h11: 64 KiB of headers in all).
    accepted = {
        path: {
            method: {
                "parameters": [p for p in op.get("parameters", []) if p["in"] != "header"],
                "requestBody": op.get("requestBody", {}),
            }
            for method, op in ops.items()
        }
        for path, ops in document["paths"].items()
    }
    schemas = {
        name: schema
        for name, schema in document["components"]["schemas"].items()
        if name.endswith("In") or name.startswith("Body_")
    }
    missing = [
        *_strings_without_a_maximum(accepted, "paths"),
        *_strings_without_a_maximum(schemas, "schemas"),
    ]
    assert not missing, missing


def _raw_request(server: Server, head: str, chunks: Iterator[bytes]) -> tuple[str, int, float]:
    """Send ``head``, then ``chunks`` until the server answers or stops reading. Returns the
    answer (status line, headers, body), the body bytes sent and the seconds it all took."""
    host, port = server.url.removeprefix("http://").split(":")
    started = time.monotonic()
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode())
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed)
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
        answer = b""
        try:
            while more := sock.recv(65536):
                answer += more
                if answer.endswith(b"}"):
                    break
        except OSError:
            pass
    return answer.decode("latin-1"), sent, time.monotonic() - started


def test_a_chunked_upload_is_refused_when_it_passes_the_limit_not_when_it_ends(
    server: Server, shop: dict[str, str]
) -> None:
    limit = (server.settings.max_photos_per_claim + 1) * server.settings.max_file_bytes
    boundary = "b0undary"
    head = (
        "POST /v1/claims HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {shop['buyer']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )

    def body() -> Iterator[bytes]:
        opening = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        yield b"%x\r\n%s\r\n" % (len(opening), opening)
        piece = b"\xff" * (256 * 1024)
        for _ in range(100 * limit // len(piece)):  # a hundred times the limit: "endless"
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    answer, sent, seconds = _raw_request(server, head, body())
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert '"request.too_large"' in answer
    # It stopped at the limit (plus what the sockets' buffers held), long before the end.
    assert sent < limit + 16 * MiB, sent
    assert seconds < 30


@pytest.mark.parametrize(
    "credential",
    ["", "Authorization: Bearer rlk_0123abcd.forged-secret", "Cookie: rl_session=forged"],
    ids=["anonymous", "forged-key", "forged-session"],
)
def test_an_upload_without_a_live_credential_is_cut_off_at_the_small_limit(
    server: Server, shop: dict[str, str], credential: str
) -> None:
    """No key or session, or one that names none that lives: the form is never parsed past
    ``max_body_bytes`` (naming a credential is not enough to open the upload limit)."""
    boundary = "b0undary"
    head = (
        "POST /v1/claims HTTP/1.1\r\nHost: x\r\n"
        + (f"{credential}\r\n" if credential else "")
        + f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )

    def body() -> Iterator[bytes]:
        # A well-formed form, so that the parser keeps reading the file until the limit stops it.
        opening = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        yield b"%x\r\n%s\r\n" % (len(opening), opening)
        piece = b"\xff" * (256 * 1024)
        for _ in range(160):  # 40 MiB, far under the upload limit
            yield b"%x\r\n%s\r\n" % (len(piece), piece)

    answer, sent, _ = _raw_request(server, head, body())
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    # Cut off at the small limit, not at the upload limit a live key opens.
    assert f"the limit is {server.settings.max_body_bytes} bytes" in answer, answer[-300:]
    assert sent < server.settings.max_body_bytes + 16 * MiB, sent


def test_a_declared_length_over_the_limit_is_refused_before_any_byte_is_read(
    server: Server, shop: dict[str, str]
) -> None:
    head = (
        "POST /v1/claims HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        "Content-Length: 1200000000\r\n\r\n"
    )
    answer, _, _ = _raw_request(server, head, iter([b"x" * 65536] * 4))
    assert answer.startswith("HTTP/1.1 413") and '"request.too_large"' in answer, answer[:200]


def test_a_json_body_over_max_body_bytes_is_refused_and_nothing_is_stored(
    server: Server, shop: dict[str, str]
) -> None:
    big = {"external_id": "o-big", "sku_id": shop["sku"], "buyer_id": "b", "amount": 1}
    big["buyer"] = {"note": "x" * server.settings.max_body_bytes}
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(  # chunked: an iterator has no length to declare
            "/v1/orders",
            content=iter([json.dumps(big).encode()]),
            headers={"Content-Type": "application/json"},
        )
    assert r.status_code == 413 and r.json()["error"]["code"] == "request.too_large"
    # The limit's answer carries the security headers as every other does (a security review).
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_a_file_over_max_file_bytes_in_a_request_under_the_limit_is_refused_by_its_own_code(
    server: Server, shop: dict[str, str]
) -> None:
    # read_upload takes the spooled file's size first; the request itself is under its limit.
    big = b"\xff\xd8" + b"\0" * server.settings.max_file_bytes
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "1"},
            files=[("photos", ("big.jpg", big, "image/jpeg"))],
        )
    assert r.status_code == 413 and r.json()["error"]["code"] == "media.too_large", r.text
    # Named as every other refusal of one file of an upload is (docs/errors.md).
    assert r.json()["error"]["message"].startswith("photos[0] (big.jpg): ")
    assert r.json()["error"]["file"] == {"field": "photos", "index": 0, "name": "big.jpg"}


def test_a_file_name_is_cut_and_cleaned_not_refused() -> None:
    name = fields.file_name("a\x00b\ud800" + "x" * 1000 + ".jpg")
    assert name.startswith("a\ufffdb\ufffd") and len(name) == fields.MAX_FILE_NAME
    name.encode("utf-8")  # storable anywhere
    assert fields.file_name(None) == fields.file_name("") == "upload"
    # A name that would reorder or hide text where a reviewer reads it is shown as it is stored.
    tricks = "\u202e\u2066\u2069\u200b\n\u061c\u2028\u2029\u2060\u00ad\u180e\ufff9\U000e0041"
    for trick in tricks:
        kept = fields.file_name(f"invoice{trick}gpj.exe")
        assert kept == "invoice\ufffdgpj.exe", repr(trick)
    assert fields.file_name("照片 1.jpg") == "照片 1.jpg"  # ordinary names are left alone
    assert fields.file_name("café ølé.jpg") == "café ølé.jpg"
    from refundlens.service.web.common import file_name as page_file_name

    assert page_file_name("invoice\u202egpj.exe") == fields.file_name("invoice\u202egpj.exe")


def test_no_text_a_page_prints_reorders_what_follows_it() -> None:
    """Reasons and statements are kept as sent, and names stored before uploads were cleaned
    still hold bidi controls: the pages and the report show each such control as U+FFFD, so an
    open override cannot turn the hash printed after it backwards."""
    from refundlens.rendering.i18n import environment

    page = environment("en").from_string("<p>{{ reason }} sha256 {{ sha }}</p>{{ markup }}")
    shown = page.render(reason="broken \u202egpj.exe", sha="ab12", markup=Markup("<b>\u200e</b>"))
    assert shown == "<p>broken \ufffdgpj.exe sha256 ab12</p><b>\u200e</b>"
    assert environment("zh_CN").from_string("{{ n }}").render(n=3) == "3"
    # ... and inside a translated sentence, whose result is Markup (the reason on page one).
    for lang in ("en", "zh_CN"):
        said = environment(lang).from_string('{{ _("Pictures of %(photo)s", photo=name) }}')
        shown = said.render(name="invoice\u202egpj.exe<b>")
        assert "\u202e" not in shown and "invoice\ufffdgpj.exe&lt;b&gt;" in shown


@pytest.mark.parametrize("text", ["abc", "nan", "inf", "-Infinity", "1e400", "1e308", "-2e12"])
def test_a_form_amount_that_is_no_finite_number_is_a_field_error(text: str) -> None:
    with pytest.raises(fields.FieldError) as refused:
        fields.parse_amount("amount", text)
    assert refused.value.code == "request.bad_field"
    assert fields.parse_amount("amount", " ") is None
    assert fields.parse_amount("amount", "12.5") == 12.5
    assert fields.parse_amount("amount", "1e12") == fields.MAX_AMOUNT


def test_a_second_open_claim_on_an_order_is_refused_before_its_files_are_stored(
    server: Server, shop: dict[str, str]
) -> None:
    # Each claim starts a full analysis: one order takes max_open_claims_per_order (1) open
    # claims, and another is refused before its photos are decoded or stored.
    assert server.settings.max_open_claims_per_order == 1
    order = _new_order(server, shop, "o-open", 50)
    form = {"order_id": order, "type": "refund_only", "amount": "10"}
    with server.client(shop["buyer"]) as buyer:
        first = buyer.post("/v1/claims", data=form)
        assert first.status_code == 201, first.text
        before = _stored(server)
        claims = [c["id"] for c in buyer.get("/v1/claims").json()["items"]]
        listing = _genuine_photo()
        fresh = listing + b"\x00second"  # bytes no blob has yet
        again = buyer.post(
            "/v1/claims", data=form, files=[("photos", ("c.jpg", fresh, "image/jpeg"))]
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "claim.already_open"
        assert _stored(server) == before
        assert [c["id"] for c in buyer.get("/v1/claims").json()["items"]] == claims
        wait_analysed(buyer, first.json()["id"])
    # Once the open claim is decided, a rejection is appealed, not filed again with another
    # photo (a forger did that until a claim was approved automatically); a claim of another
    # type on the order is taken, and goes to a person.
    _decide(server, shop, first.json()["id"], {"decision": "reject", "reason": "no damage shown"})
    assert not server.settings.refile_after_rejection
    with server.client(shop["buyer"]) as buyer:
        before = _stored(server)
        again = buyer.post(
            "/v1/claims", data=form, files=[("photos", ("c.jpg", fresh, "image/jpeg"))]
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "claim.rejected_on_order"
        assert first.json()["id"] in again.json()["error"]["message"]
        assert _stored(server) == before
        other = buyer.post(
            "/v1/claims",
            data=form | {"type": "return_and_refund"},
            files=[("photos", ("c.jpg", _genuine_photo(), "image/jpeg"))],
        )
        assert other.status_code == 201, other.text
        wait_analysed(buyer, other.json()["id"])
    routed = assessed(server, other.json()["id"])
    assert routed["state"] == "awaiting_merchant", routed["routing_reason"]
    assert routed["routing_reason"] == (
        "a claim on this order was rejected, or refunded in part, before: a person decides"
    )


def test_a_partial_refund_stands_like_a_rejection_of_the_rest(
    server: Server, shop: dict[str, str]
) -> None:
    # A security review: a person granted 30 of 150, the buyer filed the other 120 with the
    # same photo and it was approved automatically. The rest is appealed, not filed again.
    order = _new_order(server, shop, "o-partial", 150)
    form = {"order_id": order, "type": "refund_only", "amount": "150"}
    with server.client(shop["buyer"]) as buyer:
        first = buyer.post("/v1/claims", data=form)  # no photo: a person decides
        assert first.status_code == 201, first.text
        wait_analysed(buyer, first.json()["id"])
    _decide(
        server, shop, first.json()["id"],
        {"decision": "partial", "amount": 30, "reason": "only the lid was chipped"},
    )  # fmt: skip
    with server.client(shop["buyer"]) as buyer:
        again = buyer.post(
            "/v1/claims",
            data=form | {"amount": "120"},
            files=[("photos", ("c.jpg", _genuine_photo(), "image/jpeg"))],
        )
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "claim.rejected_on_order"
        other = buyer.post(
            "/v1/claims",
            data=form | {"type": "return_and_refund", "amount": "120"},
            files=[("photos", ("c.jpg", _genuine_photo(), "image/jpeg"))],
        )
        assert other.status_code == 201, other.text
        wait_analysed(buyer, other.json()["id"])
    routed = assessed(server, other.json()["id"])
    assert routed["state"] == "awaiting_merchant", routed["routing_reason"]


def test_an_upload_that_finds_no_decode_slot_is_answered_busy_and_stores_nothing(
    tmp_path: Path,
) -> None:
    # Concurrent uploads of small PNGs of max_pixels each took the API process to gigabytes:
    # uploads are decoded upload_decode_slots at a time, and one that waits past
    # upload_slot_wait_seconds is refused before a byte is decoded.
    with running_server(tmp_path, upload_decode_slots=1, upload_slot_wait_seconds=0.3) as server:
        with server.client(server.admin) as admin:
            admin.post("/v1/tenants", json={"id": "shop-z", "kind": "merchant", "name": "Z"})
        merchant = server.key("merchant", "shop-z")
        slots = server.app.state.runtime.upload_work
        assert slots.acquire(timeout=5)  # another upload holds the only slot
        try:
            with server.client(merchant) as client:
                r = client.post(
                    "/v1/skus",
                    data={"external_id": "busy"},
                    files=[("photos", ("l.jpg", _genuine_photo(), "image/jpeg"))],
                )
            assert r.status_code == 503 and r.json()["error"]["code"] == "service.busy"
            assert r.headers["Retry-After"] == str(server.settings.busy_retry_after_seconds)
            assert _stored(server) == []
        finally:
            slots.release()
        with server.client(merchant) as client:
            r = client.post(
                "/v1/skus",
                data={"external_id": "busy"},
                files=[("photos", ("l.jpg", _genuine_photo(), "image/jpeg"))],
            )
        assert r.status_code == 201, r.text


def test_an_orders_claims_together_ask_no_more_than_its_amount(
    server: Server, shop: dict[str, str]
) -> None:
    # Claim by claim within the order's amount, 4 x 90 was refunded on a 300 order: each
    # approved claim freed the order for the next. Held together: open and approved claims
    # count in full, a partial refund its decided part, a rejected claim nothing.
    assert server.settings.claims_within_order_amount
    order = _new_order(server, shop, "o-sum", 100)

    def claim(amount: str, kind: str = "refund_only") -> httpx.Response:
        with server.client(shop["buyer"]) as buyer:
            return buyer.post(
                "/v1/claims", data={"order_id": order, "type": kind, "amount": amount}
            )

    first = claim("60")
    assert first.status_code == 201, first.text
    with server.client(shop["buyer"]) as buyer:
        wait_analysed(buyer, first.json()["id"])
    _decide(
        server, shop, first.json()["id"], {"decision": "partial", "amount": 30, "reason": "a dent"}
    )
    # (Another type: the rest of a refund-only claim refunded in part is appealed, not filed
    # again as refund-only.)
    before = _stored(server)
    over = claim("80", "return_and_refund")  # 30 granted + 80 > 100
    assert over.status_code == 409 and over.json()["error"]["code"] == "claim.over_order_amount"
    assert "at most 70" in over.json()["error"]["message"]
    assert _stored(server) == before
    second = claim("70", "return_and_refund")
    assert second.status_code == 201, second.text
    with server.client(shop["buyer"]) as buyer:
        wait_analysed(buyer, second.json()["id"])
    _decide(server, shop, second.json()["id"], {"decision": "reject", "reason": "no damage shown"})
    # The rejected claim holds nothing (a claim of its type is appealed, not filed again).
    assert claim("70", "repair").status_code == 201


@pytest.mark.parametrize(
    "boxes",
    [
        "not json",
        "{}",
        "[]",  # one photo sent, no entry for it
        "[null, null]",
        "[[0.1, 0.1, 0.2]]",
        "[[0.3, 0.1, 0.2, 0.4]]",  # right before left
        "[[0.1, 0.1, 1.5, 0.4]]",  # outside the photo
        "[[-0.1, 0.1, 0.5, 0.4]]",
        '[["0.1", 0.1, 0.5, 0.4]]',
        "[[true, 0.1, 0.5, 0.4]]",
        "[[NaN, 0.1, 0.5, 0.4]]",
        "[[1e400, 0.1, 0.5, 0.4]]",
        "[" * 1200 + "]" * 1200,  # deep nesting: the length limit refuses it before the parser
        "[[0.5, 0.5, 0.5000001, 0.6]]",  # a tap, not a box (damage_box_min_side)
        "[[0.1, 0.1, 0.5, 0.4]" + " " * 200 + "]",  # longer than one box takes
    ],
)
def test_a_damage_box_that_is_no_box_inside_its_photo_is_refused_before_the_photo_is_read(
    server: Server, shop: dict[str, str], boxes: str
) -> None:
    before = _stored(server)
    photo = _genuine_photo()
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={
                "order_id": shop["order"],
                "type": "refund_only",
                "amount": "10",
                "damage_boxes": boxes,
            },
            files=[("photos", ("c.jpg", photo + b"\x00box", "image/jpeg"))],
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "claim.bad_damage_box", r.text
    assert _stored(server) == before


def test_more_videos_than_the_limit_are_refused_before_any_file_is_read(
    server: Server, shop: dict[str, str]
) -> None:
    # Each video costs the analysis up to video_max_decode_seconds: a claim carrying dozens of
    # tiny ones was taken (60 of them, 201).
    before = _stored(server)
    photo = _genuine_photo()
    videos = [
        ("videos", (f"v{n}.webm", b"\x1aE\xdf\xa3" + bytes([n]) * 64, "video/webm"))
        for n in range(server.settings.max_videos_per_claim + 1)
    ]
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": shop["order"], "type": "refund_only", "amount": "10"},
            files=[("photos", ("c.jpg", photo, "image/jpeg")), *videos],
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "claim.too_many_videos", r.text
    assert _stored(server) == before


def test_the_same_file_twice_in_one_claim_is_refused_before_anything_is_stored(
    server: Server, shop: dict[str, str]
) -> None:
    before = _stored(server)
    photo = _genuine_photo()
    with server.client(shop["merchant"]) as merchant:
        r = merchant.post(
            "/v1/orders",
            json={
                "external_id": "o-twice",
                "sku_id": shop["sku"],
                "buyer_id": "buyer-1",
                "amount": 20,
            },
        )
        assert r.status_code == 201, r.text
        order = r.json()["id"]
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "10"},
            files=[
                ("photos", ("a.jpg", photo, "image/jpeg")),
                ("photos", ("b.jpg", photo, "image/jpeg")),
            ],
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "claim.duplicate_photo", r.text
    assert _stored(server) == before


@pytest.mark.parametrize("ident", [".", "..", ".hidden"])
def test_an_id_that_starts_with_a_dot_is_refused_since_a_path_could_never_name_it(
    server: Server, ident: str
) -> None:
    # "." and ".." are dot-segments: a client resolves /v1/claims/.. to /v1/ before sending,
    # so a tenant stored under such an id could never be addressed (found by fuzz.api).
    with server.client(server.admin) as admin:
        r = admin.post("/v1/tenants", json={"id": ident, "kind": "merchant", "name": "x"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "request.bad_field", r.text
    assert fields.check_id("id", "shop.a") == "shop.a"
    with pytest.raises(fields.FieldError):
        fields.check_id("id", ident)


def test_boxes_nested_deep_enough_to_stop_the_json_parser_are_a_bad_box_not_a_crash() -> None:
    from refundlens.cases import parse_damage_boxes
    from refundlens.errors import RefundlensError

    deep = "[" * 5000 + "]" * 5000  # within the length 100 photos allow
    with pytest.raises(RefundlensError) as refused:
        parse_damage_boxes(deep, 100, Settings())
    assert refused.value.code == "claim.bad_damage_box"


def test_an_empty_box_removes_the_box_on_file_in_a_change_and_is_refused_on_filing() -> None:
    from refundlens.cases import REMOVED_BOX, parse_box_changes, parse_damage_boxes
    from refundlens.errors import RefundlensError

    text = "[[], null, [0.1, 0.1, 0.3, 0.4]]"
    assert parse_box_changes(text, 3, Settings()) == [REMOVED_BOX, None, (0.1, 0.1, 0.3, 0.4)]
    with pytest.raises(RefundlensError) as refused:
        parse_damage_boxes(text, 3, Settings())  # a new claim has no box to remove
    assert refused.value.code == "claim.bad_damage_box"
    assert "[] (remove" not in refused.value.message
    with pytest.raises(RefundlensError) as refused:
        parse_box_changes("[[0.5]]", 1, Settings())
    assert "[] (remove the box on file)" in refused.value.message


def test_a_webhook_url_needs_a_long_secret_and_saving_again_keeps_it(server: Server) -> None:
    """Events signed with a short or empty key can be forged; sending a tenant again without its
    secret once set it to none."""
    from refundlens.store import Database
    from refundlens.store.sql.models import Tenant

    hook = {"id": "shop-w", "kind": "merchant", "name": "W", "webhook_url": "http://r.test/h"}
    with server.client(server.admin) as admin:
        for secret in (None, "", "s3cret"):
            body = hook if secret is None else {**hook, "webhook_secret": secret}
            refused = admin.post("/v1/tenants", json=body)
            assert refused.status_code == 422, secret
            assert refused.json()["error"]["code"] == "request.bad_field"
            assert "webhook_secret" in refused.json()["error"]["message"]
        secret = "x" * 32
        # A URL the webhook client cannot post to once made every delivery round raise.
        for url in (
            "http://[::1/hook",
            "http://xn--zz.com/",
            f"http://{'a' * 70}.com/",
            "ftp://x/",
        ):
            bad = {**hook, "webhook_url": url, "webhook_secret": secret}
            refused = admin.post("/v1/tenants", json=bad)
            assert refused.status_code == 422, url
            assert "webhook_url" in refused.json()["error"]["message"], url
        assert admin.post("/v1/tenants", json={**hook, "webhook_secret": secret}).status_code == 201
        assert admin.post("/v1/tenants", json={**hook, "name": "W2"}).status_code == 201
        # Renamed without its webhook: the webhook stays (leaving it out once removed it, and
        # the shop's events went unseen: an integrator's walkthrough).
        renamed = {"id": "shop-w", "kind": "merchant", "name": "W2"}
        assert admin.post("/v1/tenants", json=renamed).json()["webhook_url"] == hook["webhook_url"]
        # A shop does not become the platform (the change was answered 201 and ignored).
        moved = admin.post("/v1/tenants", json={**renamed, "kind": "platform"})
        assert moved.status_code == 422 and "kind" in moved.json()["error"]["message"]
        cleared = {**hook, "id": "shop-v", "webhook_url": ""}  # no webhook: no secret needed
        assert admin.post("/v1/tenants", json=cleared).status_code == 201
        assert admin.get("/v1/tenants/shop-v").json()["webhook_url"] is None
    database = Database(server.settings)
    try:
        with database.session() as session:
            tenant = session.get(Tenant, "shop-w")
            assert tenant is not None and (tenant.name, tenant.webhook_secret) == ("W2", secret)
    finally:
        database.dispose()


def test_a_photo_whose_label_escapes_no_text_leaves_its_claim_readable_and_decidable(
    server: Server, shop: dict[str, str]
) -> None:
    """A security review: a lone surrogate (and NUL) in a photo's AIGC label reached the stored
    assessment; the claim then answered 500 to staff, its reports 422 and its decision 500,
    while the buyer, who wrote it, read it fine."""
    import io

    from PIL import Image, PngImagePlugin

    picture = Image.open(io.BytesIO(_genuine_photo())).convert("RGB")
    picture.thumbnail((640, 640))
    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", '{"Label": "1", "ContentProducer": "\\ud800x\\u0000y"}')
    png = io.BytesIO()
    picture.save(png, "PNG", pnginfo=info)
    order = _new_order(server, shop, "o-surrogate", 50)
    with server.client(shop["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "20"},
            files=[("photos", ("labelled.png", png.getvalue(), "image/png"))],
        )
        assert r.status_code == 201, r.text
        claim = wait_analysed(buyer, r.json()["id"])
    assert claim["state"] == "awaiting_merchant", claim
    for who in ("admin", "merchant", "reviewer"):
        with server.client(shop[who]) as client:
            read = client.get(f"/v1/claims/{claim['id']}")
            assert read.status_code == 200, (who, read.text)
            assert "\ufffdx\ufffdy" in read.text  # what named no character, replaced
            for fmt in ("json", "html"):
                report = client.get(f"/v1/claims/{claim['id']}/report.{fmt}")
                assert report.status_code == 200, (who, fmt, report.text[:300])
    _decide(server, shop, claim["id"], {"decision": "approve", "reason": "label reads oddly"})


def test_an_error_quoting_a_file_name_or_what_a_file_says_can_always_be_sent() -> None:
    # A review: `check --batch` on a file named with byte 0xff crashed printing the error.
    from refundlens.errors import RefundlensError

    error = RefundlensError("media.corrupt", "bad \udcff here").about_file(0, "ph\udcff\x00.jpg")
    text = json.dumps(error.as_dict(), ensure_ascii=False)
    text.encode("utf-8")
    assert "\ufffd" in error.message and error.file is not None
    assert error.file["name"] == "ph\ufffd\ufffd.jpg"
