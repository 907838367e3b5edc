"""A browser fuzzes every form of the web page (``make fuzz``): real Chromium, every role.

For ``--seconds``, it opens a random page of a random role (reviewer, merchant, buyer, admin),
fills every field of a random form on it with hostile text (script payloads, quotes, long and
odd Unicode, numbers that are not), attaches random bytes to file fields, and submits. The
contract (docs/security.md): no answer is a 5xx, and no script ever runs (a dialog would be
one). A failure is written to ``fuzz/crashes/web-<n>.json`` with the page, the form and the
values; make it a test in tests/test_web_security.py, then fix it.

Usage: ``python -m fuzz.web --seconds 120`` (needs Chromium: ``make system-deps``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the tests' own server and shop helpers

from tests.service_support import (  # noqa: E402
    Server,
    add_tenants,
    file_claim,
    listed_sku,
    order_for,
    running_server,
    sample,
)

CHROMIUM = "/usr/bin/chromium"

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(2)>',
    "'><script>alert(3)</script>",
    "javascript:alert(4)",
    "{{7*7}}{% raw %}",
    "%(x)s %s {0}",
    "\u202e\u200b\ufeff",
    "😀" * 50,
    "a" * 5000,
    "../../../../etc/passwd",
    "' OR 1=1 --",
    "-1",
    "1e309",
    "nan",
    "",
    " ",
    "rlk_0000.x",
    "statement",
    "approve",
]


def _text(rng: random.Random) -> str:
    parts = rng.sample(HOSTILE, rng.randint(1, 3))
    if rng.random() < 0.3:
        parts.append("".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 40))))
    return "".join(parts)


def _seed(server: Server) -> dict[str, str]:
    """Two shops, keys for every role, a SKU, an order and one claim to act on."""
    add_tenants(server, "shop-a", "shop-b")
    keys = {
        "admin": server.admin,
        "merchant": server.key("merchant", "shop-a"),
        "reviewer": server.key("reviewer", assign=["shop-a"]),
        "buyer": server.key("buyer", subject="buyer-1"),
    }
    order = order_for(
        server, keys["merchant"], listed_sku(server, keys["merchant"]), "buyer-1", "o-1"
    )
    keys["claim"] = file_claim(server, keys["buyer"], order, reason="x")["id"]
    return keys


def run(seconds: float, seed: int) -> int:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright

    rng = random.Random(seed)
    crashes = HERE / "crashes"
    failures = 0
    tried = 0
    with tempfile.TemporaryDirectory() as data, running_server(Path(data)) as server:
        keys = _seed(server)
        pages = {
            "admin": ["/web/queue", f"/web/claims/{keys['claim']}", "/web/check"],
            "reviewer": ["/web/queue", f"/web/claims/{keys['claim']}"],
            "merchant": ["/web/queue", f"/web/claims/{keys['claim']}", "/web/check"],
            "buyer": ["/web/queue", f"/web/claims/{keys['claim']}"],
            "nobody": ["/web/login"],
        }
        junk = Path(data) / "junk.bin"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            contexts = {}
            for role in pages:
                context = browser.new_context()
                page = context.new_page()
                if role != "nobody":
                    page.goto(f"{server.url}/web/login")
                    page.fill("#key", keys[role])
                    page.click("button[type=submit]")
                contexts[role] = page
            fired: list[str] = []
            statuses: list[int] = []
            for page in contexts.values():
                page.on("dialog", lambda d: (fired.append(d.message), d.dismiss()))
                page.on("response", lambda r: statuses.append(r.status))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                role = rng.choice(sorted(pages))
                page = contexts[role]
                path = rng.choice(pages[role])
                try:
                    page.goto(f"{server.url}{path}")
                except PlaywrightError:
                    continue
                forms = page.locator("main form")
                if forms.count() == 0:
                    continue
                form = forms.nth(rng.randrange(forms.count()))
                values: dict[str, str] = {}
                fields = form.locator("input:not([type=hidden]), textarea, select")
                for i in range(fields.count()):
                    field = fields.nth(i)
                    kind = (field.get_attribute("type") or field.evaluate("e => e.tagName")).lower()
                    name = field.get_attribute("name") or str(i)
                    try:
                        if kind in ("radio", "checkbox"):
                            if rng.random() < 0.5:
                                field.check()
                        elif kind == "file":
                            junk.write_bytes(
                                rng.choice([sample("claim_genuine.jpg"), rng.randbytes(2000)])
                            )
                            field.set_input_files(str(junk))
                        elif kind == "select":
                            field.evaluate(
                                "(e, v) => { const o = document.createElement('option');"
                                " o.value = v; o.text = 'x'; e.add(o); e.value = v; }",
                                values.setdefault(name, _text(rng)),
                            )
                        else:
                            values[name] = _text(rng)
                            field.fill(values[name])
                    except PlaywrightError:
                        continue
                statuses.clear()
                try:
                    with page.expect_navigation(timeout=120_000):
                        form.evaluate("f => f.submit()")
                except PlaywrightError:
                    pass
                tried += 1
                bad = [s for s in statuses if s >= 500]
                if bad or fired:
                    failures += 1
                    crashes.mkdir(exist_ok=True)
                    (crashes / f"web-{failures}.json").write_text(
                        json.dumps(
                            {
                                "role": role,
                                "page": path,
                                "values": values,
                                "status": statuses,
                                "dialogs": fired,
                            },
                            ensure_ascii=False,
                            indent=1,
                        )
                    )
                    fired.clear()
            browser.close()
    print(f"fuzz.web: {tried} forms submitted in {seconds:.0f} s, {failures} failures")
    return 1 if failures else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.exit(run(args.seconds, args.seed))


if __name__ == "__main__":
    main()
