"""The web page and the evidence report against an attacker (issue 18; docs/security.md).

A buyer or merchant controls many texts that reviewers later see: the claim's reason, file
names, EXIF fields, evidence statements, SKU and order ids, decision reasons, query parameters.
Each is rendered here with a script payload, both as the HTML the server sends (escaping) and in
real Chromium (escaping and the Content-Security-Policy together), and no script may run.
Sessions, CSRF, the PDF renderer's network, and who sees and assigns what are tested beside.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from PIL import Image
from sqlalchemy import text, update

from refundlens.store import Database
from refundlens.store.sql.models import AuditEntry, Decision, Evidence, WebSession, new_id

from .service_support import (
    Server,
    add_tenants,
    backend,
    file_claim,
    listed_sku,
    logged_in,
    order_for,
    running_server,
    sample,
    wait_analysed,
    web_login,
)

CHROMIUM = os.environ.get("REFUNDLENS_CHROMIUM_PATH", "/usr/bin/chromium")
TEMPLATES = Path(__file__).resolve().parents[1] / "src" / "refundlens" / "service" / "templates"

# Each payload calls alert() with its own number if it ever runs; quotes of both kinds and a
# closing tag try to break out of an attribute, a text node and a <script> or <style> block.
PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(2)>',
    "'><script>alert(3)</script>",
    "</style></script><iframe srcdoc='<script>parent.alert(4)</script>'>",
    "javascript:alert(5)",
]
HOSTILE = " ".join(PAYLOADS)


def _need_chromium() -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: `make system-deps` installs it")
        pytest.skip(f"{CHROMIUM} not installed: run `make system-deps`")


def _photo_with_hostile_exif() -> bytes:
    """The sample claim photo with a payload in EXIF Make, Model and Software (any buyer can)."""
    image = Image.open(io.BytesIO(sample("claim_forged.jpg")))
    exif = Image.Exif()
    exif[0x010F] = PAYLOADS[0]
    exif[0x0110] = PAYLOADS[1]
    exif[0x0131] = PAYLOADS[2]
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def page_csrf(client: httpx.Client, path: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found[1]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, dict[str, str]]]:
    """Two shops, a reviewer for each, one buyer with a claim at each shop; every text the
    buyer and the merchant control carries a payload (sent through the API where it accepts
    the value, written into the rows where it refuses it, as older data or a bug might)."""
    data_dir = tmp_path_factory.mktemp(f"websec-{request.param}")
    with backend(request.param) as url, running_server(data_dir, url) as server:
        add_tenants(server, "shop-a", "shop-b")
        keys = {
            "merchant": server.key("merchant", "shop-a"),
            "merchant_b": server.key("merchant", "shop-b"),
            "reviewer": server.key("reviewer", assign=["shop-a"]),
            "reviewer_2": server.key("reviewer", assign=["shop-a"]),
            "reviewer_b": server.key("reviewer", assign=["shop-b"]),
            "buyer": server.key("buyer", subject="buyer-1"),
        }
        for claim, merchant in (("claim", "merchant"), ("claim_b", "merchant_b")):
            sku = listed_sku(server, keys[merchant])
            order = order_for(server, keys[merchant], sku, "buyer-1", f"o-{claim}")
            photo = (HOSTILE + ".jpg", _photo_with_hostile_exif())
            keys[claim] = file_claim(server, keys["buyer"], order, [photo], reason=HOSTILE)["id"]
        _plant_hostile_rows(server, keys)
        yield server, keys


def _plant_hostile_rows(server: Server, keys: dict[str, str]) -> None:
    database = Database(server.settings)
    try:
        with database.session() as session:
            claim = keys["claim"]
            for table, column in (
                ("skus", "external_id"),
                ("skus", "title"),
                ("orders", "external_id"),
            ):
                session.execute(text(f"UPDATE {table} SET {column} = :v"), {"v": HOSTILE[:90]})
            session.execute(
                text("UPDATE claims SET routing_reason = :v WHERE id = :id"),
                {"v": HOSTILE, "id": claim},
            )
            session.add(
                Evidence(
                    id=new_id("evd"),
                    claim_id=claim,
                    # What the web form accepted before it checked kinds (the reported attack).
                    kind="<svg onload=alert(6)>",
                    submitted_by='"><b>x</b>',
                    sha256=None,
                    name=HOSTILE[:200],
                    statement=HOSTILE,
                )
            )
            session.add(
                Decision(
                    id=new_id("dec"),
                    claim_id=claim,
                    outcome="<i>x</i>",
                    amount=None,
                    reason=HOSTILE,
                    decided_by=PAYLOADS[1][:40],
                )
            )
    finally:
        database.dispose()


HOSTILE_PATHS = [
    # Filters are at most 100 characters: one payload each, echoed into the filter form.
    "/web/queue?merchant={p1}&action={p0}&code={p2}&state={p1}&min_amount={p1}&min_risk={p0}",
    "/web/queue?merchant={p}",
    "/web/claims/{claim}?done={p}&error={p}",
    "/web/claims/{claim}?lang={p}",
    "/web/claims/{claim}",
    "/web/check",
]


def _paths(keys: dict[str, str]) -> list[str]:
    from urllib.parse import quote

    short = {f"p{i}": quote(payload) for i, payload in enumerate(PAYLOADS)}
    return [p.format(p=quote(HOSTILE), claim=keys["claim"], **short) for p in HOSTILE_PATHS]


def test_every_text_a_user_controls_is_escaped_in_the_html_the_server_sends(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site
    for role in ("reviewer", "merchant"):
        with web_login(server, keys[role]) as client:
            for path in _paths(keys):
                html = client.get(path).text
                for payload in PAYLOADS[:4]:
                    assert payload not in html, (role, path, payload)
                # The texts are shown, escaped: the test would see them if they were dropped.
                if path.endswith(keys["claim"]):
                    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_no_script_runs_in_chromium_on_any_page_with_hostile_texts(
    site: tuple[Server, dict[str, str]],
) -> None:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    server, keys = site
    fired: list[str] = []
    blocked: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for role in ("reviewer", "merchant", "buyer"):
                page = browser.new_context().new_page()
                page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
                page.on(
                    "console",
                    lambda m: (
                        blocked.append(m.text) if "Content Security Policy" in m.text else None
                    ),
                )
                page.goto(f"{server.url}/web/login")
                page.fill("#key", keys[role])
                page.click("button[type=submit]")
                for path in _paths(keys):
                    page.goto(f"{server.url}{path}")
                    page.wait_for_load_state("load")
                    page.wait_for_timeout(100)
                if role == "reviewer":
                    # The claim page's own script still works under the policy.
                    page.goto(f"{server.url}/web/claims/{keys['claim']}")
        finally:
            browser.close()
    assert fired == []
    # The pages themselves break no rule of their own policy (no inline script or style left).
    assert blocked == []


def test_templates_translate_variables_only_through_the_escaping_filter() -> None:
    """Jinja2 marks what ``_()`` returns as safe HTML; only string literals may go through it."""
    offenders = []
    for path in TEMPLATES.glob("*.html"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for call in re.finditer(r"\b_\(", line):
                rest = line[call.end() :]
                if not re.match(r"""\s*("[^"]*"|'[^']*')\s*[),]""", rest):
                    offenders.append(f"{path.name}:{number}: _({rest[:40]}")
            if "|safe" in line.replace(" ", "") or "Markup(" in line:
                offenders.append(f"{path.name}:{number}: marks text safe")
    assert offenders == []


def test_pages_carry_the_security_headers(site: tuple[Server, dict[str, str]]) -> None:
    server, keys = site
    with web_login(server, keys["reviewer"]) as client:
        page = client.get(f"/web/claims/{keys['claim']}")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert _inline_code(page.text) == []
        report = client.get(f"/web/claims/{keys['claim']}/report.html")
        assert "default-src 'none'" in report.headers["content-security-policy"]
        # A saved copy opened from disk keeps the policy: it is in the file too.
        assert '<meta http-equiv="Content-Security-Policy" content="default-src' in report.text
        # The photos and the analysis' pictures stay out of a shared machine's browser cache.
        blob = re.search(r"/blob/[0-9a-f]{64}", page.text)
        assert blob is not None
        picture = client.get(f"/web/claims/{keys['claim']}{blob[0]}")
        assert (
            picture.status_code == 200 and picture.headers["cache-control"] == "private, no-store"
        )
    api = httpx.get(f"{server.url}/healthz")
    assert api.headers["x-content-type-options"] == "nosniff"
    assert api.headers["cache-control"] == "no-store"  # API answers too (a PDF download likewise)
    assert "frame-ancestors 'none'" in api.headers["content-security-policy"]


def _inline_code(html: str) -> list[str]:
    """Inline scripts, style blocks, style attributes and event handlers in ``html``'s tags."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            if tag == "style" or (tag == "script" and "src" not in names):
                found.append(f"<{tag}>")
            found.extend(f"<{tag} {n}=>" for n in names if n == "style" or n.startswith("on"))

    Tags().feed(html)
    return found


def test_the_web_evidence_form_refuses_what_the_api_refuses(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site
    with web_login(server, keys["merchant"]) as client:
        csrf = page_csrf(client, f"/web/claims/{keys['claim']}")
        before = client.get(f"/web/claims/{keys['claim']}").text.count("<li>")
        for form, code in (
            ({"kind": PAYLOADS[0], "statement": "x"}, "evidence.bad_kind"),
            ({"kind": "statement", "statement": "x" * 8001}, "request.bad_field"),
            ({"kind": "statement", "statement": "a\x00b"}, "request.bad_field"),
        ):
            response = client.post(
                f"/web/claims/{keys['claim']}/evidence",
                data={**form, "csrf": csrf},
                headers={"Origin": server.url},
            )
            assert response.status_code == 303
            assert f"?error={code}&said=" in response.headers["location"], form
        # A file that is not what its kind says, as the API refuses it.
        for kind, file, code in (
            ("packing_video", ("packing.mp4", bytes(range(256)) * 8), "media.video_unreadable"),
            ("reference_photo", ("ref.jpg", b"not a photo"), "media.not_an_image"),
        ):
            response = client.post(
                f"/web/claims/{keys['claim']}/evidence",
                data={"kind": kind, "statement": "", "csrf": csrf},
                files={"file": (*file, "application/octet-stream")},
                headers={"Origin": server.url},
            )
            assert response.status_code == 303
            assert f"?error={code}&said=" in response.headers["location"], kind
            refused_at = response.headers["location"]
        assert client.get(f"/web/claims/{keys['claim']}").text.count("<li>") == before
        # The page it leads back to says what went wrong in the reader's words, then the code.
        back = client.get(refused_at + "&lang=zh_CN")
        assert "这个文件不是这类证据接受的图片。 <code>(media.not_an_image)</code>" in back.text
        # A link cannot make the page say so: without this session's tag, or with another
        # word under it, the page says nothing was refused or saved.
        claim_page = f"/web/claims/{keys['claim']}"
        tag = refused_at.rpartition("&said=")[2]
        for forged in (
            "?error=media.not_an_image",
            "?error=claim.closed&said=" + tag,
            "?done=approve&said=" + tag,
            "?error=made.up&said=0000",
        ):
            html = client.get(claim_page + forged + "&lang=en").text
            assert 'class="error"' not in html and 'class="done"' not in html, forged
    # Nor in another session of the same user: the tag is this session's.
    with web_login(server, keys["merchant"]) as other:
        html = other.get(refused_at).text
        assert 'class="error"' not in html


def test_the_evidence_form_sent_twice_adds_its_evidence_once(
    site: tuple[Server, dict[str, str]],
) -> None:
    # A double click, or a retry over a slow connection, stored the evidence twice and counted
    # it twice against the shop's limit. The form carries a one-time value; the page restored by
    # "back" and sent with other words is another piece of evidence.
    import re

    server, keys = site
    claim_page = f"/web/claims/{keys['claim']}"
    with web_login(server, keys["merchant"]) as client:
        html = client.get(claim_page).text
        csrf = page_csrf(client, claim_page)
        once = re.search(r'name="once" value="([^"]+)"', html)
        assert once is not None
        for statement in ("packed whole, twice sent", "packed whole, twice sent", "other words"):
            response = client.post(
                f"{claim_page}/evidence",
                data={"kind": "statement", "statement": statement, "csrf": csrf, "once": once[1]},
                headers={"Origin": server.url},
            )
            assert response.status_code == 303 and "?done=evidence" in response.headers["location"]
        html = client.get(claim_page).text
        assert html.count("packed whole, twice sent") == 1 and html.count("other words") == 1
        # A fresh page, a fresh value.
        again = re.search(r'name="once" value="([^"]+)"', html)
        assert again is not None and again[1] != once[1]
    # Sent twice where the first brings the shop to its evidence limit: the second is answered
    # as the first was, not "too many" (a review).
    most = server.settings.max_evidence_per_party
    other_page = f"/web/claims/{keys['claim_b']}"
    with server.client(keys["merchant_b"]) as api:
        for n in range(most - 1):
            r = api.post(
                f"/v1/claims/{keys['claim_b']}/evidence",
                data={"kind": "statement", "statement": f"note {n}"},
            )
            assert r.status_code == 201, r.text
    with web_login(server, keys["merchant_b"]) as client:
        html = client.get(other_page).text
        csrf = page_csrf(client, other_page)
        once = re.search(r'name="once" value="([^"]+)"', html)
        assert once is not None
        answers = [
            client.post(
                f"{other_page}/evidence",
                data={"kind": "statement", "statement": "the last word", "csrf": csrf,
                      "once": once[1]},
                headers={"Origin": server.url},
            ).headers["location"]
            for _ in range(2)
        ]  # fmt: skip
        assert all("?done=evidence" in a for a in answers), answers
        assert client.get(other_page).text.count("the last word") == 1


def test_every_refusal_a_page_explains_is_a_documented_code_said_in_both_languages() -> None:
    from refundlens.rendering.i18n import translations
    from refundlens.service.web.refusals import SENTENCES, refusal

    documented = (Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    chinese = translations("zh_CN").gettext
    for code, sentence in SENTENCES.items():
        assert f"`{code}`" in documented, code
        assert refusal(chinese, code) != sentence, code  # translated
        assert refusal(translations("en").gettext, code) == sentence


def test_odd_values_in_web_forms_get_a_coded_answer_never_a_500(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site
    with httpx.Client(base_url=server.url, timeout=60.0) as anonymous:
        form = anonymous.get("/web/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)[1]  # type: ignore[index]
        for key in ("rlk_\x00.x", "\x00", "rlk_" + "a" * 10000 + ".x", "\ud800"):
            response = anonymous.post(
                "/web/login",
                content=f"key={key}&csrf={csrf}".encode("utf-8", "surrogatepass"),
                headers={
                    "Origin": server.url,
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
            assert response.status_code in (400, 401, 422), (key[:20], response.status_code)
    with web_login(server, keys["reviewer"]) as client:
        csrf = page_csrf(client, f"/web/claims/{keys['claim']}")
        for amount in ("abc", "nan", "inf", "1e999"):
            response = client.post(
                f"/web/claims/{keys['claim']}/decision",
                data={"decision": "partial", "reason": "r", "amount": amount, "csrf": csrf},
                headers={"Origin": server.url},
            )
            assert response.status_code == 303, amount
            assert "?error=decision.bad_amount&said=" in response.headers["location"]
        for bad in ("a%00b", "x" * 300, "..%2F..%2Fetc%2Fpasswd", "%F0%9F%92%A5"):
            assert client.get(f"/web/claims/{bad}").status_code in (403, 404)
            assert client.get(f"/web/claims/{keys['claim']}/blob/{bad}").status_code in (403, 404)


def test_a_form_posted_without_the_token_or_from_another_site_changes_nothing(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site
    claim_path = f"/web/claims/{keys['claim_b']}"
    with web_login(server, keys["reviewer_b"]) as client:
        csrf = page_csrf(client, claim_path)
        decision = {"decision": "approve", "reason": "csrf", "csrf": csrf}
        attempts = [
            ({k: v for k, v in decision.items() if k != "csrf"}, {"Origin": server.url}),
            ({**decision, "csrf": "forged"}, {"Origin": server.url}),
            ({**decision, "csrf": "令牌é"}, {"Origin": server.url}),  # not ASCII: 403, not 500
            (decision, {"Origin": "http://evil.example"}),
            (decision, {"Referer": "http://evil.example/page"}),
            (decision, {}),  # neither Origin nor Referer: not a browser form of this site
        ]
        for form, headers in attempts:
            response = client.post(f"{claim_path}/decision", data=form, headers=headers)
            assert response.status_code == 403, (form.keys(), headers)
            assert (
                client.post(f"{claim_path}/assign", data=form, headers=headers).status_code == 403
            )
        # Referer alone (a browser that sends no Origin) from this site is enough.
        ok = client.post(
            f"{claim_path}/assign",
            data={"csrf": csrf},
            headers={"Referer": f"{server.url}{claim_path}"},
        )
        assert ok.status_code == 303 and "error=" not in ok.headers["location"]
    with server.client(keys["reviewer_b"]) as api:
        body = api.get(f"/v1/claims/{keys['claim_b']}").json()
        assert body["state"] not in ("decided", "final") and body.get("decisions") == []
    database = Database(server.settings)
    try:
        with database.session() as session:
            actions = (
                session.execute(
                    text("SELECT action FROM audit_log WHERE claim_id = :c"), {"c": keys["claim_b"]}
                )
                .scalars()
                .all()
            )
    finally:
        database.dispose()
    assert not any(a.startswith("decision.") for a in actions)
    assert AuditEntry  # the chain itself is verified by the audit tests


def test_behind_a_tls_proxy_the_session_cookie_is_secure(tmp_path: Path) -> None:
    """A TLS proxy on another host forwards plain HTTP, and the server does not trust its
    forwarded scheme: with the site's public HTTPS origin in ``web_origins``, the session and
    login cookies are still ``Secure`` (an attacker's probe: they went out without it)."""
    from .service_support import running_server

    with running_server(tmp_path / "data", web_origins="https://refunds.example") as server:
        key = server.key("reviewer", assign=[])
        with httpx.Client(base_url=server.url, timeout=60.0) as client:
            form = client.get("/web/login")
            assert "secure" in form.headers["set-cookie"].lower()
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            # The browser talks HTTPS to the proxy and sends the Secure cookie back; this
            # client talks plain HTTP to the server, so it is sent by hand.
            login_cookie = form.headers["set-cookie"].split(";", 1)[0]
            logged = client.post(
                "/web/login",
                data={"key": key, "csrf": csrf[1]},
                headers={"Origin": "https://refunds.example", "Cookie": login_cookie},
            )
            assert logged.status_code == 303
            cookie = next(c for c in logged.headers.get_list("set-cookie") if "rl_session" in c)
            assert "secure" in cookie.lower() and "httponly" in cookie.lower()


def test_login_needs_the_forms_own_token_and_the_session_is_not_the_api_key(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site
    with httpx.Client(base_url=server.url, timeout=60.0) as outsider:
        # Login CSRF: another site posting its own key into a victim's browser.
        response = outsider.post(
            "/web/login",
            data={"key": keys["buyer"], "csrf": "guess"},
            headers={"Origin": "http://evil.example"},
        )
        assert response.status_code == 403 and "rl_session" not in response.cookies
        # A token that is not ASCII is refused like any other wrong token, not a server error.
        form = outsider.get("/web/login")
        response = outsider.post(
            "/web/login",
            data={"key": keys["buyer"], "csrf": "令牌é"},
            headers={"Origin": server.url},
        )
        assert form.status_code == 200 and response.status_code == 403
    client = logged_in(httpx.Client(base_url=server.url, timeout=60.0), server, keys["reviewer"])
    cookie = client.cookies["rl_session"]
    assert keys["reviewer"] not in cookie and keys["reviewer"].split(".")[1] not in cookie
    assert (
        httpx.get(
            f"{server.url}/v1/claims", headers={"Authorization": f"Bearer {cookie}"}
        ).status_code
        == 401
    )
    database = Database(server.settings)
    try:
        with database.session() as session:
            stored = session.get(WebSession, hashlib.sha256(cookie.encode()).hexdigest())
            assert stored is not None  # only the token's hash is kept
    finally:
        database.dispose()
    assert client.get("/web/queue").status_code == 200
    csrf = page_csrf(client, "/web/queue")
    assert (
        client.post("/web/logout", data={"csrf": csrf}, headers={"Origin": server.url}).status_code
        == 303
    )
    # Logging out ends the session on the server: the old cookie opens nothing.
    replay = httpx.get(f"{server.url}/web/queue", cookies={"rl_session": cookie})
    assert replay.status_code == 303
    assert replay.headers["location"] == "/web/login?next=/web/queue"  # back there after a login


def test_a_session_ends_when_it_expires_or_its_key_is_revoked(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, _ = site
    database = Database(server.settings)
    try:
        for how in ("expired", "revoked"):
            key = server.key("reviewer", assign=["shop-a"])
            client = logged_in(httpx.Client(base_url=server.url, timeout=60.0), server, key)
            assert client.get("/web/queue").status_code == 200
            with database.session() as session:
                token = hashlib.sha256(client.cookies["rl_session"].encode()).hexdigest()
                if how == "expired":
                    session.execute(
                        update(WebSession)
                        .where(WebSession.id == token)
                        .values(expires_at=WebSession.created_at)
                    )
                else:
                    session.execute(
                        text("UPDATE api_keys SET revoked = :t WHERE id = :id"),
                        {"t": True, "id": key.split(".")[0]},
                    )
            response = client.get("/web/queue")
            assert response.status_code == 303
            assert response.headers["location"] == "/web/login?next=/web/queue"
    finally:
        database.dispose()


def test_a_merchant_sees_only_its_own_shops_claims_among_the_buyers_other_claims(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site

    def panel(html: str) -> str:
        start = html.index('<ul id="buyer-history">')
        return html[start : html.index("</ul>", start)]

    for role in ("merchant", "reviewer"):
        with web_login(server, keys[role]) as client:
            # The buyer's claim at shop-b is not listed to shop-a's merchant or reviewer.
            assert keys["claim_b"] not in panel(client.get(f"/web/claims/{keys['claim']}").text)
    with web_login(server, server.admin) as client:
        # The panel is drawn from the database: an admin, who sees everything, sees it.
        assert keys["claim_b"] in panel(client.get(f"/web/claims/{keys['claim']}").text)


def test_a_shop_is_not_told_the_buyers_record_at_other_shops_by_the_report_or_the_api(
    site: tuple[Server, dict[str, str]],
) -> None:
    # The buyer has a claim at shop-b that a person rejected as forged. Shop-a's merchant reads
    # its own claim: the evidence report's record counts shop-a's claims only, and a finding on
    # the buyer's platform record keeps its code (it moved the risk) but not its numbers.
    from refundlens.store.sql.models import Assessment, Claim

    from .service_support import wait_analysed

    server, keys = site
    sku = listed_sku(server, keys["merchant_b"], "vase")
    order = order_for(server, keys["merchant_b"], sku, "buyer-1", "o-forged-elsewhere")
    elsewhere = file_claim(server, keys["buyer"], order, [("p.jpg", sample("claim_genuine.jpg"))])
    with server.client(keys["buyer"]) as buyer:
        wait_analysed(buyer, keys["claim"])
    record = {
        "other_claims": 3,
        "outcomes": {"rejected": 2},
        "confirmed_forgeries": 2,
        "confirmed_forged_value": 1234.5,
        "refunded_on_forged": 0.0,
    }
    database = Database(server.settings)
    try:
        with database.session() as session:
            session.add(
                Decision(
                    id=new_id("dec"),
                    claim_id=elsewhere["id"],
                    outcome="rejected",
                    amount=None,
                    reason="forged",
                    decided_by="reviewer-b",
                    forgery=True,
                )
            )
            # As cases.decide leaves it: a standing decision (an appeal would reopen it).
            session.get(Claim, elsewhere["id"]).state = "decided"
            latest = (
                session.query(Assessment)
                .filter(Assessment.claim_id == keys["claim"])
                .order_by(Assessment.attempt.desc())
                .first()
            )
            assert latest is not None
            report = dict(latest.report)
            images = [dict(image) for image in report["images"]]
            images[0]["findings"] = [
                *images[0]["findings"],
                {
                    "code": "reuse.buyer_history",
                    "strength": 1.5,
                    "confidence": 0.9,
                    "reason": {"en": "worth 1234.5 in all", "zh": "合计金额 1234.5"},
                    "facts": record,
                    "region": None,
                },
            ]
            latest.report = {**report, "images": images}
    finally:
        database.dispose()

    def told(key: str) -> tuple[str, dict[str, object]]:
        with web_login(server, key) as client:
            html = client.get(f"/web/claims/{keys['claim']}/report.html?lang=en").text
        with server.client(key) as api:
            body = api.get(f"/v1/claims/{keys['claim']}").json()
        [finding] = [
            f
            for image in body["assessment"]["images"]
            for f in image["findings"]
            if f["code"] == "reuse.buyer_history"
        ]
        return html, finding

    def content_sha256(html: str) -> str:
        return re.search(r'name="refundlens:content-sha256" content="([0-9a-f]{64})"', html)[1]  # type: ignore[index]

    def cli_sha256(*shop: str) -> str:
        import subprocess
        import sys

        env = {
            **os.environ,
            "REFUNDLENS_DATA_DIR": server.settings.data_dir,
            "REFUNDLENS_DATABASE_URL": server.settings.database_url,
        }
        done = subprocess.run(
            [sys.executable, "-m", "refundlens", "report", keys["claim"], *shop,
             "--content", str(Path(server.settings.data_dir) / "case.json")],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.split()[0]

    html, finding = told(keys["merchant"])
    assert "At this shop only" in html and "1234.5" not in html
    assert "1,234.50" not in html and "rejected: 1" not in html
    assert "1234.5" not in str(finding) and "confirmed_forgeries" not in finding["facts"]
    # The shop's report is checked against the case as that shop sees it.
    assert content_sha256(html) == cli_sha256("--shop", "shop-a") != cli_sha256()
    # And it names that command, as the shop's report is checked (appendix C).
    assert f"refundlens report {keys['claim']} --shop shop-a --content case.json" in html
    with pytest.raises(AssertionError, match=r"report\.not_the_shop"):
        cli_sha256("--shop", "shop-b")  # a report as a shop that never saw the claim
    html, finding = told(server.admin)
    assert "At this shop only" not in html and "rejected: 1" in html
    assert finding["facts"] == record
    assert content_sha256(html) == cli_sha256()
    assert f"refundlens report {keys['claim']} --content case.json" in html


def test_a_shop_is_not_told_which_claim_at_another_shop_sent_the_same_picture(
    site: tuple[Server, dict[str, str]],
) -> None:
    # The buyer sent one photo to both shops: shop-b's claim is told it was sent before
    # (reuse.seen_before), and a refused live capture's audit entry names the claim it repeated.
    # Shop-b reads that it happened and how close, never shop-a's claim id or whether the same
    # buyer sent it (the platform's); the platform reads everything.
    from refundlens.store.sql import audit

    from .service_support import wait_analysed

    server, keys = site
    mine, theirs = keys["claim_b"], keys["claim"]
    with server.client(keys["buyer"]) as buyer:
        wait_analysed(buyer, mine)
    database = Database(server.settings)
    try:
        with database.session() as session:
            refused = {"code": "capture.replayed", "how": "pdq", "pdq_distance": 0}
            audit.append(session, "buyer-1", "capture.refused", claim_id=mine,
                         details={**refused, "other_claim": theirs, "same_buyer": True})  # fmt: skip
            audit.append(session, "buyer-1", "capture.refused", claim_id=mine,
                         details={**refused, "other_claim": mine, "same_buyer": True})  # fmt: skip
    finally:
        database.dispose()

    def seen_before(key: str) -> dict[str, object]:
        with server.client(key) as api:
            body = api.get(f"/v1/claims/{mine}").json()
        [finding] = [
            f
            for image in body["assessment"]["images"]
            for f in image["findings"]
            if f["code"] == "reuse.seen_before"
        ]
        return finding

    def pages(key: str) -> str:
        with web_login(server, key) as client:
            got = [
                client.get(f"/web/claims/{mine}{path}")
                for path in ("?lang=en", "/report.html?lang=en", "/report.json")
            ]
        assert all(r.status_code == 200 for r in got), [r.status_code for r in got]
        return "".join(r.text for r in got)

    finding = seen_before(keys["merchant_b"])
    assert theirs not in str(finding), finding
    assert finding["facts"]["matches"][0]["at_another_shop"] is True
    assert "same_buyer" not in finding["facts"]["matches"][0]
    assert "another shop" in finding["reason"]["en"] and "其他店铺" in finding["reason"]["zh"]
    # Nor from its weight: the same buyer's picture at another shop weighs as another buyer's.
    assert finding["strength"] == 4.0
    told = pages(keys["merchant_b"])
    assert theirs not in told
    assert told.count("Withheld from the shop") == 2  # the refused capture: page and report
    assert '"withheld":["other_claim","same_buyer"]' in told  # the report's data says so too
    # A claim of the shop's own is named: nothing of it is withheld.
    assert f"{mine}" in told and told.count('"other_claim":') == 1
    # The platform's people read the claim and the entry whole.
    finding = seen_before(server.admin)
    assert finding["facts"]["matches"][0]["claim"] == theirs
    assert "the same buyer, at another shop" in finding["reason"]["en"]
    told = pages(server.admin)
    assert theirs in told and "Withheld from the shop" not in told


def test_a_report_past_the_heavy_work_slots_is_answered_busy_at_once(
    site: tuple[Server, dict[str, str]],
) -> None:
    # A PDF starts Chromium and the photo check runs an analysis in the API process: past
    # web_heavy_work_slots at once, a page answers 503 service.busy with Retry-After, queueing
    # nothing, so a logged-in user's loop cannot take every core of the API.
    server, keys = site
    with web_login(server, keys["merchant"]) as client:
        # The first report reads its photos' file facts (each read decodes a photo).
        assert client.get(f"/web/claims/{keys['claim']}/report.html").status_code == 200
    slots = server.app.state.runtime.heavy_work
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    assert taken == server.settings.web_heavy_work_slots
    try:
        with web_login(server, keys["merchant"]) as client:
            busy = client.get(f"/web/claims/{keys['claim']}/report.pdf")
            assert busy.status_code == 503, busy.text
            assert busy.headers["Retry-After"] == str(server.settings.busy_retry_after_seconds)
            assert "服务正忙" in busy.text  # the page says so, in the default language
            # An HTML report takes a slot too, its photos' facts kept or not: it holds each
            # photo several times over (a review: 8 at once took 1 GB more, slots all held).
            again = client.get(f"/web/claims/{keys['claim']}/report.html")
            assert again.status_code == 503, again.text[:200]
            # Pages that do no heavy work are unaffected.
            assert client.get(f"/web/claims/{keys['claim']}").status_code == 200
    finally:
        for _ in range(taken):
            slots.release()


def test_one_key_holds_at_most_one_heavy_work_slot_so_another_always_finds_one(
    site: tuple[Server, dict[str, str]],
) -> None:
    # A review: two looping report requests of one shop held both slots, and every other
    # shop's reports and photo checks were busy.
    server, keys = site
    runtime = server.app.state.runtime
    merchant_id = keys["merchant"].split(".")[0]
    with runtime.heavy_slot(merchant_id) as taken:  # the shop's first request, still running
        assert taken
        with server.client(keys["merchant"]) as merchant:
            again = merchant.get(f"/v1/claims/{keys['claim']}/report.html")
            assert again.status_code == 503, again.text[:200]
            assert again.json()["error"]["code"] == "service.busy"
        with web_login(server, keys["merchant"]) as page:
            assert page.get(f"/web/claims/{keys['claim']}/report.html").status_code == 503
        with server.client(keys["reviewer"]) as reviewer:
            assert reviewer.get(f"/v1/claims/{keys['claim']}/report.html").status_code == 200
    with server.client(keys["merchant"]) as merchant:  # its slot given back
        assert merchant.get(f"/v1/claims/{keys['claim']}/report.html").status_code == 200


def test_claims_are_assigned_only_to_reviewers_of_their_shop_and_released_by_their_holder(
    site: tuple[Server, dict[str, str]],
) -> None:
    server, keys = site
    path = f"/v1/claims/{keys['claim']}/assign"
    reviewer_b = keys["reviewer_b"].split(".")[0]
    with server.client(server.admin) as admin:
        for target in ("anyone-at-all", "rlk_0000", reviewer_b, keys["merchant"].split(".")[0]):
            response = admin.post(path, json={"reviewer": target})
            assert response.status_code == 400, target
            assert response.json()["error"]["code"] == "assign.not_a_reviewer"
    with server.client(keys["reviewer"]) as reviewer:
        assert (
            reviewer.post(path, json={"reviewer": keys["reviewer"].split(".")[0]}).status_code
            == 200
        )
    with server.client(keys["reviewer_2"]) as other:
        released = other.post(path, json={"reviewer": None})
        assert released.status_code == 403
        # Nor take it first and then give it back: another reviewer holds it.
        taken = other.post(path, json={"reviewer": keys["reviewer_2"].split(".")[0]})
        assert taken.status_code == 403 and "Another reviewer holds" in taken.text
    with server.client(keys["reviewer"]) as reviewer:
        assert (
            reviewer.get(f"/v1/claims/{keys['claim']}").json()["assigned_to"]
            == (keys["reviewer"].split(".")[0])
        )
        assert reviewer.post(path, json={"reviewer": None}).status_code == 200
    with server.client(server.admin) as admin:
        given = admin.post(path, json={"reviewer": keys["reviewer_2"].split(".")[0]})
        assert given.status_code == 200
        assert admin.post(path, json={"reviewer": None}).status_code == 200


def test_a_refused_claim_leaves_no_file_behind(site: tuple[Server, dict[str, str]]) -> None:
    server, keys = site
    blobs = Path(server.settings.data_dir) / "blobs"
    before = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    with server.client(keys["buyer"]) as buyer:
        order = buyer.get(f"/v1/claims/{keys['claim']}").json()["order_id"]
        fresh = sample("claim_unrelated.jpg") + b"\x00refused"  # bytes no blob has yet
        for form in (
            {"order_id": order, "type": "refund_only", "amount": "99999"},
            {"order_id": order, "type": "no_such_type", "amount": "10"},
        ):
            response = buyer.post(
                "/v1/claims", data=form, files=[("photos", ("c.jpg", fresh, "image/jpeg"))]
            )
            assert response.status_code in (400, 422), response.text
    after = sorted(p.name for p in blobs.rglob("*") if p.is_file())
    assert after == before


class _Listener(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Listener.hits.append(self.path)
        body = b"INTRANET-SECRET-42"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


def test_the_pdf_renderer_fetches_nothing_whatever_the_report_html_asks_for(
    tmp_path: Path,
) -> None:
    """Server-side request forgery: the report is rendered in the server's Chromium, where a
    loopback or intranet URL is reachable. Nothing it names may be fetched or run."""
    _need_chromium()
    import subprocess

    from refundlens.report.evidence import render_pdf

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Listener)
    port = listener.server_address[1]
    thread = threading.Thread(target=listener.serve_forever, daemon=True)
    thread.start()
    _Listener.hits = []
    url = f"http://127.0.0.1:{port}"
    html = f"""<!doctype html><html><head><meta charset="utf-8">
    <link rel="stylesheet" href="{url}/css"><style>body {{ background: url({url}/bg) }}</style>
    </head><body><h1>report</h1>
    <iframe src="{url}/iframe"></iframe><img src="{url}/img"><object data="{url}/object"></object>
    <embed src="{url}/embed"><video src="{url}/video"></video>
    <script>fetch("{url}/fetch"); document.write("<img src={url}/script>")</script>
    <meta http-equiv="refresh" content="0; url={url}/refresh"></body></html>"""
    try:
        pdf = render_pdf(html, CHROMIUM)
    finally:
        listener.shutdown()
    assert pdf.startswith(b"%PDF")
    assert _Listener.hits == []
    out = tmp_path / "r.pdf"
    out.write_bytes(pdf)
    if shutil.which("pdftotext"):
        printed = subprocess.run(
            ["pdftotext", str(out), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "report" in printed and "INTRANET-SECRET-42" not in printed


def _live_photo(seed: int) -> bytes:
    """Shapes of their own (``seed``) with a phone's capture time of now: a live photo that
    repeats nothing on file."""
    import datetime as dt

    import numpy as np
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (640, 480), (120, 120, 120))
    draw = ImageDraw.Draw(image)
    for _ in range(30):
        x, y = int(rng.integers(0, 600)), int(rng.integers(0, 440))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x, y, x + int(rng.integers(20, 160)), y + int(rng.integers(20, 160))), colour)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "P60"
    sub = exif.get_ifd(0x8769)
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    sub[0x9003], sub[0x9011] = now.strftime("%Y:%m:%d %H:%M:%S"), "+08:00"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def test_a_decision_taken_on_an_analysis_that_was_replaced_is_refused_on_the_page_and_the_api(
    tmp_path: Path,
) -> None:
    # A security review: while a reviewer's page was open, another asked for a live photo, it
    # came in and was analysed; the first reviewer's "reject as forged" was taken on an
    # analysis it never saw. The page's form and the API name the analysis decided on.
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a")
        merchant = server.key("merchant", "shop-a")
        buyer = server.key("buyer", subject="buyer-1")
        first, second = (server.key("reviewer", assign=["shop-a"]) for _ in range(2))
        sku = listed_sku(server, merchant)
        claims = [
            file_claim(server, buyer, order_for(server, merchant, sku, "buyer-1", f"o-{i}"))["id"]
            for i in range(2)
        ]
        with server.client(buyer) as client:
            for claim in claims:
                wait_analysed(client, claim)

        def replaced(claim: str, seed: int) -> str:
            """The second reviewer asks for a live photo, the buyer sends one, it is analysed:
            the claim's new analysis."""
            with server.client(second) as api:
                r = api.post(
                    f"/v1/claims/{claim}/decision",
                    json={"decision": "request_capture", "reason": "show it live"},
                )
                assert r.status_code == 200, r.text
            with server.client(buyer) as client:
                token = client.post(f"/v1/claims/{claim}/capture-token").json()["token"]
                r = client.post(
                    f"/v1/claims/{claim}/capture",
                    data={"token": token},
                    files=[("photo", ("live.jpg", _live_photo(seed), "image/jpeg"))],
                )
                assert r.status_code == 201, r.text
                wait_analysed(client, claim)
            with server.client(second) as api:
                return str(api.get(f"/v1/claims/{claim}").json()["assessment_id"])

        # The API: the first reviewer read the claim, then it was analysed again.
        with server.client(first) as api:
            seen = api.get(f"/v1/claims/{claims[1]}").json()["assessment_id"]
            assert seen and seen.startswith("asm_")
        now = replaced(claims[1], 1)
        assert now != seen
        with server.client(first) as api:
            for stale in (seen, ""):  # "": the decision was taken on no analysis
                r = api.post(
                    f"/v1/claims/{claims[1]}/decision",
                    json={"decision": "reject", "reason": "forged", "assessment_id": stale},
                )
                assert r.status_code == 409 and r.json()["error"]["code"] == "claim.changed"
            assert api.get(f"/v1/claims/{claims[1]}").json()["decisions"] == []
            r = api.post(
                f"/v1/claims/{claims[1]}/decision",
                json={"decision": "escalate", "reason": "read it", "assessment_id": now},
            )
            assert r.status_code == 200, r.text
        # The page: opened before the live photo, sent after it was analysed.
        with web_login(server, first) as client:
            path = f"/web/claims/{claims[0]}"
            page = client.get(path).text
            shown = re.search(r'name="assessment" value="([^"]+)"', page)[1]  # type: ignore[index]
            form = {"decision": "reject", "reason": "forged", "csrf": page_csrf(client, path)}
            replaced(claims[0], 2)
            sent = client.post(
                f"{path}/decision",
                data=form | {"assessment": shown},
                headers={"Origin": server.url},
            )
            assert sent.status_code == 303 and "error=claim.changed" in sent.headers["location"]
            refused = client.get(sent.headers["location"]).text
            assert "打开此页面后，该理赔已被重新分析" in refused
            shown = re.search(r'name="assessment" value="([^"]+)"', refused)[1]  # type: ignore[index]
            sent = client.post(
                f"{path}/decision",
                data=form | {"assessment": shown},
                headers={"Origin": server.url},
            )
            assert sent.status_code == 303 and "done=reject" in sent.headers["location"]


def test_the_web_forms_forgery_box_says_what_a_rejection_found_and_its_absence_is_no_answer(
    tmp_path: Path,
) -> None:
    # The box "the evidence is forged" is ticked by default; unticked, the rejection is on other
    # grounds. A form that never showed it (a page opened before the box existed, a script)
    # gets the API's default, not "no forgery" by omission (a review of the change).
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a")
        merchant = server.key("merchant", "shop-a")
        buyer = server.key("buyer", subject="buyer-1")
        sku = listed_sku(server, merchant)
        claims = [
            file_claim(server, buyer, order_for(server, merchant, sku, "buyer-1", f"o-{i}"))["id"]
            for i in range(3)
        ]
        with server.client(buyer) as client:
            for claim in claims:
                wait_analysed(client, claim)
        forms = (
            {"forgery_asked": "1"},  # shown, unticked
            {"forgery_asked": "1", "forgery": "on"},  # shown, ticked
            {},  # never shown
        )
        with web_login(server, server.key("reviewer", assign=["shop-a"])) as client:
            for claim, extra in zip(claims, forms, strict=True):
                path = f"/web/claims/{claim}"
                page = client.get(path).text
                assert 'name="forgery_asked" value="1"' in page and 'name="forgery"' in page
                form = {"decision": "reject", "reason": "seen", "csrf": page_csrf(client, path)}
                sent = client.post(
                    f"{path}/decision", data=form | extra, headers={"Origin": server.url}
                )
                assert sent.status_code == 303, sent.text
        database = Database(server.settings)
        try:
            with database.session() as session:
                found = {
                    d.claim_id: d.forgery
                    for d in session.query(Decision).filter(Decision.claim_id.in_(claims))
                }
        finally:
            database.dispose()
        assert [found[c] for c in claims] == [False, True, True]


def test_the_platforms_people_see_who_acted_by_name_and_a_shop_by_key_id_only(
    site: tuple[Server, dict[str, str]],
) -> None:
    from refundlens.service.auth import create_key

    server, keys = site
    database = Database(server.settings)
    try:
        with database.session() as session:
            named = create_key(
                session, "reviewer", label="<b>王芳</b> risk team", assign=["shop-a"]
            )
    finally:
        database.dispose()
    key_id = named.split(".")[0]
    with web_login(server, named) as reviewer:
        csrf = page_csrf(reviewer, f"/web/claims/{keys['claim']}")
        taken = reviewer.post(
            f"/web/claims/{keys['claim']}/assign",
            data={"csrf": csrf},
            headers={"Origin": server.url},
        )
        assert taken.status_code == 303
        html = reviewer.get(f"/web/claims/{keys['claim']}").text
        with server.client(named) as api:
            state = api.get(f"/v1/claims/{keys['claim']}").json()["state"]
        queue = reviewer.get(f"/web/queue?state={state}").text
    assert "(&lt;b&gt;王芳&lt;/b&gt; risk team)" in html  # shown, escaped
    assert "&lt;b&gt;王芳&lt;/b&gt; risk team" in queue and "<b>王芳" not in queue
    with web_login(server, keys["merchant"]) as merchant:
        html = merchant.get(f"/web/claims/{keys['claim']}").text
        queue = merchant.get(f"/web/queue?state={state}").text
    assert key_id in html and "王芳" not in html
    assert key_id in queue and "王芳" not in queue


def test_a_claim_page_reads_each_photos_file_facts_once_and_the_buyers_page_none(
    site: tuple[Server, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each view of a claim page decoded every claim photo for its file facts, inside the page's
    # transaction: a buyer reloading a page of three 64 MP PNGs kept every shop's requests
    # waiting on SQLite's write lock (found by a probe).
    import refundlens.report.evidence as evidence

    server, keys = site
    read: list[str] = []
    real = evidence.read_file_facts

    def counted(data: bytes, name: str, trust_anchors_path: str = "") -> list[tuple[str, str]]:
        read.append(name)
        return real(data, name, trust_anchors_path)

    monkeypatch.setattr(evidence, "read_file_facts", counted)
    evidence._file_facts_cache.clear()
    with web_login(server, keys["buyer"]) as buyer:
        for _ in range(3):
            assert buyer.get(f"/web/claims/{keys['claim']}").status_code == 200
    assert read == []  # the buyer's page shows no file facts
    with web_login(server, keys["reviewer"]) as reviewer:
        for _ in range(3):
            page = reviewer.get(f"/web/claims/{keys['claim']}")
            assert page.status_code == 200 and "EXIF" in page.text
    assert len(read) == 1  # the claim's one photo, read once and kept


def test_a_buyers_page_of_four_phone_photos_shows_every_one(tmp_path: Path) -> None:
    # The buyer's page asks for its photos' light copies all at once; with two decode slots and
    # no wait, the third and fourth were answered 503 and showed as broken pictures (a review).
    import concurrent.futures

    import numpy as np

    def phone_photo(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        ramp = np.linspace(0, 200, 4000, dtype=np.float32)[None, :, None]
        pixels = np.clip(ramp + rng.normal(0, 12, (3000, 4000, 3)), 0, 255).astype(np.uint8)
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=85)
        return out.getvalue()

    with running_server(tmp_path, upload_decode_slots=2) as server:
        add_tenants(server, "shop-a")
        merchant = server.key("merchant", "shop-a")
        buyer_key = server.key("buyer", subject="buyer-1")
        order = order_for(server, merchant, listed_sku(server, merchant), "buyer-1", "o-1")
        photos = [(f"p{n}.jpg", phone_photo(n)) for n in range(4)]
        claim = file_claim(server, buyer_key, order, photos)["id"]
        with web_login(server, buyer_key) as phone:
            page = phone.get(f"/web/claims/{claim}")
            shown = re.findall(r'<img class="photo" src="([^"]+)"', page.text)
            assert len(shown) == 4 and all(s.endswith("?view=preview") for s in shown)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(phone.get, shown))
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.headers["content-type"] == "image/jpeg" for a in answers)
    assert all(len(a.content) < len(p[1]) / 3 for a, p in zip(answers, photos, strict=True))


def test_a_photo_asked_for_many_times_at_once_is_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16 requests at once for one 8000 x 8000 photo of a capture link, each decoding it, took
    # an API process from 580 MB to 4.3 GB (a security review): one decode, the others wait
    # for it and read its copy.
    import concurrent.futures
    import threading
    import types

    import numpy as np

    import refundlens.service.web.common as common
    from refundlens.config import Settings
    from refundlens.runtime import Runtime

    runtime = Runtime(Settings(data_dir=str(tmp_path), upload_decode_slots=4))
    out = io.BytesIO()
    Image.fromarray(np.full((1200, 1600, 3), 90, np.uint8)).save(out, "PNG")
    sha256 = runtime.blobs.put(out.getvalue())
    request = types.SimpleNamespace(
        app=types.SimpleNamespace(state=types.SimpleNamespace(runtime=runtime))
    )
    decoded: list[str] = []
    started = threading.Barrier(8)
    real = common.media_from_bytes

    def slow(data: bytes, name: str, settings: Settings) -> object:
        decoded.append(name)
        time.sleep(0.3)  # every request is waiting by now
        return real(data, name, settings)

    def ask(_: int) -> bytes:
        started.wait()
        return common.analysis_jpeg(request, sha256, "big.png")  # type: ignore[arg-type]

    monkeypatch.setattr(common, "media_from_bytes", slow)
    common._PREVIEWS.clear()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        copies = list(pool.map(ask, range(8)))
    assert decoded == ["big.png"]
    assert len(set(copies)) == 1 and copies[0][:2] == b"\xff\xd8"
    assert common._DECODING == {}  # nothing left behind
    runtime.db.dispose()


def test_an_appeal_goes_to_someone_who_has_not_decided_the_claim(tmp_path: Path) -> None:
    """API and pages: the reviewer who rejected a claim is given it back on appeal, refused
    when it takes or decides it (409 claim.own_decision_appealed), and its queue and claim page
    say why; another reviewer decides the appeal (a review, then a walkthrough)."""
    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a")
        merchant = server.key("merchant", "shop-a")
        order = order_for(server, merchant, listed_sku(server, merchant), "b-1", "o-1")
        buyer = server.key("buyer", subject="b-1")
        claim = file_claim(server, buyer, order)["id"]
        with server.client(buyer) as client:
            wait_analysed(client, claim)
        first, second = (server.key("reviewer", assign=["shop-a"]) for _ in range(2))
        first_id = first.split(".")[0]
        with server.client(first) as reviewer:
            assert (
                reviewer.post(f"/v1/claims/{claim}/assign", json={"reviewer": first_id}).status_code
                == 200
            )
            r = reviewer.post(
                f"/v1/claims/{claim}/decision",
                json={"decision": "reject", "reason": "copied listing photo"},
            )
            assert r.status_code == 200 and r.json()["state"] == "decided", r.text
        with server.client(buyer) as client:
            r = client.post(f"/v1/claims/{claim}/appeal", json={"reason": "it arrived broken"})
            assert r.status_code == 200 and r.json()["state"] == "under_review", r.text
        with server.client(first) as reviewer:
            for path, body in (
                ("assign", {"reviewer": first_id}),
                ("decision", {"decision": "approve", "reason": "looked again"}),
                ("decision", {"decision": "escalate", "reason": "looked again"}),
            ):
                r = reviewer.post(f"/v1/claims/{claim}/{path}", json=body)
                assert r.status_code == 409, (path, body, r.text)
                assert r.json()["error"]["code"] == "claim.own_decision_appealed"
        with web_login(server, first) as page:
            queue = page.get("/web/queue?lang=en").text
            assert "You decided this claim before, and it was appealed" in queue
            shown = page.get(f"/web/claims/{claim}?lang=en").text
            assert 'id="recused"' in shown and 'id="decision-form"' not in shown
        with server.client(second) as reviewer:
            r = reviewer.post(
                f"/v1/claims/{claim}/decision",
                json={"decision": "approve", "reason": "it was broken"},
            )
            assert r.status_code == 200 and r.json()["state"] == "decided", r.text
