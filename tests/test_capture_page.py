"""The buyer's live-capture page end to end, in real Chromium with a fake camera.

Chromium's fake capture device plays a generated Y4M file as the camera: the page opens it with
getUserMedia, takes two frames, sends them, and the claim is analysed again. A camera that shows
the claim's own photo is a replay, refused and recorded; an expired link opens nothing. The
routing rule for what cannot be verified is checked on a claim whose photo shows another product.
The page's short clip (MediaRecorder, webm) goes with the photos and is kept as evidence; a clip
over its limit, or one that films the claim photo, refuses the capture and stores no photo.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from .service_support import (
    Server,
    add_tenants,
    assessed,
    audit_entries,
    one_buyer_many_claims_policy,
    running_server,
    wait_analysed,
    web_login,
)
from .test_web import CHROMIUM, _need

NOW = dt.datetime.now(dt.UTC)
CLIP_MAX_BYTES = 2_000_000


def _sample(name: str) -> bytes:
    return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()


def _scene(seed: int) -> bytes:
    """A photo of something no other test shows (a textured box, different for every seed)."""
    from refundlens.detectors._examples import _product

    out = io.BytesIO()
    Image.fromarray(_product(seed, 480)).save(out, "JPEG", quality=92)
    return out.getvalue()


def _old_photo(jpeg: bytes) -> bytes:
    """``jpeg`` with a camera's capture time from before the order shipped: the analysis asks
    for a live capture (capture.before_shipment)."""
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "HUAWEI", "P60"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0x9011] = "2026:10:20 10:00:00", "+08:00"
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def write_y4m(jpeg: bytes, path: Path, frames: int = 30) -> Path:
    """A Y4M (YUV 4:2:0) file that shows ``jpeg`` still, each frame with its own sensor noise
    as a camera's frames have (two shots of a noiseless still are the same file, which the
    server refuses as one photo sent twice): Chromium's fake camera plays it."""
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB").resize((640, 480)))
    rng = np.random.default_rng(len(jpeg))
    with path.open("wb") as out:
        out.write(b"YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n")
        for _ in range(frames):
            noisy = np.clip(rgb + rng.normal(0, 1.5, rgb.shape), 0, 255).astype(np.uint8)
            out.write(b"FRAME\n" + cv2.cvtColor(noisy, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def _seed_shop(server: Server, tenant: str, buyer: str, orders: int) -> dict[str, str]:
    """A tenant with one SKU (the bundled listing photo) and ``orders`` delivered orders of
    ``buyer``: the keys and ids, as ``keys["order<n>"]``."""
    add_tenants(server, tenant)
    keys = {
        "merchant": server.key("merchant", tenant),
        "buyer": server.key("buyer", subject=buyer),
    }
    with server.client(keys["merchant"]) as merchant:
        sku = merchant.post(
            "/v1/skus",
            data={"external_id": f"{tenant}-sku"},
            files=[("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
        ).json()["id"]
        keys["sku"] = sku
        for n in range(orders):
            keys[f"order{n}"] = merchant.post(
                "/v1/orders",
                json={
                    "external_id": f"{tenant}-o-{n}",
                    "sku_id": sku,
                    "buyer_id": buyer,
                    "amount": 90,
                    "shipped_at": "2026-11-01T08:00:00+08:00",
                    "delivered_at": "2026-11-03T08:00:00+08:00",
                },
            ).json()["id"]
    return keys


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    # A short clip (2 s), and a small limit on its size that a still scene keeps well within.
    data_dir = tmp_path_factory.mktemp("capture")
    with running_server(
        data_dir,
        capture_clip_seconds=2.0,
        capture_clip_max_bytes=CLIP_MAX_BYTES,
        # One buyer files every claim of the module's shop, by convenience.
        policy_path=one_buyer_many_claims_policy(data_dir),
    ) as server:
        yield server, _seed_shop(server, "shop-a", "buyer-1", len(CLAIM_PHOTOS) + 1)


# Each claim's photo is its own: the same photo in two claims of one buyer is reuse (escalated).
CLAIM_PHOTOS = {
    0: lambda: _sample("claim_genuine.jpg"),
    1: lambda: _scene(11),
    2: lambda: _scene(12),
    4: lambda: _scene(14),
    5: lambda: _scene(15),
    6: lambda: _scene(16),
    7: lambda: _scene(31),  # its own: the clip test films 17, live photos are 20 and 21
    8: lambda: _scene(19),
    9: lambda: _scene(23),
    10: lambda: _scene(25),
    11: lambda: _scene(34),
    12: lambda: _scene(51),
    13: lambda: _scene(61),
    14: lambda: _scene(71),
    15: lambda: _scene(72),
    16: lambda: _scene(78),
    17: lambda: _scene(81),
    18: lambda: _small(_scene(85)),
}


def _small(jpeg: bytes) -> bytes:
    """``jpeg`` shrunk to 200 x 266 px, upright: the narrowest claim photo taken
    (``claim_photo_min_side``)."""
    out = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).resize((200, 266)).save(out, "JPEG", quality=90)
    return out.getvalue()


def _claim_awaiting_capture(
    server: Server, keys: dict[str, str], n: int, damage_boxes: str = ""
) -> str:
    with server.client(keys["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={
                "order_id": keys[f"order{n}"],
                "type": "refund_only",
                "amount": "20",
                "damage_boxes": damage_boxes,
            },
            files=[("photos", ("old.jpg", _old_photo(CLAIM_PHOTOS[n]()), "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        wait_analysed(buyer, r.json()["id"])
    claim = assessed(server, r.json()["id"])
    assert claim["state"] == "awaiting_capture", claim["routing_reason"]
    return str(claim["id"])


def _capture_url(server: Server, keys: dict[str, str], claim_id: str) -> str:
    with server.client(keys["buyer"]) as buyer:
        r = buyer.post(f"/v1/claims/{claim_id}/capture-token")
        assert r.status_code == 201, r.text
        return server.url + r.json()["url"]


def _phone(camera: Path):  # type: ignore[no-untyped-def]
    _need(CHROMIUM)
    from playwright.sync_api import sync_playwright

    manager = sync_playwright()
    p = manager.__enter__()
    browser = p.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--no-sandbox",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ],
    )
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    return manager, browser, context.new_page()


@contextlib.contextmanager
def _phone_on(camera: Path) -> Iterator[Any]:
    """A phone's page whose camera films ``camera`` (a Y4M file); closed afterwards."""
    manager, browser, page = _phone(camera)
    try:
        yield page
    finally:
        browser.close()
        manager.__exit__(None, None, None)


def _until(page, expression: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``expression`` in the page until it is true (Playwright's wait_for_function evaluates
    a string inside the page, which the page's CSP, rightly, refuses)."""
    import time

    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        page.wait_for_timeout(100)


MARK = (0.3, 0.25, 0.7, 0.6)
"""The box the tests drag around the damage on the claim photo, as fractions of it."""


def _mark_damage(page, box: tuple[float, float, float, float] = MARK) -> None:  # type: ignore[no-untyped-def]
    """Drag ``box`` on the first filed photo, as a finger would."""
    _until(page, "document.querySelector('canvas.mark').dataset.loaded === 'yes'")
    page.locator("canvas.mark").first.scroll_into_view_if_needed()
    area = page.locator("canvas.mark").first.bounding_box()
    assert area is not None
    page.mouse.move(area["x"] + box[0] * area["width"], area["y"] + box[1] * area["height"])
    page.mouse.down()
    page.mouse.move(
        area["x"] + box[2] * area["width"], area["y"] + box[3] * area["height"], steps=5
    )
    page.mouse.up()


def _shoot(page) -> None:  # type: ignore[no-untyped-def]
    """Tap Take photo with the camera's picture on screen, as a buyer does."""
    page.evaluate("document.getElementById('camera').scrollIntoView({block: 'start'})")
    _until(
        page, "document.getElementById('capture-form').dataset.cameraInView !== 'no'"
    )  # the page learns that the camera is in view
    page.click("#shoot")


def _answered(page, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Wait for the server's answer to the photos the page sent: received, or refused."""
    _until(
        page,
        "Boolean(document.getElementById('capture-done') ||"
        " document.getElementById('capture-closed') ||"
        " !document.getElementById('capture-error').hidden)",
        timeout,
    )


def _take_two_and_send(page, url: str, answered: bool = True) -> None:  # type: ignore[no-untyped-def]
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("#shoot:not([hidden])", timeout=20000)
    page.evaluate("window.sameDocument = true")  # the answer comes without a reload
    _until(page, "document.getElementById('camera').videoWidth > 0")
    _shoot(page)
    _until(page, "document.querySelectorAll('#shots canvas').length === 1")
    page.wait_for_timeout(250)  # the fake camera's next frames (10 a second): a new exposure
    _shoot(page)
    _until(page, "document.querySelectorAll('#shots canvas').length === 2")
    # The photos go only with a box around the damage on the photo the claim was filed with,
    # or with the buyer's word that it cannot draw one.
    assert not page.is_enabled("#send")
    page.check("#no-mark")
    assert page.is_enabled("#send")
    page.uncheck("#no-mark")
    assert not page.is_enabled("#send")
    _mark_damage(page)
    assert page.is_enabled("#send")
    page.click("#send")
    if answered:
        _answered(page)
        assert page.evaluate("window.sameDocument === true")
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_live_capture_from_the_phone_camera_reopens_the_analysis(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 0)
    url = _capture_url(server, keys, claim_id)
    # The camera sees a scene none of the claim's photos or the shop's shows (whether it shows
    # the product is the analysis' question, asked next; the listing photo itself would be a
    # replay of the shop's photo).
    camera = write_y4m(_scene(13), tmp_path / "new.y4m")
    with _phone_on(camera) as page:
        _take_two_and_send(page, url)
        assert page.locator("#capture-done").is_visible(), page.content()
        # The link is spent: opening it again shows no form.
        page.goto(url)
        assert page.locator("#capture-closed").is_visible()
        assert page.locator("#capture-form").count() == 0
    with server.client(keys["buyer"]) as buyer:
        wait_analysed(buyer, claim_id)
    claim = assessed(server, claim_id)
    live = [p for p in claim["photos"] if p["live_capture"]]
    assert len(live) == 2
    assert claim["state"] != "awaiting_capture"
    accepted = [d for action, d in audit_entries(server, claim_id) if action == "capture.accepted"]
    assert accepted and accepted[0]["via"] == "page"
    assert len(accepted[0]["photos"]) == 2  # type: ignore[arg-type]
    # The box dragged on the claim photo is kept on that photo (the canvas is the photo at
    # the analysis size: a pixel or two of rounding), and named in the audit entry.
    [filed] = [p for p in claim["photos"] if not p["live_capture"]]
    assert filed["damage_box"] == pytest.approx(MARK, abs=0.01)
    assert list(accepted[0]["damage_boxes"].values()) == [filed["damage_box"]]  # type: ignore[union-attr]
    # The analysis compared the live photos with the claim photo inside that box.
    facts = [
        f["facts"]
        for image in claim["assessment"]["images"]
        for f in image["findings"]
        if f["code"].startswith("consistency.")
    ]
    assert facts and all(f["buyer_marked_damage_box"] == filed["damage_box"] for f in facts)


def test_the_claim_photo_shown_to_the_camera_is_refused_as_a_replay_and_recorded(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 1)
    url = _capture_url(server, keys, claim_id)
    camera = write_y4m(CLAIM_PHOTOS[1](), tmp_path / "replay.y4m")
    with _phone_on(camera) as page:
        _take_two_and_send(page, url)
        assert page.locator("#capture-error").is_visible(), page.content()
        assert "capture.replayed" in page.locator("#capture-error").inner_text()
        # The link stays usable for a real photo: the page stays as it was (no reload), the
        # refused photos go (they must be taken anew), the box drawn stays.
        assert page.evaluate("window.sameDocument === true")
        assert page.locator("#capture-form").is_visible()
        assert page.locator("#shots canvas").count() == 0
        assert page.locator("#shot-count").inner_text() == "0"
        drawn = json.loads(page.input_value("#damage-boxes"))
        assert drawn[0] == pytest.approx(MARK, abs=0.01)
        # Switching the language reloads the page: the box drawn is still there.
        page.click("#lang-en")
        page.wait_for_selector("#shoot:not([hidden])", timeout=20000)
        assert page.evaluate("window.sameDocument === undefined")
        assert json.loads(page.input_value("#damage-boxes")) == drawn
        assert page.is_disabled("#send")  # the box is there; photos are still to be taken
    claim = assessed(server, claim_id)
    assert claim["state"] == "awaiting_capture"
    assert not [p for p in claim["photos"] if p["live_capture"]]
    [refused] = [d for action, d in audit_entries(server, claim_id) if action == "capture.refused"]
    assert refused["code"] == "capture.replayed"
    assert str(refused["repeats"]).startswith("your claim photo")


def test_an_expired_or_forged_link_opens_nothing_and_takes_no_upload(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 2)
    url = _capture_url(server, keys, claim_id)
    token_id = url.rsplit("/", 1)[1].partition(".")[0]
    from refundlens.store import Database
    from refundlens.store.sql.models import CaptureToken

    database = Database(server.settings)
    with database.session() as session:
        row = session.get(CaptureToken, token_id)
        assert row is not None
        row.expires_at = NOW - dt.timedelta(minutes=1)
    database.dispose()
    photo = ("live.jpg", _sample("listing.jpg"), "image/jpeg")
    with httpx.Client(timeout=60) as client:
        assert client.get(url).status_code == 404
        assert client.get(url + "/photo/0").status_code == 404  # the photo goes with the link
        sent = client.post(url, files=[("photos", photo)], headers={"Origin": server.url})
        assert sent.status_code == 404 and 'id="capture-closed"' in sent.text
        forged = url[:-4] + "abcd"
        assert client.get(forged).status_code == 404
        assert client.get(server.url + "/web/capture/cap_%2E%2E%2Fv1").status_code == 404
    assert assessed(server, claim_id)["state"] == "awaiting_capture"


def test_a_claim_holds_at_most_capture_max_live_tokens_unused_links(
    shop: tuple[Server, dict[str, str]],
) -> None:
    # Each request for a link adds a token row: a claim holds capture_max_live_tokens (3)
    # unused, unexpired ones; once one expires (or is used), another may be issued.
    server, keys = shop
    most = server.settings.capture_max_live_tokens
    assert most == 3
    claim_id = _claim_awaiting_capture(server, keys, 7)
    urls = [_capture_url(server, keys, claim_id) for _ in range(most)]
    with server.client(keys["buyer"]) as buyer:
        refused = buyer.post(f"/v1/claims/{claim_id}/capture-token")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "capture.too_many_tokens"
    from refundlens.store import Database
    from refundlens.store.sql.models import CaptureToken

    database = Database(server.settings)
    with database.session() as session:
        rows = session.query(CaptureToken).filter(CaptureToken.claim_id == claim_id).all()
        assert len(rows) == most  # the refused request stored nothing
        row = session.get(CaptureToken, urls[0].rsplit("/", 1)[1].partition(".")[0])
        assert row is not None
        row.expires_at = NOW - dt.timedelta(minutes=1)
    database.dispose()
    assert _capture_url(server, keys, claim_id)  # an expired link no longer counts
    with httpx.Client(timeout=60) as client:
        assert client.get(urls[1]).status_code == 200  # the earlier links still open


def test_the_buyers_button_never_locks_it_out_of_a_live_capture(
    shop: tuple[Server, dict[str, str]],
) -> None:
    """The claim page's button makes a link the buyer never sees; three taps (a refused photo,
    a closed tab) held capture_max_live_tokens unused links and the button answered
    capture.too_many_tokens until the deadline (a walkthrough). The oldest unused link ends
    instead; every link still counts under capture_max_links_per_claim."""
    import re

    from .service_support import web_login

    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 13)
    pages = []
    with web_login(server, keys["buyer"]) as phone:
        for _ in range(server.settings.capture_max_live_tokens + 2):
            page = phone.get(f"/web/claims/{claim_id}")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf, page.text[:500]
            # The deadline as a clock time, to the minute, with the hours left beside it.
            assert re.search(
                r'id="buyer-deadline">\d{4}-\d\d-\d\d \d\d:\d\d (北京时间|UTC)', page.text
            )
            tapped = phone.post(
                f"/web/claims/{claim_id}/capture-link",
                data={"csrf": csrf[1]},
                headers={"Origin": server.url},
            )
            assert tapped.status_code == 303, tapped.text[:300]
            assert tapped.headers["location"].startswith("/web/capture/cap_")
            pages.append(server.url + tapped.headers["location"])
    with httpx.Client(timeout=60) as client:
        assert client.get(pages[-1]).status_code == 200  # the newest opens
        assert client.get(pages[0]).status_code != 200  # the oldest ended
    retired = [a for a, _ in audit_entries(server, claim_id) if a == "capture.token_retired"]
    assert len(retired) == 2


def test_a_photo_of_another_product_is_asked_for_a_live_capture_not_approved(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, keys = shop
    with server.client(keys["buyer"]) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": keys["order3"], "type": "refund_only", "amount": "20"},
            files=[("photos", ("other.jpg", _sample("claim_unrelated.jpg"), "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        wait_analysed(buyer, r.json()["id"])
    claim = assessed(server, r.json()["id"])
    codes = {f["code"] for f in claim["assessment"]["images"][0]["findings"]}
    assert "reference.no_match" in codes
    assert claim["assessment"]["claim"]["action"] == "approve"
    assert claim["state"] == "awaiting_capture"
    assert "no reference photo of the ordered product matches" in claim["routing_reason"]


def _evidence(server: Server, claim_id: str, kind: str) -> list[tuple[str, str]]:
    """(sha256, name) of the claim's evidence of ``kind``, from the database."""
    from sqlalchemy import select

    from refundlens.store import Database
    from refundlens.store.sql.models import Evidence

    database = Database(server.settings)
    with database.session() as session:
        rows = session.execute(
            select(Evidence).where(Evidence.claim_id == claim_id, Evidence.kind == kind)
        ).scalars()
        found = [(str(row.sha256), row.name) for row in rows]
    database.dispose()
    return found


def test_a_short_clip_recorded_on_the_page_is_sent_with_the_photos_and_kept(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 4)
    url = _capture_url(server, keys, claim_id)
    camera = write_y4m(_scene(17), tmp_path / "clip.y4m")
    errors: list[str] = []
    with _phone_on(camera) as page:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(url)
        page.wait_for_selector("#record:not([hidden])", timeout=20000)
        assert page.locator("#clip-row").is_visible()
        _until(page, "document.getElementById('camera').videoWidth > 0")
        page.click("#record")
        # It stops by itself after capture_clip_seconds (2 s here); sending waits for it.
        assert page.is_disabled("#send")
        _until(
            page,
            "document.getElementById('capture-status').textContent"
            " === document.getElementById('capture-form').dataset.recorded",
        )
        assert page.locator("#record").inner_text() == "重新录制短视频"
        _shoot(page)
        _until(page, "document.querySelectorAll('#shots canvas').length === 1")
        page.wait_for_timeout(250)  # the fake camera's next frames: a new exposure
        _shoot(page)
        _until(page, "document.querySelectorAll('#shots canvas').length === 2")
        _mark_damage(page)
        page.click("#send")
        _answered(page)
        assert page.locator("#capture-done").is_visible(), page.content()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    [(sha, name)] = _evidence(server, claim_id, "capture_clip")
    assert name == "clip.webm"
    from refundlens.store import BlobStore

    stored = BlobStore(f"{server.settings.data_dir}/blobs").get(sha)
    assert stored[:4] == b"\x1a\x45\xdf\xa3"  # EBML: Chromium's MediaRecorder writes webm
    [accepted] = [
        d for action, d in audit_entries(server, claim_id) if action == "capture.accepted"
    ]
    clip = accepted["clip"]
    assert isinstance(clip, dict) and clip["sha256"] == sha
    # OpenCV's FFmpeg reads Chromium's webm (VP8): timed by its frames, checked at some of them.
    assert 1.0 <= clip["duration_s"] <= 3.0 and clip["frames"] >= 5
    assert clip["checked_at_s"]
    assert len(accepted["photos"]) == 2  # type: ignore[arg-type]
    claim = assessed(server, claim_id)
    assert len([p for p in claim["photos"] if p["live_capture"]]) == 2
    # The filed photo was compared with the clip's sharpest frames too (capture_clip_views),
    # the live photos were not: two live views confirm nothing.
    filed, *live = claim["assessment"]["images"]
    [views] = [
        f["facts"]["views_compared"]
        for f in filed["findings"]
        if f["code"].startswith("consistency.")
    ]
    frames = [v for v in views if v["view"].startswith(f"clip.webm#{sha[:16]}@")]
    assert len(frames) == server.settings.capture_clip_views and all(
        v["live_capture"] for v in frames
    ), views
    for image in live:
        for f in image["findings"]:
            if f["code"].startswith("consistency."):
                assert not any(v["view"].startswith("clip") for v in f["facts"]["views_compared"])


def _clip_of(jpeg: bytes, path: Path) -> bytes:
    """Two seconds that film ``jpeg`` still (OpenCV's mp4v; the page records webm)."""
    rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB").resize((640, 480)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (640, 480))
    for _ in range(20):
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path.read_bytes()


def _post_capture(server: Server, url: str, clip: tuple[str, bytes, str]) -> httpx.Response:
    photos = [("photos", (f"live-{i}.jpg", _scene(20 + i), "image/jpeg")) for i in range(2)]
    with httpx.Client(timeout=120) as client:
        return client.post(
            url,
            files=[*photos, ("clip", clip)],
            headers={"Origin": server.url, "Accept-Language": "en"},
        )


def test_a_clip_over_its_size_limit_refuses_the_capture_and_stores_nothing(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 5)
    url = _capture_url(server, keys, claim_id)
    big = b"\x1a\x45\xdf\xa3" + bytes(CLIP_MAX_BYTES)
    sent = _post_capture(server, url, ("clip.webm", big, "video/webm"))
    assert sent.status_code == 400, sent.text
    assert "capture.clip_too_large" in sent.text and 'id="capture-form"' in sent.text
    assert "The clip is too large" in sent.text
    claim = assessed(server, claim_id)
    assert claim["state"] == "awaiting_capture"
    assert not [p for p in claim["photos"] if p["live_capture"]]
    assert not _evidence(server, claim_id, "capture_clip")
    assert "capture.accepted" not in {action for action, _ in audit_entries(server, claim_id)}
    # Nothing was spent: the same link takes the photos without the clip.
    with httpx.Client(timeout=120) as client:
        assert client.get(url).status_code == 200
        # The photo the buyer marks the damage on: the claim's own, while the link is usable.
        shown = client.get(url + "/photo/0")
        assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
        assert "no-store" in shown.headers["cache-control"]
        assert Image.open(io.BytesIO(shown.content)).size == (480, 480)
        assert client.get(url + "/photo/1").status_code == 404
        for odd in ("-1", "abc", "1.5", "0x0", "9" * 25, "%D9%A0"):  # the last: an Arabic 0
            refused = client.get(url + "/photo/" + odd)
            assert refused.status_code == 404 and not refused.content, odd
        # A box that is no box is refused with the page's words, and nothing is stored.
        photos = [("photos", (f"live-{i}.jpg", _scene(20 + i), "image/jpeg")) for i in range(2)]
        for boxes in (
            "[[0.5, 0.5, 0.2, 0.9]]",
            "[null, [0.1, 0.1, 0.2, 0.2]]",
            "x" * 5000,
            "[" * 1200 + "]" * 1200,
        ):
            sent = client.post(
                url,
                data={"damage_boxes": boxes},
                files=photos,
                headers={"Origin": server.url, "Accept-Language": "en"},
            )
            assert sent.status_code == 400, sent.text
            assert "claim.bad_damage_box" in sent.text and "Draw it again" in sent.text
    claim = assessed(server, claim_id)
    assert not [p for p in claim["photos"] if p["live_capture"]]
    assert [p["damage_box"] for p in claim["photos"]] == [None]


def test_a_clip_that_films_the_claim_photo_is_refused_as_a_replay_with_the_photos(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 6)
    url = _capture_url(server, keys, claim_id)
    clip = _clip_of(CLAIM_PHOTOS[6](), tmp_path / "replay.mp4")
    sent = _post_capture(server, url, ("clip.mp4", clip, "video/mp4"))
    assert sent.status_code == 400 and "capture.replayed" in sent.text, sent.text
    claim = assessed(server, claim_id)
    assert claim["state"] == "awaiting_capture"
    assert not [p for p in claim["photos"] if p["live_capture"]]
    assert not _evidence(server, claim_id, "capture_clip")
    [refused] = [d for action, d in audit_entries(server, claim_id) if action == "capture.refused"]
    assert refused["clip"] is True and refused["name"] == "clip.mp4"
    assert str(refused["repeats"]).startswith("your claim photo")


def test_a_platform_that_signs_its_app_captures_takes_none_on_the_page(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The page can sign nothing: anyone holding the link could post any gallery file to it.
    with running_server(
        tmp_path_factory.mktemp("signed"), capture_hmac_key="the-app-secret"
    ) as server:
        keys = _seed_shop(server, "shop-s", "buyer-s", 2)
        claim_id = _claim_awaiting_capture(server, keys, 1)
        with server.client(keys["buyer"]) as buyer:
            answer = buyer.post(f"/v1/claims/{claim_id}/capture-token").json()
            assert answer["url"] is None and answer["token"]
        url = f"{server.url}/web/capture/{answer['token']}"
        photo = ("live.jpg", _scene(40), "image/jpeg")
        with httpx.Client(timeout=60) as client:
            opened = client.get(url)
            sent = client.post(url, files=[("photos", photo)], headers={"Origin": server.url})
        assert opened.status_code == 403 and 'id="capture-app-only"' in opened.text
        assert sent.status_code == 403 and "capture.app_required" in sent.text
        assessed_claim = assessed(server, claim_id)
        assert assessed_claim["state"] == "awaiting_capture"
        assert not [p for p in assessed_claim["photos"] if p["live_capture"]]
        assert not [a for a, _ in audit_entries(server, claim_id) if a == "capture.accepted"]
        # The app signs the photo with the token it was given: a photo signed for an earlier
        # token (kept unsent) is refused; signed for this one, it is accepted and the audit
        # entry says the signature was bound to the token.
        from refundlens.cases import capture_hmac

        live = _scene(41)
        sha = hashlib.sha256(live).hexdigest()
        with server.client(keys["buyer"]) as buyer:
            for signed_for, status in (("cap_earlier.x", 400), (answer["token"], 201)):
                sent = buyer.post(
                    f"/v1/claims/{claim_id}/capture",
                    data={"token": answer["token"]},
                    files=[("photo", ("live.jpg", live, "image/jpeg"))],
                    headers={
                        "X-Capture-Signature": capture_hmac("the-app-secret", signed_for, sha)
                    },
                )
                assert sent.status_code == status, sent.text
        assert sent.status_code == 201
        [accepted] = [d for a, d in audit_entries(server, claim_id) if a == "capture.accepted"]
        assert accepted["signature"] == {"kind": "hmac", "bound_to_token": True}


def test_a_claim_photo_the_page_cannot_show_does_not_keep_the_buyer_from_sending(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    # The box is asked on the filed photo; where that photo does not load (a network error),
    # the buyer still sends the live photos, unboxed: a person then decides.
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 8)
    url = _capture_url(server, keys, claim_id)
    with _phone_on(write_y4m(_scene(22), tmp_path / "cam.y4m")) as page:
        page.route("**/photo/0", lambda route: route.abort())
        page.goto(url)
        page.wait_for_selector("#shoot:not([hidden])", timeout=20000)
        _until(page, "document.getElementById('camera').videoWidth > 0")
        _shoot(page)
        _until(page, "document.querySelectorAll('#shots canvas').length === 1")
        _until(page, "document.querySelector('canvas.mark').hidden === true")
        assert page.is_enabled("#send")
        page.click("#send")
        _answered(page)
        assert page.locator("#capture-done").is_visible(), page.content()
    claim = assessed(server, claim_id)
    assert [p["damage_box"] for p in claim["photos"]] == [None, None]
    assert claim["state"] == "awaiting_merchant", claim["routing_reason"]


def test_the_box_filed_with_the_claim_is_shown_and_clearing_it_removes_it(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 9, damage_boxes="[[0.2, 0.25, 0.5, 0.55]]")
    [filed] = assessed(server, claim_id)["photos"]
    assert filed["damage_box"] == [0.2, 0.25, 0.5, 0.55]
    url = _capture_url(server, keys, claim_id)
    with _phone_on(write_y4m(_scene(24), tmp_path / "cam.y4m")) as page:
        page.goto(url)
        page.wait_for_selector("#shoot:not([hidden])", timeout=20000)
        assert page.locator("#boxes-on-file").is_visible()
        assert (
            json.loads(page.get_attribute("canvas.mark", "data-box") or "") == filed["damage_box"]
        )
        _until(page, "document.getElementById('camera').videoWidth > 0")
        _shoot(page)
        _until(page, "document.querySelectorAll('#shots canvas').length === 1")
        assert page.is_enabled("#send")  # the box on file is a box drawn
        page.click("button.clear-mark")
        assert page.is_disabled("#send")  # cleared: a box, or "cannot mark", is asked again
        page.check("#no-mark")
        assert page.input_value("#damage-boxes") == "[[]]"  # [] removes; null would keep it
        page.click("#send")
        _answered(page)
        assert page.locator("#capture-done").is_visible(), page.content()
    claim = assessed(server, claim_id)
    assert [p["damage_box"] for p in claim["photos"]] == [None, None]
    [accepted] = [
        d for action, d in audit_entries(server, claim_id) if action == "capture.accepted"
    ]
    assert accepted["damage_boxes"] == {filed["sha256"]: None}


def test_without_a_camera_api_the_phone_camera_field_takes_one_photo_at_a_time_and_sends_all(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    # An in-app browser without getUserMedia: the field opens the phone's camera app, which
    # gives one photo each time; the page keeps each and sends them together.
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 10)
    url = _capture_url(server, keys, claim_id)
    shots = [tmp_path / f"camera-app-{n}.jpg" for n in (1, 2, 3, 4)]
    for n, path in enumerate(shots):
        path.write_bytes(_scene(27 + n))
    with _phone_on(write_y4m(_scene(26), tmp_path / "cam.y4m")) as page:
        page.add_init_script(
            "Object.defineProperty(navigator, 'mediaDevices', {value: undefined});"
        )
        page.goto(url)
        page.wait_for_selector("#photos:not([hidden])", timeout=20000)
        assert page.locator("#shoot").is_hidden()
        assert page.get_attribute("#photos", "capture") == "environment"
        _mark_damage(page)
        page.set_input_files("#photos", str(shots[0]))
        _until(page, "document.querySelectorAll('#shots canvas').length === 1")
        assert page.input_value("#photos") == ""  # offered again for the next photo
        page.set_input_files("#photos", str(shots[1]))
        _until(page, "document.querySelectorAll('#shots canvas').length === 2")
        assert page.locator("#shot-count").inner_text() == "2"
        # Never more than the page asks for: a third and a fourth at once keep one.
        page.set_input_files("#photos", [str(shots[2]), str(shots[3])])
        _until(page, "document.querySelectorAll('#shots canvas').length === 3")
        page.wait_for_timeout(300)
        assert page.locator("#shots canvas").count() == 3
        assert page.locator("#photos").is_hidden()
        page.click("#send")
        _answered(page)
        assert page.locator("#capture-done").is_visible(), page.content()
    with server.client(keys["buyer"]) as buyer:
        wait_analysed(buyer, claim_id)
    claim = assessed(server, claim_id)
    assert len([p for p in claim["photos"] if p["live_capture"]]) == 3
    [accepted] = [d for a, d in audit_entries(server, claim_id) if a == "capture.accepted"]
    assert accepted["via"] == "page" and len(accepted["photos"]) == 3  # type: ignore[arg-type]


def test_captures_wait_for_a_free_slot_and_one_at_a_time_per_link_without_spending_it(
    shop: tuple[Server, dict[str, str]],
) -> None:
    # Anonymous links cannot make the API read and decode pictures without bound: past
    # capture_decode_slots the answer is 503 service.busy at once, and a link whose photos are
    # still being checked takes no second upload (409). Neither counts against the link.
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 11)
    url = _capture_url(server, keys, claim_id)
    runtime = server.app.state.runtime
    photos = [("photos", (f"live-{i}.jpg", _scene(35 + i), "image/jpeg")) for i in range(2)]

    def send() -> httpx.Response:
        with httpx.Client(timeout=120) as client:
            return client.post(
                url, files=photos, headers={"Origin": server.url, "Accept-Language": "en"}
            )

    held = 0
    while runtime.capture_work.acquire(blocking=False):
        held += 1
    assert held == server.settings.capture_decode_slots
    try:
        busy = send()
    finally:
        for _ in range(held):
            runtime.capture_work.release()
    assert busy.status_code == 503 and "(service.busy)" in busy.text
    assert busy.headers["Retry-After"] == str(server.settings.busy_retry_after_seconds)
    link = url.rsplit("/", 1)[1].partition(".")[0]
    runtime.captures_in_flight.add(link)
    try:
        twice = send()
    finally:
        runtime.captures_in_flight.discard(link)
    assert twice.status_code == 409 and "(capture.in_progress)" in twice.text
    assert not [a for a, _ in audit_entries(server, claim_id) if a == "capture.refused"]
    taken = send()
    assert taken.status_code == 201, taken.text
    assert not runtime.captures_in_flight
    with server.client(keys["buyer"]) as buyer:
        wait_analysed(buyer, claim_id)
    assert len([p for p in assessed(server, claim_id)["photos"] if p["live_capture"]]) == 2


def test_a_capture_refused_as_a_replay_of_the_claims_photo_looks_nothing_up_on_file(
    shop: tuple[Server, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A probe photo sent beside the claim's own photo: the capture is refused for the claim's
    # photo, and the probe was never looked up among other claims' pictures and the bank (its
    # answer, and its time, would have differed with what is on file).
    from refundlens.service import live_capture

    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 12)
    url = _capture_url(server, keys, claim_id)
    looked_up: list[object] = []

    def recorded(*args: object, **kwargs: object) -> None:
        looked_up.append(args)

    monkeypatch.setattr(live_capture, "repeats_on_file", recorded)
    photos = [
        ("photos", ("probe.jpg", _scene(52), "image/jpeg")),
        ("photos", ("again.jpg", CLAIM_PHOTOS[12](), "image/jpeg")),
    ]
    with httpx.Client(timeout=120) as client:
        sent = client.post(
            url, files=photos, headers={"Origin": server.url, "Accept-Language": "en"}
        )
    assert sent.status_code == 400 and "capture.replayed" in sent.text, sent.text
    assert looked_up == []


def test_a_photo_too_large_for_the_capture_page_says_how_to_take_it_again() -> None:
    """A 108 MP photo was answered "the photos could not be used", as any other refusal: the
    page now says what the buyer can do (a normal resolution), in its language."""
    from starlette.requests import Request

    from refundlens.errors import MediaError
    from refundlens.service.web.capture import _message

    def asked(language: str) -> Request:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/web/capture/x",
            "query_string": f"lang={language}".encode(),
            "headers": [],
        }
        return Request(scope)

    for code in ("media.too_many_pixels", "media.too_large", "media.decompression_bomb"):
        said = _message(asked("zh"), MediaError(code, "too big"))
        assert "1200 万像素" in said and code not in said, said  # the page sets the code apart
        assert "12 MP" in _message(asked("en"), MediaError(code, "too big"))
    other = _message(asked("en"), MediaError("media.corrupt", "bad"))
    assert other.startswith("The photos could not be used.")


def test_a_refusal_that_says_nothing_against_the_photos_keeps_them_to_send_again(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    # "Busy, send again" and a lost connection once made the buyer take every photo anew.
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 14)
    url = _capture_url(server, keys, claim_id)
    busy = {
        "outcome": "refused",
        "message": "服务繁忙 (service.busy)",
        "code": "service.busy",
        "keep_photos": True,
        "keep_clip": True,
    }
    too_large = {"error": {"code": "request.too_large", "message": "over the limit"}}
    answers = iter(["hold", "offline", "too_large", "through"])
    held = []

    def once(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.method != "POST":
            route.continue_()
            return
        what = next(answers)
        if what == "hold":
            held.append(route)  # answered later: the upload is on its way meanwhile
        elif what == "offline":
            route.abort("internetdisconnected")
        elif what == "too_large":
            route.fulfill(status=413, content_type="application/json", body=json.dumps(too_large))
        else:
            route.continue_()

    with _phone_on(write_y4m(_scene(73), tmp_path / "cam.y4m")) as page:
        page.route(url, once)
        _take_two_and_send(page, url, answered=False)
        _until(page, "document.getElementById('send-progress-row').hidden === false")
        # While it goes, nothing sends it twice: the box and "cannot mark" are locked too.
        assert page.is_disabled("#send") and page.is_disabled("#no-mark")
        _mark_damage(page, (0.1, 0.1, 0.2, 0.2))
        assert page.is_disabled("#send")
        assert len(held) == 1
        held[0].fulfill(status=503, content_type="application/json", body=json.dumps(busy))
        _answered(page)
        assert "service.busy" in page.locator("#capture-error").inner_text()
        assert page.locator("#shots canvas").count() == 2  # kept
        assert page.is_enabled("#send") and page.is_enabled("#no-mark")
        assert page.locator("#capture-status").inner_text() != page.get_attribute(
            "#capture-form", "data-sending"
        )
        page.click("#send")
        _until(page, "document.getElementById('capture-error').textContent.indexOf('服务繁忙') < 0")
        assert page.locator("#capture-error").inner_text() == page.get_attribute(
            "#capture-form", "data-offline"
        )
        assert page.locator("#shots canvas").count() == 2
        assert page.locator("#send-progress-row").is_hidden()
        # Over the upload limit, refused before the page's route: the photos go.
        page.click("#send")
        _until(
            page,
            "document.getElementById('capture-error').textContent.indexOf('request.too_large') >= 0",
        )
        assert page.locator("#shots canvas").count() == 0 and page.is_disabled("#send")
        _shoot(page)
        _until(page, "document.querySelectorAll('#shots canvas').length === 1")
        page.click("#send")
        _until(page, "Boolean(document.getElementById('capture-done'))", 60)
        assert page.locator("#capture-form").is_hidden()
        assert page.locator("#capture-error").is_hidden()
        # Opened from a message, with no session: no link into pages that would ask for a
        # key ("Back to your claim" led to the API-key sign-in: a buyer's walkthrough).
        assert page.locator("#back-to-claim").count() == 0
        assert "关闭此页面" in page.locator("#capture-close-note").inner_text()
    claim = assessed(server, claim_id)
    assert len([p for p in claim["photos"] if p["live_capture"]]) == 1


def test_the_script_reads_the_answer_as_json_and_a_form_gets_the_page(
    shop: tuple[Server, dict[str, str]],
) -> None:
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 15)
    url = _capture_url(server, keys, claim_id)
    asks = {"Origin": server.url, "Accept": "application/json"}
    replay = ("live.jpg", CLAIM_PHOTOS[15](), "image/jpeg")
    with httpx.Client(timeout=120) as client:
        page = client.get(url)
        assert page.status_code == 200
        # The deadline is a clock time in the shop's zone, not "24.0 h".
        assert re.search(
            r'id="capture-deadline">[^<]*\d{4}-\d\d-\d\d \d\d:\d\d (北京时间|UTC)', page.text
        )
        foreign = client.post(
            url,
            files=[("photos", ("live.jpg", _scene(74), "image/jpeg"))],
            headers={"Origin": "https://evil.example", "Accept": "application/json"},
        )
        assert foreign.status_code == 403
        assert foreign.json()["code"] == "request.foreign_origin"
        bad_box = client.post(
            url,
            files=[("photos", ("live.jpg", _scene(74), "image/jpeg"))],
            data={"damage_boxes": "[[0.9, 0.9, 0.1]]"},
            headers=asks,
        )
        assert bad_box.status_code == 400
        assert bad_box.json()["code"] == "claim.bad_damage_box"
        assert bad_box.json()["outcome"] == "refused" and bad_box.json()["keep_photos"] is True
        # A box that could not be read is not counted against the link: no count is shown.
        assert "重试" not in bad_box.json()["message"]
        refused = client.post(url, files=[("photos", replay)], headers=asks)
        assert refused.status_code == 400, refused.text
        answer = refused.json()
        assert answer["outcome"] == "refused" and answer["code"] == "capture.replayed"
        assert answer["keep_photos"] is False and answer["message"].startswith("这不是新拍的照片")
        # A refusal counted on the link says how many more it takes (5 by default).
        assert answer["message"].endswith("此链接还可重试 4 次。"), answer["message"]
        again = client.post(url, files=[("photos", replay)], headers={"Origin": server.url})
        assert again.status_code == 400 and "此链接还可重试 3 次。" in again.text
        taken = client.post(
            url, files=[("photos", ("live.jpg", _scene(75), "image/jpeg"))], headers=asks
        )
        assert taken.status_code == 201, taken.text
        assert taken.json() == {
            "outcome": "received",
            "message": None,
            "code": None,
            "keep_photos": False,
            "keep_clip": False,
        }
        spent = client.post(
            url, files=[("photos", ("live.jpg", _scene(76), "image/jpeg"))], headers=asks
        )
        assert spent.status_code == 404 and spent.json()["outcome"] == "closed"
        # Without the script's Accept, a form gets the page, as before.
        form = client.post(
            url,
            files=[("photos", ("live.jpg", _scene(77), "image/jpeg"))],
            headers={"Origin": server.url},
        )
        assert form.status_code == 404 and 'id="capture-closed"' in form.text


def test_a_phone_that_drops_its_upload_midway_is_no_server_error(
    shop: tuple[Server, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    # A buyer's phone lost its network mid-upload: the server logged a 500 with a traceback.
    import logging
    import socket
    import time
    from urllib.parse import urlsplit

    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 16)
    url = urlsplit(_capture_url(server, keys, claim_id))
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nOrigin: {server.url}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 900000\r\n\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="photos"; filename="a.jpg"\r\n\r\n'
    with caplog.at_level(logging.INFO):
        with socket.create_connection((url.hostname, url.port)) as sock:
            sock.sendall(head.encode() + part + b"\xff" * 20000)
            time.sleep(0.5)
        deadline = time.time() + 10
        while time.time() < deadline and "went away" not in caplog.text:
            time.sleep(0.1)
    assert "the client went away before its upload ended" in caplog.text
    assert url.path not in caplog.text  # the route's template, never the link
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    # The link was not spent: the buyer sends again.
    with httpx.Client(timeout=60) as client:
        assert client.get(f"{url.scheme}://{url.netloc}{url.path}").status_code == 200


def test_the_camera_button_is_in_reach_takes_no_blind_photo_and_send_says_what_it_waits_for(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    # A walkthrough: held sideways, the button sat below the camera, out of sight; a photo was
    # taken blind with the camera below the screen's edge; a blurred shot could not be taken
    # out; Send stayed grey beside "enough photos: send them" with no word of the box it
    # waited for; switching the language dropped the photos without a word.
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 17)
    url = _capture_url(server, keys, claim_id)
    with _phone_on(write_y4m(_scene(79), tmp_path / "cam.y4m")) as page:
        page.set_viewport_size({"width": 844, "height": 390})
        page.goto(url)
        page.wait_for_selector("#shoot:not([hidden])", timeout=20000)
        _until(page, "document.getElementById('camera').videoWidth > 0")
        page.evaluate("document.getElementById('camera').scrollIntoView({block: 'start'})")
        _until(page, "document.getElementById('capture-form').dataset.cameraInView !== 'no'")
        area = page.locator("#shoot").bounding_box()
        assert area is not None and area["y"] + area["height"] <= 390, area
        page.mouse.click(area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
        _until(page, "document.querySelectorAll('#shots canvas').length === 1")
        # A tap with the camera off screen brings it on screen and takes nothing.
        page.evaluate("window.scrollTo(0, 0)")
        _until(page, "document.getElementById('capture-form').dataset.cameraInView === 'no'")
        page.evaluate("document.getElementById('shoot').click()")
        _until(page, "document.getElementById('capture-form').dataset.cameraInView === 'yes'")
        page.wait_for_timeout(500)  # a photo taken would be drawn by now
        assert page.locator("#shots canvas").count() == 1
        assert page.locator("#capture-status").inner_text() == page.get_attribute(
            "#capture-form", "data-to-camera"
        )
        _until(page, "document.getElementById('camera').getBoundingClientRect().top < 100")
        # No box yet: Send says what it waits for, and where.
        assert page.is_disabled("#send") and page.locator("#send-hint").is_visible()
        assert page.get_attribute("#send-hint a", "href") == "#mark-area"
        _shoot(page)
        _until(page, "document.querySelectorAll('#shots canvas').length === 2")
        assert page.locator("#capture-status").inner_text() == page.get_attribute(
            "#capture-form", "data-need-mark"
        )
        # A shot taken out goes.
        page.locator(".shot-tile button.remove-shot").first.click()
        assert page.locator("#shots canvas").count() == 1
        assert page.locator("#shot-count").inner_text() == "1"
        _mark_damage(page)
        assert page.is_enabled("#send") and page.locator("#send-hint").is_hidden()
        # The language switch asks first when it would drop photos.
        asked: list[str] = []

        def answer(dialog, accept: bool) -> None:  # type: ignore[no-untyped-def]
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        page.once("dialog", lambda dialog: answer(dialog, False))
        page.click("#lang-en")
        assert asked == [page.get_attribute("#capture-form", "data-lang-loses")]
        assert page.evaluate("window.location.search") == ""  # stayed
        assert page.locator("#shots canvas").count() == 1
        page.once("dialog", lambda dialog: answer(dialog, True))
        page.click("#lang-en")
        page.wait_for_selector("html[lang=en]")
        assert len(asked) == 2
        assert json.loads(page.input_value("#damage-boxes"))[0] == pytest.approx(MARK, abs=0.01)


def test_a_buyers_list_puts_the_claims_waiting_for_its_capture_first_then_the_newest(
    tmp_path: Path,
) -> None:
    # Sorted by deadlines the buyer cannot see (the shop's, a reviewer's), its list read as
    # unsorted (a buyer's walkthrough): its own deadline first, then the newest claim. Here the
    # buyer's window (72 h) ends after the shop's (48 h), which it is not shown.
    with running_server(tmp_path, capture_window_hours=72.0) as server:
        keys = _seed_shop(server, "shop-a", "buyer-1", 2)
        waiting = _claim_awaiting_capture(server, keys, 0)
        with server.client(keys["buyer"]) as buyer:
            r = buyer.post(
                "/v1/claims",
                data={"order_id": keys["order1"], "type": "refund_only", "amount": "20"},
                files=[("photos", ("copy.jpg", _sample("claim_forged.jpg"), "image/jpeg"))],
            )
            assert r.status_code == 201, r.text
            wait_analysed(buyer, r.json()["id"])
            listed = buyer.get("/v1/claims").json()["items"]
        states = {c["id"]: c["state"] for c in listed}
        assert states[r.json()["id"]] == "awaiting_merchant", states
        with web_login(server, keys["buyer"]) as page:
            html = page.get("/web/queue").text
    shown = re.findall(r'class="claim-link">([^<]+)<', html)
    assert shown == [waiting, r.json()["id"]], (shown, states)


def test_a_small_photo_is_drawn_large_enough_to_box_the_damage_with_a_thumb(
    shop: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    # A 100 x 68 px photo gave a 102 x 70 px area to drag a box on (a buyer's walkthrough).
    server, keys = shop
    claim_id = _claim_awaiting_capture(server, keys, 18)
    url = _capture_url(server, keys, claim_id)
    with _phone_on(write_y4m(_scene(86), tmp_path / "cam.y4m")) as page:
        page.goto(url)
        _until(page, "document.querySelector('canvas.mark').width > 0")
        drawn = page.locator("canvas.mark").bounding_box()
        assert drawn is not None and drawn["width"] >= 250, drawn  # not its own 200 px
        # Drawn to scale: the photo's own shape, not stretched.
        assert abs(drawn["height"] / drawn["width"] - 266 / 200) < 0.02, drawn
