"""The web page in real headless Chromium (Debian's, driven by Playwright), and the evidence report.

Screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from .service_support import Server, running_server, wait_analysed, web_login

CHROMIUM = os.environ.get("REFUNDLENS_CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path(tool).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {tool} is missing: `make system-deps` installs it")
        pytest.skip(f"{tool} not installed: run `make system-deps`")


# An image can still be on its way when the page's load has committed: wait for it to load or fail,
# so a slow machine does not read "not loaded" as "broken".
_LOADED_IMAGE = """img => img.complete ? img.naturalWidth > 0 : new Promise(done => {
    img.addEventListener("load", () => done(img.naturalWidth > 0));
    img.addEventListener("error", () => done(false));
})"""


def _sample(name: str) -> bytes:
    return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    with running_server(tmp_path_factory.mktemp("web")) as server:
        with server.client(server.admin) as admin:
            for tenant in ("shop-a", "shop-b"):
                admin.post("/v1/tenants", json={"id": tenant, "kind": "merchant", "name": tenant})
        keys = {
            "merchant": server.key("merchant", "shop-a"),
            "other_merchant": server.key("merchant", "shop-b"),
            "reviewer": server.key("reviewer", assign=["shop-a"]),
            "buyer": server.key("buyer", subject="buyer-1"),
        }
        with server.client(keys["merchant"]) as merchant:
            sku = merchant.post(
                "/v1/skus",
                data={"external_id": "mug"},
                files=[("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
            ).json()["id"]
            order = merchant.post(
                "/v1/orders",
                json={
                    "external_id": "o-1",
                    "sku_id": sku,
                    "buyer_id": "buyer-1",
                    "amount": 300,
                    "shipped_at": "2026-11-01T08:00:00+08:00",
                    "delivered_at": "2026-11-03T08:00:00+08:00",
                },
            ).json()["id"]
        with server.client(keys["buyer"]) as buyer:
            claim = buyer.post(
                "/v1/claims",
                data={
                    "order_id": order,
                    "type": "refund_only",
                    "amount": "120",
                    "reason": "杯子碎了",
                },
                files=[("photos", ("claim.jpg", _sample("claim_forged.jpg"), "image/jpeg"))],
            ).json()
            wait_analysed(buyer, claim["id"])
        with server.client(keys["merchant"]) as merchant:
            # The merchant answers within its window: the claim goes to a reviewer.
            merchant.post(
                f"/v1/claims/{claim['id']}/evidence",
                data={"kind": "statement", "statement": "发货前完好，有打包视频"},
            )
        keys["claim"] = claim["id"]
        # A second claim that stays open (the first is decided by a test), for the audits.
        with server.client(keys["merchant"]) as merchant:
            order2 = merchant.post(
                "/v1/orders",
                json={"external_id": "o-2", "sku_id": sku, "buyer_id": "buyer-1", "amount": 80},
            ).json()["id"]
        with server.client(keys["buyer"]) as buyer:
            open_claim = buyer.post(
                "/v1/claims",
                data={"order_id": order2, "type": "refund_only", "amount": "80"},
                files=[("photos", ("claim.jpg", _sample("claim_forged.jpg"), "image/jpeg"))],
            ).json()
            wait_analysed(buyer, open_claim["id"])
        with server.client(keys["merchant"]) as merchant:
            merchant.post(
                f"/v1/claims/{open_claim['id']}/evidence",
                data={"kind": "statement", "statement": "发货前完好"},
            )
        keys["open_claim"] = open_claim["id"]
        yield server, keys


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _need(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _login(browser: object, server: Server, key: str, locale: str = "zh-CN"):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{server.url}/web/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    return page


def test_a_reviewer_logs_in_opens_the_forged_claim_sees_the_outline_and_decides_on_record(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    ARTIFACTS.mkdir(exist_ok=True)
    page = _login(browser, server, keys["reviewer"])
    assert page.url.endswith("/web/queue")
    assert page.locator("h1").inner_text() == "审核队列"
    page.screenshot(path=str(ARTIFACTS / "web-queue.png"), full_page=True)
    # Why each claim is there, beside its action, in the reader's language.
    row = page.locator("tr", has=page.locator(f"a.claim-link:has-text('{keys['claim']}')"))
    assert row.locator(".why").inner_text().strip()
    assert "_" not in row.locator(".why").inner_text()
    page.click(f"a.claim-link:has-text('{keys['claim']}')")
    assert page.locator("#claim-state").inner_text() == "人工审核中"
    # Why, at the top: the finding that moved the risk most (a reviewer's walkthrough found it
    # far down the page).
    assert page.locator("#claim-strongest code").inner_text() == "reference.derived"
    # A derived copy skips the pixel checks: no heatmap, so no word on what one means.
    assert page.locator(".heatmap-legend").count() == 0
    page.click("#assign-form button[type=submit]")
    assert page.locator("#assigned-to").inner_text() == keys["reviewer"].split(".")[0]
    # The overlay (claim beside the aligned reference, the edit outlined) is an image that loaded.
    layer = page.locator("#layer-view-0")
    assert layer.evaluate(_LOADED_IMAGE)
    assert "reference.derived" in page.locator("tr.finding").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "web-claim.png"), full_page=True)
    page.check("input[name=decision][value=reject]")
    page.fill("#reason", "照片是商品主图加上的裂纹")
    page.fill("#buyer-note", "照片不是您收到的商品")
    page.click("#decision-form button[type=submit]")
    assert page.locator("#claim-state").inner_text() == "已裁决"
    # And how, as the queue says it (a reviewer's walkthrough read only "decided" here).
    assert page.locator("#claim-outcome").inner_text() == "已拒绝"
    assert "已告知买家: 照片不是您收到的商品" in page.inner_text("main")
    assert "decision.reject" in page.locator("#audit").inner_text()
    # The numbers skip other claims' entries: the page says so, lest a gap read as tampering.
    assert "编号不连续并不表示缺少条目" in page.locator("#audit-gaps").inner_text()
    # Decided: no decision form and no "take this claim" any more, and the page says why.
    assert page.locator("#decision-form").count() == 0
    assert page.locator("#assign-form").count() == 0
    assert page.locator("#no-decision").count() == 1
    page.screenshot(path=str(ARTIFACTS / "web-decided.png"), full_page=True)


def test_a_refused_decision_keeps_what_the_reviewer_typed(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["reviewer"], "en-US")
    page.goto(f"{server.url}/web/claims/{keys['open_claim']}")
    page.check("input[name=decision][value=partial]")
    page.fill("#reason", "dented box, cup intact")
    page.fill("#buyer-note", "We refund the box's part.")
    page.fill("#amount", "a lot")
    page.click("#decision-form button[type=submit]")
    assert "decision.bad_amount" in page.locator("p.error").inner_text()
    assert page.input_value("#reason") == "dented box, cup intact"
    assert page.input_value("#buyer-note") == "We refund the box's part."
    assert page.input_value("#amount") == "a lot"
    assert page.is_checked("input[name=decision][value=partial]")
    # Once shown, they are gone: opening the page again starts empty.
    page.goto(f"{server.url}/web/claims/{keys['open_claim']}")
    assert page.input_value("#reason") == ""


def test_the_evidence_form_tells_the_shop_that_evidence_goes_to_a_person_not_the_analysis(
    site: tuple[Server, dict[str, str]],
) -> None:
    # A merchant's walkthrough sent its packing video as claim evidence and expected the
    # analysis to compare the claim with it.
    server, keys = site
    with web_login(server, keys["merchant"]) as merchant:
        page = merchant.get(f"/web/claims/{keys['open_claim']}").text
    assert 'id="evidence-note"' in page and "不参与自动分析" in page
    assert "/v1/orders/{id}/packing-video" in page


def test_a_merchant_cannot_open_another_merchants_claim(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["other_merchant"])
    response = page.goto(f"{server.url}/web/claims/{keys['claim']}")
    assert response is not None and response.status == 403
    assert "无权" in page.inner_text("main")


def test_the_language_can_be_switched_and_is_remembered(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["merchant"])
    assert page.locator("h1").inner_text() == "您的售后申请"
    page.click("#lang-en")
    assert page.locator("h1").inner_text() == "Your claims"
    page.goto(f"{server.url}/web/queue")
    assert page.locator("h1").inner_text() == "Your claims"
    page.screenshot(path=str(ARTIFACTS / "web-merchant-en.png"), full_page=True)
    # Switching keeps the page's query (a reviewer's walkthrough lost the queue's filters).
    page.goto(f"{server.url}/web/queue?state=decided&min_risk=50")
    page.click("#lang-zh")
    assert page.locator("h1").inner_text() == "您的售后申请"
    assert "state=decided" in page.url and "min_risk=50" in page.url and "lang=zh_CN" in page.url
    page.click("#lang-en")


def test_a_buyer_sees_its_claims_state_in_words_and_nothing_of_the_analysis(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["buyer"], "en-US")
    page.goto(f"{server.url}/web/claims/{keys['open_claim']}")
    text = page.inner_text("main")
    assert page.locator("#buyer-status").inner_text()
    # Named by what was bought and where, not by claim id alone.
    assert page.locator("h1").inner_text() == "mug"
    assert page.locator("#buyer-order").inner_text() == "shop-a · o-2"
    for word in ("reference.", "Findings", "Risk", "%", "Audit", "heatmap", "facts"):
        assert word not in text, word
    # The photos come at the analysis size (a phone on a slow network waited minutes for the
    # files sent); each links to the file itself.
    shown = page.locator("img.photo").first
    source = shown.get_attribute("src") or ""
    assert source.endswith("?view=preview"), source
    preview = page.request.get(server.url + source)
    assert preview.status == 200 and preview.headers["content-type"] == "image/jpeg"
    original = page.request.get(server.url + source.removesuffix("?view=preview"))
    assert original.status == 200 and original.body() != preview.body()
    assert page.locator("main a", has=shown).get_attribute("href") == source.removesuffix(
        "?view=preview"
    )
    # Not even by asking for a picture of the analysis by its hash, or filtering by a code.
    with server.client(keys["merchant"]) as merchant:
        view = merchant.get(f"/v1/claims/{keys['open_claim']}").json()
    overlay = view["assessment"]["images"][0]["pictures"]["overlay"]
    response = page.request.get(f"{server.url}/web/claims/{keys['open_claim']}/blob/{overlay}")
    assert response.status == 404
    page.goto(f"{server.url}/web/queue?code=reference.derived&min_risk=90")
    assert keys["open_claim"] in page.inner_text("main")  # the filters are ignored for a buyer
    assert page.locator("main form").count() == 0  # and not offered: the state counts filter
    products = page.locator("td.product").all_inner_texts()
    assert products and all(t.startswith("mug") for t in products), products
    assert any(t.endswith("o-2") for t in products), products  # the order tells them apart
    assert all(t.endswith(" CNY") for t in page.locator("td.num").all_inner_texts())
    assert set(page.locator("td.shop").all_inner_texts()) == {"shop-a"}
    assert "Risk" not in page.inner_text("main")


def test_a_wrong_key_is_refused_on_the_login_page(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, _ = site
    page = _login(browser, server, "rlk_nobody.secret")
    assert page.url.endswith("/web/login")
    assert page.locator("[role=alert]").count() == 1
    # A buyer whose session ended has no key: the page says how to come back (a walkthrough
    # found the buyer at a dead end).
    assert "应用中再次打开该申请" in page.locator("#buyer-sign-in").inner_text()


def test_the_pdf_evidence_report_carries_the_chinese_title_and_the_photo_hash(
    site: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    _need(CHROMIUM)
    _need("pdftotext")
    server, keys = site
    env = {**os.environ, "REFUNDLENS_DATA_DIR": server.settings.data_dir}
    pdf = tmp_path / "report.pdf"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "refundlens",
            "report",
            keys["claim"],
            "--format",
            "pdf",
            "--out",
            str(pdf),
            "--lang",
            "zh",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    text = subprocess.run(
        ["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert "理赔证据报告" in text
    photo_sha = __import__("hashlib").sha256(_sample("claim_forged.jpg")).hexdigest()
    assert photo_sha in text.replace("\n", "").replace(" ", "")
    assert "3000" in text.replace(",", "") or "三千元" in text
    assert "买家记录" in text  # the buyer's ledger against the threshold, as information
    ARTIFACTS.mkdir(exist_ok=True)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "60",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            str(pdf),
            str(ARTIFACTS / "report-page"),
        ],
        check=True,
    )
    assert any(ARTIFACTS.glob("report-page*.png"))


def test_a_merchant_checks_a_photo_against_its_listing_photos_without_a_case(
    site: tuple[Server, dict[str, str]], browser: object, tmp_path: Path
) -> None:
    server, keys = site
    photo = tmp_path / "forged.jpg"
    photo.write_bytes(_sample("claim_forged.jpg"))
    page = _login(browser, server, keys["merchant"])
    page.click("a[href='/web/check']")
    page.set_input_files("#photo", str(photo))
    page.click("#check-form button[type=submit]")
    assert "升级处理" in page.locator("#check-result").inner_text()
    assert page.locator("#check-overlay").evaluate(_LOADED_IMAGE)
    assert "reference.derived" in page.locator("tr.finding").first.inner_text()
    # It says what was checked against what, and keeps the SKU chosen for the next photo.
    said = page.locator("#check-what").inner_text()
    assert "forged.jpg" in said and "mug" in said and "1 张商品图" in said, said
    chosen = page.locator("#sku").input_value()
    assert chosen.startswith("sku_")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-check.png"), full_page=True)
    # A file that is no photo is refused in words, then its code; the SKU stays chosen.
    notes = tmp_path / "notes.jpg"
    notes.write_bytes(b"not an image at all")
    page.set_input_files("#photo", str(notes))
    page.click("#check-form button[type=submit]")
    refused = page.locator("p.error").inner_text()
    assert "media." in refused and any("\u4e00" <= ch <= "\u9fff" for ch in refused), refused
    assert page.locator("#sku").input_value() == chosen
    assert page.locator("#check-no-match").count() == 0
    # A photo too small for a claim is refused as the API refuses it (it was approved here).
    small = tmp_path / "small.jpg"
    from PIL import Image as PILImage

    PILImage.open(photo).convert("RGB").resize((150, 150)).save(small, quality=90)
    page.set_input_files("#photo", str(small))
    page.click("#check-form button[type=submit]")
    assert "media.too_small" in page.locator("p.error").inner_text()
    # A photo of something else: approved by the analysis, and the page says what the service's
    # rule would do with it filed as a claim.
    unrelated = tmp_path / "unrelated.jpg"
    unrelated.write_bytes(_sample("claim_unrelated.jpg"))
    page.set_input_files("#photo", str(unrelated))
    page.click("#check-form button[type=submit]")
    assert "批准" in page.locator("#check-result").inner_text()
    assert "实时拍摄" in page.locator("#check-no-match").inner_text()
    # Right under the verdict it qualifies, not below the findings table.
    assert page.locator("#check-result + #check-no-match").count() == 1
    other = _login(browser, server, keys["buyer"])
    response = other.goto(f"{server.url}/web/check")
    assert response is not None and response.status == 403
    # Not "refused" (被拒绝): a buyer read that as its claim rejected.
    assert other.locator("#error-heading").inner_text() == "无权访问"


# axe-core's rules for WCAG 2.1 A and AA (labels, names, contrast, landmarks, language, ...).
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def _axe_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}})
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


@pytest.mark.parametrize("locale", ["zh-CN", "en-US"])
def test_every_page_passes_the_axe_core_wcag_21_aa_audit(
    site: tuple[Server, dict[str, str]], browser: object, locale: str
) -> None:
    server, keys = site
    context = browser.new_context(locale=locale)  # type: ignore[attr-defined]
    page = context.new_page()
    # The audit itself must see a known fault: an unlabelled field and an image with no text.
    page.set_content("<html lang=en><title>t</title><main><input><img src=x></main></html>")
    assert {v.split(" ")[0] for v in _axe_violations(page)} >= {"label", "image-alt"}
    page.goto(f"{server.url}/web/login")
    found = {"login": _axe_violations(page)}
    page.fill("#key", "rlk_nobody.secret")
    page.click("button[type=submit]")
    found["login with an error"] = _axe_violations(page)
    pages = {
        "reviewer queue": (keys["reviewer"], "/web/queue"),
        "claim": (keys["reviewer"], f"/web/claims/{keys['claim']}"),
        "open claim": (keys["reviewer"], f"/web/claims/{keys['open_claim']}"),
        "merchant claims": (keys["merchant"], "/web/queue"),
        "merchant claim": (keys["merchant"], f"/web/claims/{keys['claim']}"),
        "check": (keys["merchant"], "/web/check"),
        "buyer claim": (keys["buyer"], f"/web/claims/{keys['claim']}"),
        "refused": (keys["other_merchant"], f"/web/claims/{keys['claim']}"),
    }
    for name, (key, path) in pages.items():
        page = _login(browser, server, key, locale)
        page.goto(f"{server.url}{path}")
        found[name] = _axe_violations(page)
    assert {name: v for name, v in found.items() if v} == {}


def test_a_buyer_opens_the_platforms_sign_in_link_on_a_phone_and_sees_its_claim(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    with server.client(server.admin) as admin:
        url = admin.post("/v1/buyers/buyer-1/sign-in-link").json()["url"]
    context = browser.new_context(  # type: ignore[attr-defined]
        locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(f"{server.url}{url}")
    assert page.locator("#enter-button").inner_text() == "打开我的售后申请"
    assert _axe_violations(page) == []
    page.reload()  # opening the page again spends nothing
    page.click("#enter-button")
    page.wait_for_url("**/web/queue")
    assert keys["claim"] in page.content()
    page.goto(f"{server.url}{url}")  # spent
    assert page.locator("#enter-closed").is_visible() and not page.locator("#enter-button").count()
    assert _axe_violations(page) == []
    context.close()


def test_the_claim_page_is_usable_with_the_keyboard_alone(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    context = browser.new_context(locale="en-US")  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{server.url}/web/login")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.id")
    for _ in range(10):  # the skip link and the language switch come before the key field
        if focused == "key":
            break
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
    assert focused == "key"
    page.keyboard.type(keys["reviewer"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/web/queue")
    # Tab to the claim's link and open it with Enter.
    seen = []
    for _ in range(60):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.textContent || ''").strip()[:30])
        if keys["open_claim"] == seen[-1]:
            break
    assert seen[-1] == keys["open_claim"], seen
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/web/claims/{keys['open_claim']}")
    # Every control on the page is reachable by Tab, and each shows where the focus is.
    reached = set()
    unmarked = []
    for _ in range(80):
        page.keyboard.press("Tab")
        element = page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
            return {id: e.id || e.name || e.textContent.trim().slice(0, 20), tag: e.tagName,
                    marked: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2
                            || s.boxShadow !== 'none'}; }"""
        )
        reached.add(element["id"])
        if not element["marked"] and element["tag"] != "BODY":
            unmarked.append(element["id"])
    # The layer switch, the compare slider, the decision and its reason are all reachable.
    assert {"layer-0", "compare-slider-0", "decision", "reason", "amount"} <= reached, sorted(
        reached
    )
    assert unmarked == []


def test_on_a_phone_the_claim_page_fits_the_screen_and_its_buttons_are_big_enough_to_tap(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    context = browser.new_context(  # type: ignore[attr-defined]
        locale="zh-CN",
        viewport={"width": 360, "height": 740},
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.goto(f"{server.url}/web/login")
    page.fill("#key", keys["reviewer"])
    page.tap("button[type=submit]")
    page.wait_for_url("**/web/queue")
    ARTIFACTS.mkdir(exist_ok=True)
    for name, path in (("queue", "/web/queue"), ("claim", f"/web/claims/{keys['open_claim']}")):
        page.goto(f"{server.url}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(
            """() => [...document.querySelectorAll('main *, header *')]
            .filter(e => !e.closest('svg'))
            .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""
        )
        assert overflow <= 0, f"the {name} page scrolls sideways by {overflow} px: {wide}"
        page.screenshot(path=str(ARTIFACTS / f"web-phone-{name}.png"), full_page=True)
        small = page.evaluate(
            """() => [...document.querySelectorAll('button, input[type=submit], input[type=range], select, a.button')]
            .filter(e => e.offsetParent !== null)
            .map(e => [e.id || e.textContent.trim(), e.getBoundingClientRect().height])
            .filter(([_, h]) => h < 44)"""
        )
        assert small == [], f"tap targets under 44 px high on the {name} page: {small}"
        if name == "queue":
            # The filters two to a row, each field as wide as its column: side by side they
            # ran ragged, each field as wide as its label left room for (a walkthrough).
            widths = page.evaluate(
                """() => [...document.querySelectorAll(
                    'form.filters select, form.filters input:not([type=checkbox])')]
                  .map(e => Math.round(e.getBoundingClientRect().width))"""
            )
            assert len(widths) >= 5 and max(widths) - min(widths) <= 2, widths
            lefts = page.evaluate(
                """() => [...new Set([...document.querySelectorAll(
                    'form.filters select, form.filters input:not([type=checkbox])')]
                  .map(e => Math.round(e.getBoundingClientRect().left)))]"""
            )
            assert len(lefts) == 2, lefts
    # The drawn timeline's labels were 7 px tall here and ran off the screen: the dated list
    # says the same. And a Chinese heading keeps its words whole (截/止/时/间 stood one a line).
    assert not page.locator("svg.timeline").is_visible()
    assert page.locator("#timeline-list").is_visible()
    lines = page.locator("th", has_text="截止时间").first.evaluate(
        """e => { const r = document.createRange(); r.selectNodeContents(e);
          return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"""
    )
    assert lines == 1


def test_an_audit_entrys_stored_words_read_in_the_readers_language_and_nothing_else_moves() -> None:
    from refundlens.rendering.i18n import audit_words, routing_reason

    written = {
        "why": "merchant answered",
        "from": "awaiting_merchant",
        "state": "under_review",
        "type": "refund_only",
        "risk": 0.91,
        "reason": "the escalate button",  # a person's words are shown as written
    }
    shown = audit_words(written, "zh_CN")
    assert shown == {
        "why": "商家已答复",
        "from": "等待商家回应",
        "state": "人工审核中",
        "type": "仅退款",
        "risk": 0.91,
        "reason": "the escalate button",
    }
    assert written["why"] == "merchant answered"  # what is hashed stays as written
    assert audit_words({"why": "a person decided: reject"}, "zh_CN") == {
        "why": "已由人工裁决：拒绝"
    }
    # A request for a live photo and an escalation are no rulings: neither reads as one, and
    # neither shows a raw word ("a person decided: request_capture", 已由人工裁决 in Chinese).
    from refundlens.cases.review import person_reason

    for decision in ("request_capture", "escalate"):
        why = person_reason(decision)
        assert "_" not in why and "decided" not in why
        chinese = routing_reason(why, "zh_CN")
        assert chinese != why and "裁决" not in chinese
    assert routing_reason(person_reason("request_capture"), "zh_CN") == (
        "人工已要求买家现场拍摄：理赔等待买家的照片"
    )
    # Stored in the old words, a reason reads in the new ones, in the API's English too.
    from refundlens.rendering.i18n import reworded

    for decision in ("request_capture", "escalate"):
        old = f"a person decided: {decision}"
        assert reworded(old) == person_reason(decision)
        assert routing_reason(old, "zh_CN") == routing_reason(person_reason(decision), "zh_CN")
    assert reworded("a person decided: reject") == "a person decided: reject"
    english = audit_words(written, "en")
    assert english["why"] == "merchant answered" and english["from"] == "waiting for the merchant"


def test_stacked_combining_marks_are_shown_four_to_a_character() -> None:
    # A buyer's reason of 1,200 marks on three letters drew lines up over the rows above it on
    # the reviewer's page (a security review); what was sent is stored as it was.
    from refundlens.rendering.i18n import shown_plainly

    assert shown_plainly("a" + "\u030d" * 1200 + "b") == "a" + "\u030d" * 4 + "b"
    assert shown_plainly("Việt Nam, café, ā́") == "Việt Nam, café, ā́"


def test_a_risk_near_certain_is_not_rounded_to_certain() -> None:
    # 0.9975 read "100%" on the queue and the claim page (a platform team's walkthrough).
    from refundlens.rendering.i18n import risk_percent

    assert [risk_percent(r) for r in (0.9975, 1.0, 0.5, 0.004, 0.0, 0.9999)] == [
        "99.7%",
        "100%",
        "50%",
        "0.4%",
        "0%",
        "99.9%",
    ]


def test_a_risk_just_under_a_threshold_never_reads_as_the_threshold() -> None:
    # 0.3481 read "0.35 -> approve" and 0.598 "60% request_capture", where the policy asks for
    # a live photo from 0.35 and a person from 0.60 (a merchant's walkthrough): cut, not rounded.
    from refundlens.rendering.i18n import risk_fraction, risk_percent

    risks = (0.3481, 0.598, 0.35, 0.6, 0.29, 0.9)
    assert [risk_percent(r) for r in risks] == ["34%", "59%", "35%", "60%", "29%", "90%"]
    assert [risk_fraction(r) for r in risks] == ["0.34", "0.59", "0.35", "0.60", "0.29", "0.90"]


def test_routing_reasons_are_shown_in_the_readers_language() -> None:
    from refundlens.cases.routing import ClaimFacts, RoutingRules, route
    from refundlens.rendering.i18n import routing_reason

    _, reason = route("escalate", ClaimFacts("refund_only", 120.0, 1), RoutingRules())
    assert routing_reason(reason, "zh_CN") == "分析建议“升级处理”：商家可先答复，再由人工裁决"
    assert routing_reason(reason, "en") == reason
    assert routing_reason("something new", "zh_CN") == "something new"
    failed = "the analysis failed 3 times in a row: a person decides without it"
    assert (
        routing_reason(failed, "zh_CN") == "自动分析连续 3 次失败：由人工在没有分析结果的情况下裁决"
    )
    # Every reason routing can give reads in Chinese (none falls through as English).
    rules = RoutingRules(capture_must_confirm_damage=True, capture_when_product_not_shown=True)
    reasons = {
        route(
            action,
            ClaimFacts(
                "refund_only",
                amount,
                photos,
                live,
                vouched,
                shown,
                live_shown,
                ok,
                on_file,
                rejected_before,
                other_claims,
            ),
            r,
        )[1]
        for action in ("approve", "request_capture", "review", "escalate")
        for amount in (20.0, 150.0, 500.0)
        for other_claims in (0.0, 400.0)
        for photos in (0, 1)
        for live in (False, True)
        for vouched in (False, True)
        for shown in (False, True)
        for live_shown in (False, True)
        for ok in (False, True)
        for on_file in (False, True)
        for rejected_before in (False, True)
        for r in (rules, dataclasses.replace(rules, auto_approve_after_capture=False))
    }
    # What a person's or the merchant's hand, or the order's amount, adds.
    plain = ClaimFacts("refund_only", 20.0, 1, True)
    for changed in (
        {"order_amount": 10.0},
        {"person_involved": True},
        {"merchant_answered": True},
        {"buyer_claims": 9},
        {"buyer_claims": 1, "buyer_claimed": 5000.0},
        # Which doubt the live photos left (capture_doubt).
        *(
            {"capture_doubt": doubt}
            for doubt in ("missing", "differs", "intact", "not_marked", "cannot_tell")
        ),
    ):
        reasons.add(route("approve", dataclasses.replace(plain, **changed), rules)[1])
    assert len(reasons) == 26, sorted(reasons)
    untranslated = [r for r in reasons if routing_reason(r, "zh_CN") == r]
    assert untranslated == []


def test_the_file_facts_table_reads_exif_the_aigc_label_and_the_c2pa_manifest() -> None:
    from refundlens.detectors.provenance._examples import (
        camera_jpeg,
        jpeg_with_xmp,
        label_json,
        xmp_packet,
    )
    from refundlens.report.evidence import file_facts

    from .support.c2pa_signing import sign_jpeg

    camera = dict(file_facts(camera_jpeg(), "camera.jpg"))
    assert camera["EXIF Make"] == "Canon" and camera["EXIF Model"] == "Canon EOS 80D"
    assert camera["EXIF DateTimeOriginal"] == "2025:09:17 10:00:00"
    assert "C2PA manifest" not in camera
    labelled = file_facts(
        jpeg_with_xmp(xmp_packet({"TC260:AIGC": label_json(), "xmp:CreatorTool": "Jimeng"})),
        "label.jpg",
    )
    label_rows = [v for k, v in labelled if k.startswith("AIGC label")]
    assert len(label_rows) == 1 and "label=1" in label_rows[0]
    assert ("XMP CreatorTool", "Jimeng") in labelled
    signed = file_facts(sign_jpeg(camera_jpeg()), "signed.jpg")
    rows = dict(signed)
    # An untrusted signer is said to be one: a self-signed "camera" manifest read "valid"
    # beside the platform's trusted ones (an attacker's probe).
    assert "not on the platform's trust list" in rows["C2PA manifest"] or rows[
        "C2PA manifest"
    ].startswith("invalid")
    assert not rows["C2PA manifest"].startswith("trusted")
    assert rows["C2PA signer"].startswith("Test AI Image Service")
    assert any(k == "C2PA action" and "trainedAlgorithmicMedia" in v for k, v in signed)
    assert file_facts(b"not an image", "x.jpg")[0][0] == "file"


def test_the_file_facts_say_a_manifest_is_trusted_only_when_its_signer_is_on_the_list(
    tmp_path: Path,
) -> None:
    from refundlens.detectors.provenance._examples import camera_jpeg
    from refundlens.report.evidence import file_facts

    from .support.c2pa_signing import sign_jpeg, signing_chain

    platform = signing_chain("Platform CA", "Platform camera app")
    stranger = signing_chain("Apple Root CA", "Apple Inc.")  # anyone can name itself so
    anchors = tmp_path / "anchors.pem"
    anchors.write_bytes(platform[2])
    trusted = dict(
        file_facts(
            sign_jpeg(camera_jpeg(), "digitalCapture", chain=platform), "a.jpg", str(anchors)
        )
    )
    forged = dict(
        file_facts(
            sign_jpeg(camera_jpeg(), "digitalCapture", chain=stranger), "b.jpg", str(anchors)
        )
    )
    assert trusted["C2PA manifest"].startswith("trusted"), trusted
    assert not forged["C2PA manifest"].startswith("trusted"), forged
    assert "Apple Inc." in forged["C2PA signer"]


def test_the_claim_page_shows_what_the_files_say(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["reviewer"], "en-US")
    page.goto(f"{server.url}/web/claims/{keys['open_claim']}")
    facts = page.locator("table.facts").first.inner_text()
    assert "format" in facts and "JPEG" in facts


_WORDS_SPLIT_ACROSS_LINES = """(selector) => {
    const split = [];
    for (const cell of document.querySelectorAll(selector)) {
        for (const text of cell.childNodes) {
            if (text.nodeType !== Node.TEXT_NODE) continue;
            for (const m of text.textContent.matchAll(/\\S+/g)) {
                const range = document.createRange();
                range.setStart(text, m.index);
                range.setEnd(text, m.index + m[0].length);
                if (range.getClientRects().length > 1) split.push(m[0]);
            }
        }
    }
    return split;
}"""


def test_the_queue_filters_by_risk_and_an_empty_filter_form_means_any(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["reviewer"], "en-US")
    # At 1280 px the filters sit side by side: one under the other, they took some 600 px and
    # pushed the claims below the fold (a reviewer's walkthrough).
    form = page.locator("form[aria-label=Filters]").bounding_box()
    assert form is not None and form["height"] < 200, form
    # The state is the service's words, each read whole: broken anywhere, the narrow column
    # read "captur e" and "merch ant" (a new user's walkthrough).
    for width in (1280, 960, 700):  # narrower than a phone's 40 rem the table stacks
        page.set_viewport_size({"width": width, "height": 900})
        split = page.evaluate(_WORDS_SPLIT_ACROSS_LINES, "td.state")
        assert page.locator("td.state").count() >= 1 and split == [], (width, split)
    page.set_viewport_size({"width": 1280, "height": 900})
    # The form as a browser sends it: every field present, most of them empty.
    page.click("form[aria-label=Filters] button[type=submit]")
    # The click waits for the navigation to commit, not for the page: a count taken at once
    # read an empty document once in CI.
    page.wait_for_load_state()
    assert page.locator("a.claim-link").count() >= 1
    # Whose time is left: a merchant's walkthrough read a reviewer's 24 h as its own window.
    # In the queue a word (the sentence, six lines in a narrow column, is its title).
    whose = page.locator("td .deadline-for").first
    assert whose.inner_text() == "(reviewer)"
    assert whose.get_attribute("title") == "a person's time to decide"
    # A deadline passed reads as overdue, not as "-3.7 h" (a reviewer's walkthrough).
    import datetime as dt

    from refundlens.store import Database
    from refundlens.store.sql.models import Claim

    database = Database(server.settings)
    try:
        with database.session() as session:
            claim = session.get(Claim, keys["open_claim"])
            assert claim is not None
            kept, claim.deadline_at = (
                claim.deadline_at,
                dt.datetime.now(dt.UTC) - dt.timedelta(hours=3),
            )
        page.reload()
        assert "overdue by 3 h" in page.locator("table").inner_text()
        page.goto(f"{server.url}/web/claims/{keys['open_claim']}")
        assert "overdue by 3 h" in page.locator("#claim-deadline").inner_text()
    finally:
        with database.session() as session:
            claim = session.get(Claim, keys["open_claim"])
            assert claim is not None
            claim.deadline_at = kept
        database.dispose()
    page.goto(f"{server.url}/web/queue")
    page.fill("input[name=min_risk]", "50")
    page.click("form[aria-label=Filters] button[type=submit]")
    page.wait_for_load_state()
    assert keys["open_claim"] in page.locator("table").inner_text()
    page.fill("input[name=min_risk]", "101")
    page.click("form[aria-label=Filters] button[type=submit]")
    page.wait_for_load_state()
    assert "min_risk=101" in page.url and page.locator("a.claim-link").count() == 0
    # Findings on the claim page come by how much they moved the risk, either way.
    page.goto(f"{server.url}/web/claims/{keys['open_claim']}")
    assert "a person's time to decide" in page.locator("#claim-deadline").inner_text()
    weights = [
        abs(float(t)) for t in page.locator("tr.finding td[data-label=Weight]").all_inner_texts()
    ]
    assert weights == sorted(weights, reverse=True) and len(weights) >= 2


def _vocabulary() -> set[str]:
    """Every stored word the pages show through the |term filter."""
    from refundlens.cases import DECISIONS, EVIDENCE_KINDS
    from refundlens.cases.routing import CLAIM_TYPES
    from refundlens.cases.states import ClaimState
    from refundlens.fusion import ACTIONS
    from refundlens.store.sql.audit import AUDIT_ACTIONS

    pictures = {
        "overlay",
        "mask",
        "aligned_reference",
        "frame_edges",
        "exif_thumbnail",
        "thumbnail_difference",
        "noise_residual_heatmap",
        "noise_level_heatmap",
        "error_level_heatmap",
        "double_jpeg_heatmap",
        "cfa_heatmap",
        "painted_patch_heatmap",
    }
    outcomes = {"approved", "rejected", "partial"}
    timeline = {"shipped", "delivered", "claimed", "taken", "live_photo_taken"}
    return (
        {s.value for s in ClaimState}
        | set(CLAIM_TYPES)
        | set(EVIDENCE_KINDS)
        | set(DECISIONS)
        | set(ACTIONS)
        | AUDIT_ACTIONS
        | pictures
        | outcomes
        | timeline
        | {"evidence", "assigned"}
    )


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_every_stored_word_the_pages_show_has_a_translation_in_both_languages(lang: str) -> None:
    from refundlens.rendering.i18n import term

    raw = sorted(w for w in _vocabulary() if term(w, lang) == w and ("_" in w or lang == "zh_CN"))
    assert raw == []


def test_the_english_claim_page_shows_no_raw_identifier(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    page = _login(browser, server, keys["reviewer"], "en-US")
    for path in ("/web/queue", f"/web/claims/{keys['open_claim']}"):
        page.goto(f"{server.url}{path}")
        # What a person reads: codes, hashes, ids and the facts tables are meant to be raw.
        text = page.evaluate(
            """() => { const m = document.querySelector('main').cloneNode(true);
            m.querySelectorAll('code, .mono, details, table.facts, .claim-link, figcaption')
             .forEach(e => e.remove());
            return m.innerText; }"""
        )
        found = sorted(set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", text)) & _vocabulary())
        assert found == [], (path, found)


def test_two_photos_get_one_named_block_each_and_the_timeline_labels_do_not_overlap(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    with server.client(keys["merchant"]) as merchant:
        order = merchant.post(
            "/v1/orders",
            json={
                "external_id": "o-two",
                "sku_id": _sku_of(server, keys),
                "buyer_id": "buyer-1",
                "amount": 200,
                "shipped_at": "2026-11-01T08:00:00+08:00",
                "delivered_at": "2026-11-01T09:00:00+08:00",  # an hour apart: labels crowd
            },
        ).json()["id"]
    with server.client(keys["buyer"]) as buyer:
        claim = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "100"},
            files=[
                ("photos", ("first.jpg", _sample("claim_forged.jpg"), "image/jpeg")),
                ("photos", ("second.jpg", _sample("claim_screen.jpg"), "image/jpeg")),
            ],
        ).json()["id"]
        wait_analysed(buyer, claim)
    page = _login(browser, server, keys["reviewer"], "en-US")
    page.goto(f"{server.url}/web/claims/{claim}")
    headings = page.locator("section.layers h3").all_inner_texts()
    assert len(headings) == 2 and "first.jpg" in headings[0] and "second.jpg" in headings[1]
    first = page.locator("#layer-view-0").get_attribute("src")
    radios = page.locator("input[name=layer-1]")
    radios.nth(radios.count() - 1).check()
    assert page.locator("#layer-view-0").get_attribute("src") == first  # blocks are independent
    # A tap opens the layer shown at full size (on a phone the side-by-side picture is a few
    # centimetres wide): the link follows the layer switch.
    chosen = page.locator("#layer-view-1").get_attribute("src")
    assert chosen != first and page.locator("#layer-link-1").get_attribute("href") == chosen
    assert page.locator("#layer-link-0").get_attribute("href") == first
    overlaps = page.evaluate(
        """() => { const boxes = [...document.querySelectorAll('svg[role=img] text')]
            .map(t => t.getBoundingClientRect());
          const hits = [];
          boxes.forEach((a, i) => boxes.slice(i + 1).forEach(b => {
            if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
              hits.push([a.left, a.top]); }));
          return hits; }"""
    )
    assert overlaps == []
    # No label runs off the picture (centred on the ends, they did: a merchant's walkthrough).
    outside = page.evaluate(
        """() => { const svg = document.querySelector('svg.timeline').getBoundingClientRect();
          return [...document.querySelectorAll('svg.timeline text')]
            .map(t => t.getBoundingClientRect())
            .filter(b => b.left < svg.left - 0.5 || b.right > svg.right + 0.5).length; }"""
    )
    assert outside == 0
    for item in page.locator("#timeline-list time").all_inner_texts():
        assert re.search(r"[+-]\d\d:\d\d$", item), item  # every time with its zone
    assert "2026-11-01 08:00+08:00" in page.locator("#timeline-list").inner_text()


def test_a_stored_capture_time_that_cannot_be_shown_in_the_orders_zone_is_left_off_the_timeline() -> (
    None
):
    # A buyer's EXIF time of the year 1, a day ahead of UTC, stored before
    # capture.clock_not_set existed: the zone conversion overflowed and every staff reader of the
    # claim page got a 500 (a security review).
    import datetime as dt
    from types import SimpleNamespace

    from refundlens.service.web.claim import _timeline

    order = SimpleNamespace(
        shipped_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        delivered_at=None,
        utc_offset_minutes=-600,
    )
    finding = {
        "code": "capture.before_shipment",
        "facts": {"captured_at": "0001-01-01T00:00+23:59"},
    }
    case = SimpleNamespace(
        order=order,
        claim=SimpleNamespace(created_at=dt.datetime(2026, 11, 3, tzinfo=dt.UTC)),
        report={"images": [{"findings": [finding]}]},
        photos=[{"live": False}],
    )
    assert [e["label"] for e in _timeline(case)] == ["shipped", "claimed"]
    finding["facts"]["captured_at"] = "2026-11-02T10:00+08:00"
    assert [e["label"] for e in _timeline(case)] == ["shipped", "taken", "claimed"]
    # A live capture's time is told apart from the filed photo's.
    live = {"code": "capture.exif_time", "facts": {"captured_at": "2026-11-04T09:00+08:00"}}
    case.report["images"].append({"findings": [live]})
    case.photos.append({"live": True})
    labels = [e["label"] for e in _timeline(case)]
    assert labels == ["shipped", "taken", "claimed", "live_photo_taken"]


def test_timeline_events_on_one_spot_are_spread_apart_within_the_axis() -> None:
    from refundlens.service.web.claim import spread

    # A photo taken years before: shipment, delivery and claim fall on one spot at the end.
    spread_out = spread([5.0, 94.9, 94.95, 95.0])
    assert spread_out[0] == 5.0 and spread_out[-1] == 95.0
    assert all(b - a >= 20.0 - 1e-9 for a, b in itertools.pairwise(spread_out))
    assert spread([5.0, 50.0, 95.0]) == [5.0, 50.0, 95.0]  # apart already: left as they are
    assert spread([30.0]) == [30.0]


def _sku_of(server: Server, keys: dict[str, str]) -> str:
    from refundlens.store import Database
    from refundlens.store.sql.models import Claim, Order

    database = Database(server.settings)
    try:
        with database.session() as session:
            claim = session.get(Claim, keys["open_claim"])
            assert claim is not None
            order = session.get(Order, claim.order_id)
            assert order is not None
            return order.sku_id
    finally:
        database.dispose()


def test_a_buyer_appeals_a_decision_on_the_page_and_a_person_looks_again(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    from .service_support import file_claim, order_for

    server, keys = site
    order = order_for(server, keys["merchant"], _sku_of(server, keys), "buyer-1", "o-appeal")
    claim = file_claim(server, keys["buyer"], order)["id"]
    with server.client(keys["buyer"]) as buyer:
        wait_analysed(buyer, claim)
    with server.client(keys["reviewer"]) as reviewer:
        decided = reviewer.post(
            f"/v1/claims/{claim}/decision",
            json={
                "decision": "reject",
                "reason": "painted crack",
                "buyer_note": "<b>The photo</b> does not show\nthe cup you ordered.",
            },
        )
        assert decided.status_code == 200, decided.text
    page = _login(browser, server, keys["buyer"], "en-US")
    page.goto(f"{server.url}/web/queue")
    row = page.locator("tr", has=page.locator(f"a[href='/web/claims/{claim}']"))
    assert row.locator("td.state").inner_text() == "decided · rejected"  # not "decided" alone
    page.goto(f"{server.url}/web/claims/{claim}")
    assert "You may appeal" in page.locator("#buyer-status").inner_text()
    # The buyer reads the note written for it, as text, never the reason.
    assert page.locator(".buyer-note").inner_text() == (
        "<b>The photo</b> does not show\nthe cup you ordered."
    )
    assert "painted crack" not in page.inner_text("main")
    page.fill("#appeal-reason", "the cup arrived broken, here is why")
    page.click("#appeal-form button[type=submit]")
    assert page.locator("#claim-state").inner_text() == "under review"
    # The buyer reads back what it wrote.
    assert page.locator("#buyer-appeals").inner_text() == "the cup arrived broken, here is why"
    assert page.locator("#appeal-form").count() == 0
    # The rejection is shown as being reviewed again, not as the answer.
    assert "being reviewed again" in page.inner_text("main")
    with server.client(keys["buyer"]) as buyer:
        assert buyer.get(f"/v1/claims/{claim}").json()["decision"]["reviewed_again"] is True
    # The person who looks again reads why the buyer appealed, on the page and in the API.
    with server.client(keys["reviewer"]) as reviewer:
        [appealed] = reviewer.get(f"/v1/claims/{claim}").json()["appeals"]
    assert appealed["reason"] == "the cup arrived broken, here is why"
    assert appealed["by_role"] == "buyer"
    staff = _login(browser, server, keys["reviewer"], "en-US")
    staff.goto(f"{server.url}/web/claims/{claim}")
    assert "the cup arrived broken, here is why" in staff.locator("#appeals").inner_text()
    assert "being reviewed again" in staff.inner_text("main")
    response = page.request.get(f"{server.url}/web/claims/{claim}/report.pdf")
    assert response.status == 403
    assert "evidence report is for" in response.text() or "证据报告仅供" in response.text()


def test_the_queue_shows_one_page_of_claims_and_a_link_to_the_next(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    import html

    from .service_support import add_tenants, listed_sku, order_for, web_login

    # web_queue_page_size claims a page: the queue never loads more than that many at once.
    with running_server(tmp_path_factory.mktemp("paged"), web_queue_page_size=2) as server:
        add_tenants(server, "shop-a")
        merchant = server.key("merchant", "shop-a")
        buyer_key = server.key("buyer", subject="buyer-1")
        sku = listed_sku(server, merchant)
        claims = []
        with server.client(buyer_key) as buyer:
            for n in range(3):
                order = order_for(server, merchant, sku, "buyer-1", f"o-{n}")
                r = buyer.post(
                    "/v1/claims", data={"order_id": order, "type": "refund_only", "amount": "9"}
                )
                assert r.status_code == 201, r.text
                claims.append(r.json()["id"])
            for claim in claims:
                assert wait_analysed(buyer, claim)["state"] == "awaiting_merchant"
        shown: list[str] = []
        with web_login(server, server.admin) as client:
            url = "/web/queue?state=awaiting_merchant&min_amount=5"
            first = client.get(url)
            assert first.status_code == 200
            on_first = re.findall(r'class="claim-link">(clm_[^<]+)<', first.text)
            assert len(on_first) == 2
            # The counts cover every page.
            assert re.search(r'href="\?state=awaiting_merchant">[^<]*: 3<', first.text)
            link = re.search(r'<a href="([^"]+)" rel="next" id="next-page"', first.text)
            assert link, first.text
            following = html.unescape(link[1])
            assert "state=awaiting_merchant" in following and "min_amount=5" in following
            second = client.get(following)
            on_second = re.findall(r'class="claim-link">(clm_[^<]+)<', second.text)
            assert len(on_second) == 1 and 'id="next-page"' not in second.text
            assert 'id="first-page"' in second.text
            shown = on_first + on_second
            # An offset no queue reaches, or one longer than Python reads as an integer (4,301
            # digits answered 500: a security review): a page, not an error.
            for made_up in ("9" * 18, "9" * 4301, "-1", "1e9"):
                far = client.get(url, params={"offset": made_up})
                assert far.status_code == 200, made_up
        assert sorted(shown) == sorted(claims)


def test_the_claim_pages_facts_read_as_words_and_numbers_never_as_python_values(
    site: tuple[Server, dict[str, str]],
) -> None:
    # The evidence report's rule (tests/test_report.py) holds on the reviewer's page too.
    import html

    from .service_support import web_login

    server, keys = site
    with web_login(server, keys["reviewer"]) as client:
        page = client.get(f"/web/claims/{keys['open_claim']}?lang=en")
        assert page.status_code == 200
    tables = re.findall(r"<details><summary>[^<]*</summary><table>(.*?)</table>", page.text, re.S)
    assert tables, "no facts table on the claim page"
    text = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(tables)))
    assert not re.findall(r"[{}\[\]']|\b(True|False|None)\b", text), text[:500]


def test_the_queue_finds_claims_by_part_of_a_finding_code(
    site: tuple[Server, dict[str, str]],
) -> None:
    """A reviewer types a code's last word ("derived"), as a person would, and finds the claims
    whose analysis has reference.derived; a word in no code finds none."""
    from .service_support import web_login

    server, keys = site
    with web_login(server, keys["reviewer"]) as client:
        for asked in ("reference.derived", "derived", " Derived "):
            found = client.get("/web/queue", params={"code": asked})
            assert found.status_code == 200 and keys["open_claim"] in found.text, asked
        nothing = client.get("/web/queue", params={"code": "no-such-word"})
        assert nothing.status_code == 200 and keys["open_claim"] not in nothing.text
        # Said, not just "nothing here": no code holds that word (a new user's walkthrough);
        # and an amount that is no number is said to be left out, not silently dropped.
        assert 'id="filter-unknown-code"' in nothing.text
        assert 'id="filter-unknown-code"' not in found.text
        typo = client.get("/web/queue", params={"min_amount": "abc", "lang": "en"})
        assert "Not a number, so not used: Amount at least." in typo.text
        assert 'id="filter-unread"' not in client.get("/web/queue", params={"min_amount": "5"}).text


def test_the_reviewer_sees_the_buyers_box_drawn_over_its_claim_photo(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    with server.client(keys["merchant"]) as merchant:
        order = merchant.post(
            "/v1/orders",
            json={
                "external_id": "o-box",
                "sku_id": _sku_of(server, keys),
                "buyer_id": "buyer-1",
                "amount": 90,
            },
        ).json()["id"]
    with server.client(keys["buyer"]) as buyer:
        claim = buyer.post(
            "/v1/claims",
            data={
                "order_id": order,
                "type": "refund_only",
                "amount": "90",
                "damage_boxes": "[[0.25, 0.5, 0.75, 0.9]]",
            },
            files=[("photos", ("boxed.jpg", _sample("claim_forged.jpg"), "image/jpeg"))],
        ).json()["id"]
        wait_analysed(buyer, claim)
    page = _login(browser, server, keys["reviewer"], "en-US")
    page.goto(f"{server.url}/web/claims/{claim}")
    photo = page.locator("span.boxed img.photo").first.bounding_box()
    drawn = page.locator("svg.damage-box rect").first.bounding_box()
    assert photo is not None and drawn is not None
    # The box lies where its fractions put it on the photo as shown (a pixel or two of stroke).
    assert abs(drawn["x"] - (photo["x"] + 0.25 * photo["width"])) <= 3
    assert abs(drawn["y"] - (photo["y"] + 0.5 * photo["height"])) <= 3
    assert abs(drawn["width"] - 0.5 * photo["width"]) <= 4
    assert abs(drawn["height"] - 0.4 * photo["height"]) <= 4
    assert "the buyer's box around the damage" in page.locator(".damage-box-note").inner_text()
    report = page.request.get(f"{server.url}/web/claims/{claim}/report.html")  # a download
    assert report.ok and "0.25, 0.5, 0.75, 0.9" in report.text()  # the evidence report names it


def test_every_file_a_page_links_in_its_head_is_served(
    site: tuple[Server, dict[str, str]],
) -> None:
    # The stylesheet and the icon (a browser asks /favicon.ico where a page names none).

    server, _ = site
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/web/login").text
        links = re.findall(r'<link rel="(\w+)" href="([^"]+)"', page)
        assert {rel for rel, _ in links} >= {"icon", "stylesheet"}
        for rel, href in links:
            answer = client.get(href)
            assert answer.status_code == 200, href
            wanted = "image/svg+xml" if rel == "icon" else "text/css"
            assert answer.headers["content-type"].startswith(wanted), href


def test_evidence_files_open_for_the_merchant_and_the_reviewer_and_a_buyer_opens_its_own(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    # The person deciding must see what each side sent (a packing video, a receipt); a file no
    # browser shows as a picture is a download under a name of ours, never rendered here.
    server, keys = site
    claim_id = keys["open_claim"]
    receipt = b"%PDF-1.4 <script>alert(1)</script>"  # not a picture: downloaded, not shown
    with server.client(keys["merchant"]) as merchant:
        r = merchant.post(
            f"/v1/claims/{claim_id}/evidence",
            data={"kind": "other", "statement": "shipping receipt"},
            files={"file": ("receipt.pdf", receipt, "application/pdf")},
        )
        assert r.status_code in (200, 201), r.text
    with server.client(keys["buyer"]) as buyer:
        r = buyer.post(
            f"/v1/claims/{claim_id}/evidence",
            data={"kind": "other", "statement": "the box\nas it came"},
            files={"file": ("box.jpg", _sample("claim_genuine.jpg"), "image/jpeg")},
        )
        assert r.status_code in (200, 201), r.text
    import hashlib

    merchant_sha, buyer_sha = (
        hashlib.sha256(b).hexdigest() for b in (receipt, _sample("claim_genuine.jpg"))
    )
    for who in ("merchant", "reviewer"):
        page = _login(browser, server, keys[who])
        page.goto(f"{server.url}/web/claims/{claim_id}")
        links = page.locator("a.evidence-file")
        assert links.count() >= 2, who
        got = page.request.get(f"{server.url}/web/claims/{claim_id}/blob/{merchant_sha}")
        assert got.status == 200 and got.body() == receipt, who
        assert got.headers["content-type"] == "application/octet-stream"
        # Named by what the bytes are, never by the sender's name: without an extension a
        # packing video opened in no player (a new user's walkthrough); a PDF, which a double
        # click would open with the sender's script, stays .bin (a review).
        assert got.headers["content-disposition"] == (
            f'attachment; filename="evidence-{merchant_sha[:12]}.bin"'  # a PDF opens nothing
        )
        assert (
            page.request.get(f"{server.url}/web/claims/{claim_id}/blob/{buyer_sha}").status == 200
        )
    page = _login(browser, server, keys["buyer"])
    page.goto(f"{server.url}/web/claims/{claim_id}")
    assert "the box\nas it came" in page.locator("#buyer-evidence").inner_text()
    assert page.request.get(f"{server.url}/web/claims/{claim_id}/blob/{buyer_sha}").status == 200
    assert page.request.get(f"{server.url}/web/claims/{claim_id}/blob/{merchant_sha}").status == 404


def test_a_link_opened_logged_out_comes_back_after_the_login_and_never_leaves_the_site(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, keys = site
    context = browser.new_context(locale="en", viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(f"{server.url}/web/claims/{keys['claim']}")  # a reviewer's link from a webhook
    assert "/web/login?next=" in page.url
    page.fill("#key", keys["reviewer"])
    page.click("button[type=submit]")
    assert page.url.endswith(f"/web/claims/{keys['claim']}")
    # A next that names another site, or this site by another way, opens the queue instead.
    for hostile in (
        "//evil.example/x",
        "https://evil.example/",
        "/web//evil.example",
        "/web/\\evil",
    ):
        other = browser.new_context().new_page()  # type: ignore[attr-defined]
        other.goto(f"{server.url}/web/login?next={hostile}")
        assert 'name="next"' not in other.content()
        other.fill("#key", keys["reviewer"])
        other.click("button[type=submit]")
        assert other.url.startswith(server.url) and other.url.endswith("/web/queue"), hostile


def test_heatmaps_say_what_their_brightness_means(site: tuple[Server, dict[str, str]]) -> None:
    # A reviewer's walkthrough read a bright spot of a heatmap as a finding, while the finding
    # said nothing was found.
    server, keys = site
    with server.client(keys["merchant"]) as merchant:
        order = merchant.post(
            "/v1/orders",
            json={"external_id": "o-heat", "sku_id": _sku_of(server, keys), "buyer_id": "buyer-1",
                  "amount": 250},
        ).json()["id"]  # fmt: skip
    with server.client(keys["buyer"]) as buyer:
        claim = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "250"},
            files=[("photos", ("new.jpg", _sample("claim_genuine.jpg"), "image/jpeg"))],
        ).json()["id"]
        wait_analysed(buyer, claim)
    with web_login(server, keys["reviewer"]) as reviewer:
        html = reviewer.get(f"/web/claims/{claim}?lang=en").text
    assert "heatmap" in html.lower(), html[html.find("Layer") : html.find("Layer") + 1500]
    assert "A bright spot is not a finding" in html
