"""The web page in real headless Chromium (Debian's, driven by Playwright), and the evidence report.

Screenshots land in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from .service_support import Server, running_server, wait_analysed

CHROMIUM = os.environ.get("REFUNDLENS_CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path(tool).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {tool} is missing: `make system-deps` installs it")
        pytest.skip(f"{tool} not installed: run `make system-deps`")


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
    page.click(f"a.claim-link:has-text('{keys['claim']}')")
    assert page.locator("#claim-state").inner_text() == "人工审核中"
    page.click("#assign-form button[type=submit]")
    assert page.locator("#assigned-to").inner_text() == keys["reviewer"].split(".")[0]
    # The overlay (claim beside the aligned reference, the edit outlined) is an image that loaded.
    layer = page.locator("#layer-view")
    assert layer.evaluate("img => img.complete && img.naturalWidth > 0")
    assert "reference.derived" in page.locator("tr.finding").first.inner_text()
    page.screenshot(path=str(ARTIFACTS / "web-claim.png"), full_page=True)
    page.check("input[name=decision][value=reject]")
    page.fill("#reason", "照片是商品主图加上的裂纹")
    page.click("#decision-form button[type=submit]")
    assert page.locator("#claim-state").inner_text() == "已裁决"
    assert "decision.reject" in page.locator("#audit").inner_text()
    page.screenshot(path=str(ARTIFACTS / "web-decided.png"), full_page=True)


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
    assert page.locator("h1").inner_text() == "您的理赔"
    page.click("#lang-en")
    assert page.locator("h1").inner_text() == "Your claims"
    page.goto(f"{server.url}/web/queue")
    assert page.locator("h1").inner_text() == "Your claims"
    page.screenshot(path=str(ARTIFACTS / "web-merchant-en.png"), full_page=True)


def test_a_wrong_key_is_refused_on_the_login_page(
    site: tuple[Server, dict[str, str]], browser: object
) -> None:
    server, _ = site
    page = _login(browser, server, "rlk_nobody.secret")
    assert page.url.endswith("/web/login")
    assert page.locator("[role=alert]").count() == 1


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
    assert page.locator("#check-overlay").evaluate("img => img.complete && img.naturalWidth > 0")
    assert "reference.derived" in page.locator("tr.finding").first.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-check.png"), full_page=True)
    other = _login(browser, server, keys["buyer"])
    response = other.goto(f"{server.url}/web/check")
    assert response is not None and response.status == 403
