"""The web page on a cheap device: server time, bytes, and load time in Chromium with its CPU
slowed down.

Run: ``python -m bench.run_web`` (part of ``make bench``). Writes bench/results/web.md.

One claim forged from the bundled listing photo (the demo's), analysed by the embedded service on
loopback. Server side: median time to render the review queue and the claim page (20 requests
each, warm). Client side: Debian's Chromium through Playwright, with DevTools CPU throttling at
1x (this machine) and 4x and 6x (a cheap laptop, a low-end phone, as Lighthouse's mobile
preset uses 4x), median of 5 loads of the claim page: DOMContentLoaded and the load event (every
picture decoded). Bytes: the HTML and every image the page loads.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("REFUNDLENS_CHROMIUM_PATH", "/usr/bin/chromium")

sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    from service_support import (  # type: ignore[import-not-found]
        add_tenants,
        file_claim,
        listed_sku,
        order_for,
        running_server,
        wait_analysed,
        web_login,
    )

    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} missing (make system-deps): skipped")
        return
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, running_server(Path(folder)) as server:
        add_tenants(server, "shop")
        merchant_key = server.key("merchant", "shop")
        reviewer_key = server.key("reviewer", assign=["shop"])
        order = order_for(server, merchant_key, listed_sku(server, merchant_key), "b", "o")
        buyer_key = server.key("buyer", subject="b")
        claim = file_claim(server, buyer_key, order)["id"]
        with server.client(buyer_key) as buyer:
            wait_analysed(buyer, claim)
        server_ms: dict[str, float] = {}
        html_bytes: dict[str, int] = {}

        with web_login(server, reviewer_key) as web:
            for name, path in (("queue", "/web/queue"), ("claim", f"/web/claims/{claim}")):
                web.get(path)
                times = []
                for _ in range(20):
                    t0 = time.perf_counter()
                    body = web.get(path).content
                    times.append(time.perf_counter() - t0)
                server_ms[name] = 1000 * statistics.median(times)
                html_bytes[name] = len(body)
        loads: dict[float, tuple[float, float]] = {}
        image_bytes = 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(f"{server.url}/web/login")
            page.fill("#key", reviewer_key)
            page.click("button[type=submit]")
            sizes: list[int] = []
            page.on(
                "response",
                lambda r: (
                    sizes.append(len(r.body())) if r.request.resource_type == "image" else None
                ),
            )
            cdp = context.new_cdp_session(page)
            for rate in (1.0, 4.0, 6.0):
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})
                dcl, load = [], []
                for _ in range(5):
                    sizes.clear()
                    page.goto(f"{server.url}/web/claims/{claim}", wait_until="load")
                    timing: Any = page.evaluate(
                        "(() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return [t.domContentLoadedEventEnd, t.loadEventEnd]; })()"
                    )
                    dcl.append(timing[0])
                    load.append(timing[1])
                    image_bytes = sum(sizes)
                loads[rate] = (statistics.median(dcl), statistics.median(load))
            browser.close()
    lines = [
        "# The web page on a cheap device",
        "",
        f"One forged claim (the demo's photos), embedded service on loopback; {os.cpu_count()} cores "
        f"({platform.machine()}); Debian Chromium through Playwright; medians.",
        "",
        "| page | server render, ms | HTML, KiB |",
        "|---|---|---|",
        *(
            f"| {name} | {server_ms[name]:.1f} | {html_bytes[name] / 1024:.1f} |"
            for name in server_ms
        ),
        "",
        f"Images the claim page loads: {image_bytes / 1024:.0f} KiB (photos, reference, overlay, "
        "heatmaps as JPEG, the mask as PNG), beside one stylesheet and one script from "
        "/web/static/ (the Content-Security-Policy allows nothing inline).",
        "",
        "| CPU throttling | claim page DOMContentLoaded, ms | load (pictures decoded), ms |",
        "|---|---|---|",
        *(f"| {rate:g}x | {d:.0f} | {ld:.0f} |" for rate, (d, ld) in loads.items()),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "web.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
