"""The evidence report as a person reads it (issue 19): readable facts, times with zones, and the
PDF checked page by page with poppler (pdftotext word boxes, pdftoppm pictures).

The PDF tests render the report of a claim a reviewer rejected with a reason; page pictures land
in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from refundlens.rendering.readable import (
    FactRow,
    breakable,
    fact_rows,
    hours,
    money,
    number,
    when,
    zone,
)

from .service_support import (
    Server,
    add_tenants,
    file_claim,
    listed_sku,
    order_for,
    running_server,
    sample,
    wait_analysed,
    web_login,
)

CHROMIUM = os.environ.get("REFUNDLENS_CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
REASON = "照片是商品主图加上的裂纹"
REPR = re.compile(r"[{}\[\]']|\b(True|False|None)\b")
"""What a Python value leaves in text: braces, brackets, quotes around keys, True/False/None."""


# --- readable values ----------------------------------------------------------------------


def test_facts_become_rows_with_units_and_no_python_value() -> None:
    facts = {
        "transform": {"scale": 1.096, "rotation_deg": -148.4, "mirrored": False},
        "damage_repeat_offset_px": [317, 344],
        "edited_percent_of_object": 3.84,
        "noise_level": 4.23,
        "double_jpeg_periods": {},
        "matches": [
            {"claim": "clm_0123456789abcdef0123", "distance": 12, "same_buyer": True},
            {"claim": "clm_fedcba9876543210fedc", "distance": 30, "same_buyer": False},
        ],
        "seconds": 2.5,
        "region": None,
        "reference_sha256": "ab" * 32,
        "inliers": 1234,
    }
    rows = fact_rows(facts, {"yes": "是", "no": "否", "none": "无"}.get)
    table = {row.label: row for row in rows}
    assert table["transform › scale"] == FactRow("transform › scale", "1.096", "", False)
    assert table["transform › rotation"].value == "-148.4"
    assert table["transform › rotation"].unit == "°"
    assert table["transform › mirrored"].value == "否"
    assert table["damage repeat offset"] == FactRow("damage repeat offset", "317, 344", "px", False)
    assert table["edited percent of object"].unit == "%"
    assert table["noise level"].unit == "grey levels"
    assert table["double jpeg periods"].value == "无"
    assert table["matches 1 › claim"].mono
    assert table["matches 2 › same buyer"].value == "否"
    assert table["matches 1 › distance"].unit == "bits"
    assert table["seconds"] == FactRow("seconds", "2.5", "s", False)
    assert table["region"].value == "—"
    assert table["reference sha256"].mono
    assert table["inliers"].value == "1,234"
    for row in rows:
        assert not REPR.search(row.label + row.value), row


def test_numbers_amounts_and_times_read_as_a_person_writes_them() -> None:
    assert number(0.95780) == "0.9578"
    assert number(10.0) == "10"
    assert number(-0.0) == "0"
    assert number(0.00001234) == "1.23e-05"
    assert money(120) == "120.00"
    assert money(3000, "CNY") == "3,000.00 CNY"
    naive_utc = dt.datetime(2026, 12, 4, 10, 39, 55, 782312)
    assert when(naive_utc) == "2026-12-04 10:39:55 UTC"
    assert when(naive_utc, zone("Asia/Shanghai")) == "2026-12-04 18:39:55 UTC+08:00"
    assert when("2026-11-01T08:00:00+08:00", dt.UTC, seconds=False) == "2026-11-01 00:00 UTC"
    assert when(None) == "—"
    assert zone("Nowhere/Atlantis") is dt.UTC


def test_pictures_and_photos_go_with_their_image_even_when_two_photos_share_a_name() -> None:
    """A buyer names files, and the capture page names every live photo live-1.jpg: a forged
    photo filed as live-1.jpg must not borrow the live photo's hash or pictures in the report."""
    from refundlens.report import evidence
    from refundlens.store.interface import Claim, Order, Sku

    photos = [
        {"name": "live-1.jpg", "sha256": "f" * 64, "live": False},  # filed, the forged one
        {"name": "live-1.jpg", "sha256": "1" * 64, "live": True},  # the live capture
    ]
    images = [
        {"path": "live-1.jpg", "sha256": "f" * 64, "risk": 3.0, "findings": []},
        {"path": "live-1.jpg", "sha256": "1" * 64, "risk": -1.0, "findings": []},
    ]
    pictures = [
        {"image": "live-1.jpg", "image_index": 1, "name": "heatmap", "sha256": "b" * 64},
        {"image": "live-1.jpg", "image_index": 0, "name": "overlay", "sha256": "a" * 64},
    ]
    case = evidence.CaseFile(
        Claim(id="clm_1"), Order(id="ord_1"), Sku(id="sku_1"), [], {"images": images},
        [], [], [], photos, pictures, [],
    )  # fmt: skip
    shown = evidence._images_for_report(case)
    assert [i["photo"]["sha256"] for i in shown] == ["f" * 64, "1" * 64]
    assert [[p["sha256"] for p in i["wide"] + i["pictures"]] for i in shown] == [
        ["a" * 64],
        ["b" * 64],
    ]
    summary = evidence._summary_picture(case)
    assert summary is not None and summary["sha256"] == "a" * 64  # the riskiest image's overlay
    assert summary["outlined"] is False  # no mask: the caption must not claim an outline
    assert summary["aligned"] is False  # no aligned reference: nor a merchant's photo beside it
    case.pictures.append(
        {"image": "live-1.jpg", "image_index": 0, "name": "mask", "sha256": "c" * 64}
    )
    assert evidence._summary_picture(case)["outlined"] is True  # type: ignore[index]
    case.pictures = []
    assert evidence._summary_picture(case)["sha256"] == "f" * 64  # ... else its own photo


def test_page_one_shows_the_picture_of_the_photo_its_sentence_names() -> None:
    """A walkthrough found page one's sentence about one photo over another photo's overlay:
    the riskiest image had no overlay, so the next one's was shown."""
    from refundlens.report import evidence
    from refundlens.store.interface import Claim, Order, Sku

    finding = {"code": "reference.same_item_new_photo", "strength": -1.0, "facts": {}}
    images = [
        {"path": "genuine.jpg", "sha256": "1" * 64, "risk": 0.5, "findings": [finding]},
        {"path": "live.jpg", "sha256": "2" * 64, "risk": 0.1, "findings": [finding]},
    ]
    photos = [
        {"name": "genuine.jpg", "sha256": "1" * 64, "live": False},
        {"name": "live.jpg", "sha256": "2" * 64, "live": True},
    ]
    overlay = {"image": "live.jpg", "image_index": 1, "name": "overlay", "sha256": "a" * 64}
    case = evidence.CaseFile(
        Claim(id="clm_1"), Order(id="ord_1"), Sku(id="sku_1"), [], {"images": images},
        [], [], [], photos, [overlay], [],
    )  # fmt: skip
    key = evidence._key_finding(case)
    summary = evidence._summary_picture(case)
    assert key is not None and key[0] == "genuine.jpg"
    assert summary is not None and summary["name"] == "claim" and summary["sha256"] == "1" * 64


def test_a_shops_report_names_no_claim_at_another_shop_and_no_buyer_record_from_a_bank() -> None:
    from refundlens.report import report_for_shop

    elsewhere = {"claim": "clm_elsewhere", "same_buyer": True, "same_merchant": False,
                 "at": "2026-11-30T10:00:00", "distance": 4}  # fmt: skip
    here = {"claim": "clm_here", "same_buyer": False, "same_merchant": True,
            "at": "2026-11-29T10:00:00", "distance": 9}  # fmt: skip
    video = {**elsewhere, "video_sha256": "a" * 64, "earlier_video_sha256": "b" * 64,
             "query_match_percent": 92.0, "earlier_match_percent": 80.0, "frames": 25}  # fmt: skip
    bank = {"bank": "local", "signer": "platform", "confirmed_at": "2026-11-01",
            "codes": ["reuse.buyer_history"], "same_buyer": True, "distance": 2}  # fmt: skip
    said = {"en": "sent before: claim clm_elsewhere", "zh": "理赔单 clm_elsewhere"}

    def finding(code: str, facts: dict[str, object]) -> dict[str, object]:
        # A bank's reason names the bank, never a claim (detectors/reuse.py).
        reason = {"en": "in the bank", "zh": "在伪造库中"} if "bank" in code else said
        return {"code": code, "strength": 4.0, "confidence": 0.9, "reason": reason,
                "facts": facts, "region": None}  # fmt: skip

    report = {
        "images": [
            {
                "findings": [
                    finding("reuse.seen_before", {"matches": [elsewhere, here], "distance": 4}),
                    finding("reuse.video_seen_before", {"matches": [video]}),
                    finding("reuse.bank_match", {"matches": [bank], "bank": "local"}),
                    finding("reuse.seen_before", {"matches": [here], "distance": 9}),
                ]
            }
        ]
    }
    seen, clip, banked, own = report_for_shop(report)["images"][0]["findings"]
    for f in (seen, clip, banked):
        text = str(f)
        assert "clm_elsewhere" not in text and "same_buyer" not in str(f["facts"]["matches"][0])
        assert "2026-11-30" not in text and "b" * 64 not in text and "buyer_history" not in text
    assert seen["facts"]["matches"] == [{"distance": 4, "at_another_shop": True}, here]
    assert "another shop" in seen["reason"]["en"] and "其他店铺" in seen["reason"]["zh"]
    assert "92%" in clip["reason"]["en"] and clip["facts"]["matches"][0]["frames"] == 25
    assert banked["facts"]["matches"] == [
        {"bank": "local", "signer": "platform", "confirmed_at": "2026-11-01", "distance": 2}
    ]
    # A match at the shop itself is the shop's: named, as found.
    assert own == report["images"][0]["findings"][3]
    # Beside one at another shop, named too, but "who" (read from both) is said again
    # without it.
    mixed = finding("reuse.seen_before", {"matches": [here, elsewhere], "distance": 9})
    (shown,) = report_for_shop({"images": [{"findings": [mixed]}]})["images"][0]["findings"]
    assert "clm_here" in shown["reason"]["en"] and "another shop" in shown["reason"]["en"]
    assert "clm_elsewhere" not in str(shown) and "buyer" not in shown["reason"]["en"]
    # Codes and strengths are kept: they moved the risk the shop sees.
    assert [f["strength"] for f in (seen, clip, banked, own)] == [4.0] * 4


def test_codes_may_wrap_only_between_their_parts_and_stay_escaped() -> None:
    assert str(breakable("reference.near_copy_unresolved")) == (
        "reference.<wbr>near_<wbr>copy_<wbr>unresolved"
    )
    assert str(breakable("<img src=x onerror=alert(1)>.x")) == (
        "&lt;img src=x onerror=alert(1)&gt;.<wbr>x"
    )


# --- the PDF, page by page -----------------------------------------------------------------


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path(tool).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {tool} is missing: `make system-deps` installs it")
        pytest.skip(f"{tool} not installed: run `make system-deps`")


def _sample(name: str) -> bytes:
    return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()


def _packing_video() -> bytes:
    """A one-second MP4 of the listing photo, as a merchant's packing video."""
    import cv2
    import numpy as np

    frame = cv2.imdecode(np.frombuffer(_sample("listing.jpg"), np.uint8), cv2.IMREAD_COLOR)
    frame = cv2.resize(frame, (320, 240))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "packing.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (320, 240))
        for _ in range(10):
            writer.write(frame)
        writer.release()
        return path.read_bytes()


@pytest.fixture(scope="module")
def rejected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A claim made from the listing photo, answered by the merchant with a statement and a
    packing video, and rejected by a reviewer with a reason."""
    with running_server(tmp_path_factory.mktemp("report")) as server:
        add_tenants(server, "shop-a")
        merchant_key = server.key("merchant", "shop-a")
        order = order_for(
            server,
            merchant_key,
            listed_sku(server, merchant_key),
            "buyer-1",
            "o-1",
            shipped_at="2026-11-01T00:00:00+00:00",
            delivered_at="2026-11-03T00:00:00+00:00",
        )
        buyer_key = server.key("buyer", subject="buyer-1")
        claim = file_claim(server, buyer_key, order, amount="120", reason="杯子碎了")["id"]
        with server.client(buyer_key) as buyer:
            wait_analysed(buyer, claim)
        with server.client(merchant_key) as merchant:
            for data, files in (
                ({"kind": "statement", "statement": "发货前完好，有打包视频"}, None),
                (
                    {"kind": "packing_video"},
                    [("file", ("packing.mp4", _packing_video(), "video/mp4"))],
                ),
                # The listing photo sent again (one file, two parts: listed once on page 1)
                # and another photo of the item.
                (
                    {"kind": "reference_photo"},
                    [("file", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
                ),
                (
                    {"kind": "reference_photo"},
                    [("file", ("shelf.jpg", _sample("claim_genuine.jpg"), "image/jpeg"))],
                ),
            ):
                answer = merchant.post(f"/v1/claims/{claim}/evidence", data=data, files=files)
                assert answer.status_code == 201, answer.text
        with server.client(server.key("reviewer", assign=["shop-a"])) as reviewer:
            decided = reviewer.post(
                f"/v1/claims/{claim}/decision", json={"decision": "reject", "reason": REASON}
            )
            assert decided.status_code == 200, decided.text
        yield server, claim


@pytest.fixture(scope="module")
def undecided(rejected: tuple[Server, str]) -> str:
    """Another buyer's claim on the same shop that the merchant has not answered yet, its
    reason one unbroken word."""
    server, _ = rejected
    merchant_key = server.key("merchant", "shop-a")
    sku = listed_sku(server, merchant_key, "cup")
    order = order_for(server, merchant_key, sku, "buyer-2", "o-2", amount=80)
    buyer_key = server.key("buyer", subject="buyer-2")
    claim = file_claim(server, buyer_key, order, amount="80", reason=LONG)["id"]
    with server.client(buyer_key) as buyer:
        wait_analysed(buyer, claim)
    return str(claim)


LONG = "碎" + "x" * 300
"""A buyer's reason with no place to break: Chromium shrank the whole page to fit it."""


def _cli(server: Server, *args: str) -> str:
    env = {**os.environ, "REFUNDLENS_DATA_DIR": server.settings.data_dir}
    result = subprocess.run(
        [sys.executable, "-m", "refundlens", "report", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@dataclass
class Page:
    number: int
    width: float
    height: float
    words: list[tuple[float, float, float, float, str]]
    lines: list[str]
    text: str


def _pages(pdf: Path) -> list[Page]:
    """Every page's size, word boxes (points) and lines, from ``pdftotext -bbox-layout``."""
    xhtml = subprocess.run(
        ["pdftotext", "-bbox-layout", str(pdf), "-"], capture_output=True, check=True
    ).stdout
    ns = {"x": "http://www.w3.org/1999/xhtml"}
    pages = []
    for index, page in enumerate(ET.fromstring(xhtml).iterfind(".//x:page", ns), 1):
        words = [
            (
                float(w.get("xMin", 0)),
                float(w.get("yMin", 0)),
                float(w.get("xMax", 0)),
                float(w.get("yMax", 0)),
                w.text or "",
            )
            for w in page.iterfind(".//x:word", ns)
        ]
        lines = [
            " ".join(w.text or "" for w in line.iterfind("x:word", ns))
            for line in page.iterfind(".//x:line", ns)
        ]
        pages.append(
            Page(
                index,
                float(page.get("width", 0)),
                float(page.get("height", 0)),
                words,
                lines,
                "\n".join(lines),
            )
        )
    return pages


def _render(server: Server, claim: str, lang: str, folder: Path) -> tuple[Path, list[Page]]:
    pdf = folder / f"report-{lang}.pdf"
    _cli(server, claim, "--format", "pdf", "--out", str(pdf), "--lang", lang)
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob(f"report-{lang}-page-*.png"):
        old.unlink()
    # Every page as a picture, as a person would look at it.
    subprocess.run(
        ["pdftoppm", "-r", "50", "-png", str(pdf), str(ARTIFACTS / f"report-{lang}-page")],
        check=True,
    )
    return pdf, _pages(pdf)


def _stored_report(server: Server, claim: str) -> dict:  # type: ignore[type-arg]
    with server.client(server.admin) as admin:
        return admin.get(f"/v1/claims/{claim}").json()


@pytest.fixture(scope="module")
def zh_pdf(
    rejected: tuple[Server, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Page]]:
    _need(CHROMIUM)
    _need("pdftotext")
    _need("pdftoppm")
    server, claim = rejected
    return _render(server, claim, "zh", tmp_path_factory.mktemp("pdf"))


def test_page_one_is_the_summary_with_the_persons_decision_amounts_hashes_and_picture(
    rejected: tuple[Server, str], zh_pdf: tuple[Path, list[Page]]
) -> None:
    server, claim = rejected
    pdf, pages = zh_pdf
    first = pages[0].text
    flat = first.replace("\n", "").replace(" ", "")
    assert "摘要" in first
    # The person's decision and reason lead; the machine's suggestion is marked as one.
    assert "人工裁决: 已拒绝" in first and REASON in flat
    assert first.index("人工裁决") < first.index("自动分析的建议")
    assert "杯子碎了" in flat  # the buyer's words, in the case sentence
    for amount in ("120.00 CNY", "300.00 CNY", "0.00 CNY", "3,000.00 CNY"):
        assert amount in first, amount
    assert "仅供参考，不构成指控" in flat  # the legal threshold, as information
    for name in ("claim_forged.jpg", "listing.jpg"):
        assert hashlib.sha256(_sample(name)).hexdigest() in flat, name
    evidence = {e["kind"]: e for e in _stored_report(server, claim)["evidence"]}
    assert evidence["packing_video"]["sha256"] in flat
    # The summary picture (claim beside the merchant's photo, the edit outlined) is on page 1
    # and at least 12 cm wide.
    images = subprocess.run(
        ["pdfimages", "-list", "-f", "1", "-l", "1", str(pdf)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[2:]
    assert len(images) == 1
    fields = images[0].split()
    width_px, ppi = int(fields[3]), float(fields[12])
    assert width_px / ppi * 25.4 >= 120


def test_every_page_carries_its_number_the_claim_id_and_the_report_content_hash(
    rejected: tuple[Server, str], zh_pdf: tuple[Path, list[Page]], tmp_path: Path
) -> None:
    server, claim = rejected
    _, pages = zh_pdf
    printed = _cli(server, claim, "--content", str(tmp_path / "case.json")).split()[0]
    # The hash printed on the pages is the sha256 of the case JSON the CLI writes.
    assert printed == hashlib.sha256((tmp_path / "case.json").read_bytes()).hexdigest()
    # 8 pages for this claim (summary, case, 4 of evidence and pictures, audit trail, file facts
    # and how to check; 7 before issue 19, the decision on page 6): a layout that spills
    # tables or pictures over more pages shows here.
    assert 6 <= len(pages) <= 9, len(pages)
    for page in pages:
        assert f"第 {page.number} 页，共 {len(pages)} 页" in page.text, page.number
        assert claim in page.text, page.number
        assert f"报告内容 sha256 {printed}" in page.text, page.number


def test_no_python_value_no_broken_code_no_text_outside_the_page_and_no_stranded_heading(
    rejected: tuple[Server, str], zh_pdf: tuple[Path, list[Page]]
) -> None:
    server, claim = rejected
    _, pages = zh_pdf
    for page in pages:
        leftovers = [line for line in page.lines if REPR.search(line)]
        assert leftovers == [], (page.number, leftovers)
        for x0, y0, x1, y1, word in page.words:
            assert x0 >= 0 and x1 <= page.width and y0 >= 0 and y1 <= page.height, (
                page.number,
                word,
            )
    # Each finding's code is printed whole: it may wrap only at a dot or an underscore.
    everything = "\n".join(page.text for page in pages)
    codes = {
        finding["code"]
        for image in _stored_report(server, claim)["assessment"]["images"]
        for finding in image["findings"]
    }
    assert codes
    for code in codes:
        assert re.search(r"\.\n?".join(map(re.escape, code.split("."))), everything), code
    # A heading or a table's column titles are never the last row of a page's body (between
    # the header and footer margins): what they introduce follows them on the same page.
    for page in pages:
        body = [w for w in page.words if w[1] > 14 * MM and w[3] < page.height - 16 * MM]
        bottom = max(w[3] for w in body)
        last_row = sorted((w for w in body if w[3] > bottom - 4), key=lambda w: w[0])
        words = [w[4] for w in last_row]
        stranded = set(words) <= TITLES or any(words[0].startswith(c) for c in codes)
        assert not stranded, (page.number, words)


MM = 72 / 25.4
TITLES = {
    *[
        "1.",
        "案件",
        "案件事实",
        "裁决记录",
        "各方提交的证据",
        "买家记录",
        "附录",
        "A.",
        "B.",
        "C.",
        "审计记录",
        "#",
        "时间",
        "操作者",
    ],
    *[
        "操作",
        "上一哈希",
        "本条哈希",
        "数据",
        "值",
        "单位",
        "提交方",
        "种类",
        "文件",
        "/",
        "说明",
        "裁决",
        "理由",
        "字段",
        "检测结果",
        "结果",
        "检测项",
    ],
    *[
        "权重",
        "数据与事实",
        "证据与裁决",
        "原始文件（sha256）",
        "照片与分析所见",
        "文件自身记录的信息",
        "摘要",
    ],
}
"""Words of the zh report's headings and column titles, before and after issue 19."""


def test_the_packing_video_and_every_time_are_written_out(zh_pdf: tuple[Path, list[Page]]) -> None:
    pdf, pages = zh_pdf
    everything = "\n".join(page.text for page in pages)
    layout = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    # Who sent it, what it is, its file and its hash: once an empty line.
    assert re.search(r"商家\s+打包视频\s+packing\.mp4 · sha256", layout)
    # Times carry their zone (the jurisdiction's, Asia/Shanghai): never a bare timestamp.
    stamps = re.findall(
        r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d)?(?:\.\d+)?(?: UTC(?:[+-]\d\d:\d\d)?)?",
        everything.replace("\n", " "),
    )
    assert stamps and all(s.endswith("UTC+08:00") for s in stamps), stamps


def test_the_english_report_has_the_same_content_hash_and_no_python_value(
    rejected: tuple[Server, str], zh_pdf: tuple[Path, list[Page]], tmp_path: Path
) -> None:
    server, claim = rejected
    _, zh_pages = zh_pdf
    _, pages = _render(server, claim, "en", tmp_path)
    assert pages[0].text.count("Decision by a person: rejected") == 1
    # Page 1 lists every original file, each once, in English too (its longer words pushed
    # the list onto page 2, and a file sent twice was listed twice).
    first = pages[0].text.replace("\n", "").replace(" ", "")
    for name in ("claim_forged.jpg", "listing.jpg", "claim_genuine.jpg"):
        assert first.count(hashlib.sha256(_sample(name)).hexdigest()) == 1, name
    evidence = {e["kind"]: e for e in _stored_report(server, claim)["evidence"]}
    assert evidence["packing_video"]["sha256"] in first
    hashes = {re.search(r"report content sha256 ([0-9a-f]{64})", p.text).group(1) for p in pages}  # type: ignore[union-attr]
    assert len(hashes) == 1 and hashes.pop() in zh_pages[0].text
    for page in pages:
        assert f"page {page.number} of {len(pages)}" in page.text
        # The citation "Fa Shi [2011] No. 7" and "merchant's" are words, not Python values.
        leftovers = [
            line
            for line in page.lines
            if re.search(r"[{}]|'\w+':|\[(?!2011\])|\b(True|False|None)\b", line)
        ]
        assert leftovers == [], (page.number, leftovers)


def test_an_undecided_claim_says_so_on_page_one_and_the_html_download_is_the_same_report(
    rejected: tuple[Server, str], undecided: str, tmp_path: Path
) -> None:
    server, _ = rejected
    html_file = tmp_path / "report.html"
    _cli(server, undecided, "--format", "html", "--out", str(html_file), "--lang", "zh")
    html = html_file.read_text(encoding="utf-8")
    summary = html[html.index('<section class="summary"') : html.index("</section>")]
    assert "尚未经人工裁决" in summary and "等待商家回应" in summary  # and the claim's state
    assert "尚未裁决" in summary  # no refund amount decided yet
    assert LONG in summary
    assert "<script" not in html and 'src="data:image/' in summary
    # Chinese sentences run on without a space between them (the audit note read "。 每").
    assert "。 " not in html
    printed = _cli(server, undecided, "--content", str(tmp_path / "case.json")).split()[0]
    assert f'<meta name="refundlens:content-sha256" content="{printed}">' in html


def test_a_reason_without_spaces_wraps_instead_of_shrinking_the_page(
    rejected: tuple[Server, str],
    undecided: str,
    zh_pdf: tuple[Path, list[Page]],
    tmp_path: Path,
) -> None:
    server, _ = rejected
    _, pages = _render(server, undecided, "zh", tmp_path)
    _, normal = zh_pdf

    def title_height(page: Page) -> float:
        return next(w[3] - w[1] for w in page.words if w[4] == "摘要")

    # Chromium prints content wider than the page smaller: the title would shrink with it.
    assert title_height(pages[0]) == pytest.approx(title_height(normal[0]), rel=0.02)
    assert "尚未经人工裁决" in pages[0].text
    for page in pages:
        for x0, y0, x1, y1, word in page.words:
            assert x0 >= 0 and x1 <= page.width and y0 >= 0 and y1 <= page.height, word


def _heic(jpeg: bytes) -> bytes:
    """``jpeg`` as an iPhone stores its photos: HEVC in a HEIC file."""
    import io

    import pillow_heif
    from PIL import Image

    out = io.BytesIO()
    pillow_heif.from_pillow(Image.open(io.BytesIO(jpeg))).save(out, quality=80)
    return out.getvalue()


def test_an_iphone_heic_claim_photo_shows_as_a_jpeg_on_the_claim_page_and_in_the_report(
    rejected: tuple[Server, str], tmp_path: Path
) -> None:
    """No browser shows HEIC: served or inlined as it is, the photo was a blank on the
    reviewer's page and on the report's page one (found by a new user's walkthrough)."""
    import io

    from PIL import Image

    server, _ = rejected
    merchant_key = server.key("merchant", "shop-a")
    sku = listed_sku(server, merchant_key, "heic-cup")
    order = order_for(server, merchant_key, sku, "buyer-3", "o-3", amount=50)
    heic = _heic(sample("claim_genuine.jpg"))
    buyer_key = server.key("buyer", subject="buyer-3")
    claim = file_claim(server, buyer_key, order, photos=[("IMG_0001.HEIC", heic)], amount="50")
    with server.client(buyer_key) as buyer:
        wait_analysed(buyer, claim["id"])
    blob = f"/web/claims/{claim['id']}/blob/{hashlib.sha256(heic).hexdigest()}"
    slots = server.app.state.runtime.heavy_work
    decodes = server.app.state.runtime.upload_work
    with web_login(server, server.key("reviewer", assign=["shop-a"])) as reviewer:
        # Decoding a HEIC takes a decode slot (waiting upload_slot_wait_seconds for one), the
        # report a heavy-work slot: with none free, both say busy instead of decoding without
        # bound (a review of the fix).
        taken = [0, 0]
        while slots.acquire(blocking=False):
            taken[0] += 1
        while decodes.acquire(blocking=False):
            taken[1] += 1
        try:
            busy = reviewer.get(blob)
            assert busy.status_code == 503 and busy.headers["retry-after"]
            assert reviewer.get(f"/web/claims/{claim['id']}/report.html").status_code == 503
        finally:
            for _ in range(taken[0]):
                slots.release()
            for _ in range(taken[1]):
                decodes.release()
        shown = reviewer.get(blob)
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(shown.content)).format == "JPEG"
    report = tmp_path / "heic.html"
    _cli(server, claim["id"], "--out", str(report))
    html = report.read_text(encoding="utf-8")
    assert "data:application/octet-stream" not in html
    assert "data:image/jpeg;base64," in html
    assert "JPEG 副本" in html  # the caption says the picture is a copy, the hash the file's


def test_a_pdf_report_without_chromium_is_a_coded_error_not_a_traceback_or_a_500(
    rejected: tuple[Server, str], tmp_path: Path
) -> None:
    """Chromium is a system package: a machine set up by `make demo` has none."""
    server, claim = rejected
    missing = str(tmp_path / "no-chromium")
    pdf = str(tmp_path / "r.pdf")
    result = subprocess.run(
        [sys.executable, "-m", "refundlens", "report", claim, "--format", "pdf", "--out", pdf],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "REFUNDLENS_DATA_DIR": server.settings.data_dir,
            "REFUNDLENS_CHROMIUM_PATH": missing,
        },
        timeout=180,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("refundlens: error [report.no_browser]"), result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.pdf").exists()
    runtime = server.app.state.runtime
    kept = runtime.settings
    runtime.settings = kept.replace(chromium_path=missing)
    try:
        with web_login(server, server.key("reviewer", assign=["shop-a"])) as reviewer:
            answer = reviewer.get(f"/web/claims/{claim}/report.pdf")
    finally:
        runtime.settings = kept
    assert answer.status_code == 503, answer.text[:300]
    assert "Chromium" in answer.text


def test_a_pdf_report_on_a_machine_without_a_chinese_font_is_refused_not_drawn_in_boxes(
    rejected: tuple[Server, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chromium draws Chinese it has no font for as empty boxes, and says nothing: the PDF is
    refused with a coded error naming the fix (a new user's walkthrough)."""
    server, claim = rejected
    empty = tmp_path / "fonts.conf"
    empty.write_text("<?xml version='1.0'?><fontconfig></fontconfig>\n")
    result = subprocess.run(
        [sys.executable, "-m", "refundlens", "report", claim, "--format", "pdf",
         "--out", str(tmp_path / "r.pdf")],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "REFUNDLENS_DATA_DIR": server.settings.data_dir,
            "FONTCONFIG_FILE": str(empty),  # fontconfig finds no font at all
        },
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("refundlens: error [report.no_chinese_font]"), result.stderr
    assert "make system-deps" in result.stderr and not (tmp_path / "r.pdf").exists()
    from refundlens.report import evidence

    monkeypatch.setattr(evidence, "chinese_font_installed", lambda: False)
    with web_login(server, server.key("reviewer", assign=["shop-a"])) as reviewer:
        answer = reviewer.get(f"/web/claims/{claim}/report.pdf")
    assert answer.status_code == 503 and "此服务器没有可显示中文的字体" in answer.text, answer.text[
        :300
    ]


def test_a_report_issued_in_the_earlier_content_layout_still_checks(
    rejected: tuple[Server, str], tmp_path: Path
) -> None:
    """Layout 2 added each audit entry's assessment id; a report issued before printed the
    sha256 of layout 1, which ``--content-version 1`` writes again, byte for byte as it was
    made (the entries without their assessment id)."""
    import json

    server, claim = rejected
    now = _cli(server, claim, "--content", str(tmp_path / "now.json")).split()[0]
    old = _cli(
        server, claim, "--content", str(tmp_path / "old.json"), "--content-version", "1"
    ).split()[0]
    assert now != old
    assert old == hashlib.sha256((tmp_path / "old.json").read_bytes()).hexdigest()
    earlier = json.loads((tmp_path / "old.json").read_bytes())
    later = json.loads((tmp_path / "now.json").read_bytes())
    assert earlier["format"].endswith("/1") and later["format"].endswith("/3")
    assert not any("assessment_id" in e for e in earlier["audit"])
    _cli(server, claim, "--content", str(tmp_path / "two.json"), "--content-version", "2")
    two = json.loads((tmp_path / "two.json").read_bytes())
    stripped = [{k: v for k, v in e.items() if k != "assessment_id"} for e in two["audit"]]
    assert {**two, "format": earlier["format"], "audit": stripped} == earlier
    # Layout 3 splits the SKU's photos into those the analysis compared and those added after
    # the claim was filed; layout 2 listed them together.
    assert later["references"] == two["references"] and later["references_added_later"] == []
    assert {k: v for k, v in later.items() if k not in ("format", "references_added_later")} == {
        k: v for k, v in two.items() if k != "format"
    }


def test_a_photo_the_shop_adds_to_the_sku_after_the_claim_is_never_shown_as_its_listing_photo(
    tmp_path: Path,
) -> None:
    """The analysis leaves out SKU photos added after the claim was filed (they could be its
    photo with the damage painted out); the claim page and the report showed such a photo as
    "the SKU's listing photo" beside the claim (a security review). They say when it was added
    and that it was not compared."""
    import html as html_module
    import json
    import re as re_module

    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a")
        merchant_key = server.key("merchant", "shop-a")
        order = order_for(server, merchant_key, listed_sku(server, merchant_key), "b-9", "o-9")
        buyer_key = server.key("buyer", subject="b-9")
        claim = file_claim(server, buyer_key, order, amount="50")["id"]
        with server.client(buyer_key) as buyer:
            wait_analysed(buyer, claim)
        with server.client(merchant_key) as merchant:
            added = merchant.post(
                "/v1/skus",
                data={"external_id": "mug"},
                files=[
                    ("photos", ("listing-front.jpg", _sample("claim_genuine.jpg"), "image/jpeg"))
                ],
            )
            assert added.status_code in (200, 201), added.text
        with web_login(server, merchant_key) as merchant:
            report = merchant.get(f"/web/claims/{claim}/report.html?lang=en").text
            content = json.loads(merchant.get(f"/web/claims/{claim}/report.json").content)
        with web_login(server, server.key("reviewer", assign=["shop-a"])) as reviewer:
            page = reviewer.get(f"/web/claims/{claim}?lang=en").text
    text = html_module.unescape(re_module.sub(r"<[^>]+>", " ", report))
    assert re_module.search(r"listing\.jpg \(the SKU's listing photo\)", text), text[:3000]
    assert "listing-front.jpg (the SKU's listing photo)" not in text
    assert re_module.search(
        r"listing-front\.jpg \(added to the SKU on .+?, after the claim was filed: not "
        r"compared by the analysis\)",
        text,
    ), text[:3000]
    assert [r["name"] for r in content["references"]] == ["listing.jpg"]
    assert [r["name"] for r in content["references_added_later"]] == ["listing-front.jpg"]
    figure = re_module.search(r'<figure class="later-reference">.*?</figure>', page, re_module.S)
    assert figure and "listing-front.jpg" in figure[0] and "after the claim was filed" in figure[0]


def test_the_report_names_its_version_and_the_checks_run_and_not_run_on_each_photo(
    rejected: tuple[Server, str],
) -> None:
    """A reader outside the platform could not tell which checks ran: pixel forensics, skipped
    once a claim is escalated, was not mentioned, nor the version that made the report (a
    merchant's walkthrough)."""
    import html as html_module
    import re as re_module

    from refundlens import __version__

    server, claim = rejected
    with web_login(server, server.key("merchant", "shop-a")) as merchant:
        pages = {
            lang: html_module.unescape(
                re_module.sub(
                    r"<[^>]+>",
                    " ",
                    merchant.get(f"/web/claims/{claim}/report.html?lang={lang}").text,
                )
            )
            for lang in ("en", "zh")
        }
    assert f"refundlens {__version__}" in pages["en"]
    at = pages["en"].find("Checks run on this photo: ")
    said = pages["en"][at : at + 600]
    assert at >= 0 and "the reference check (the shop's photos)" in said.split("Not run")[0]
    assert (
        "Not run: " in said
        and "pixel forensics (escalate already: it can only raise the risk)" in said
    )
    # Chinese punctuation in the Chinese report (a walkthrough: "检查:", "(已判定…)").
    assert "本图运行的检查：" in pages["zh"] and "参考图比对（商家图片）" in pages["zh"]
    assert "像素取证（已判定升级处理：此项只会提高风险）" in pages["zh"]


def test_the_report_says_the_role_of_each_key_that_acted_beside_its_id(
    rejected: tuple[Server, str],
) -> None:
    """A police reader or a court cannot look up a key id: the report prints its role beside
    it (the decider a reviewer, the claim's filer a buyer); the key's label stays the
    platform's (a new user's walkthrough)."""
    import html as html_module
    import re as re_module

    server, claim = rejected
    with web_login(server, server.key("merchant", "shop-a")) as merchant:
        page = merchant.get(f"/web/claims/{claim}/report.html?lang=en").text
    text = html_module.unescape(re_module.sub(r"<[^>]+>", " ", page))
    decided = re_module.search(r"Decided by\s+(rlk_[0-9a-f]+)\s+\((\w+)\)", text)
    assert decided and decided[2] == "reviewer", text[:2000]
    assert re_module.search(r"rlk_[0-9a-f]+\s+buyer", text)  # the audit trail's "Who"


def test_a_reader_recomputes_every_audit_hash_from_the_reports_data_alone(
    rejected: tuple[Server, str],
) -> None:
    """Appendix A says what each entry hash covers; every field it names is in the report's
    data, so a reader outside the platform recomputes the chain, the analysis' entries too
    (their assessment id was missing: a new user's walkthrough)."""
    import hashlib
    import json

    server, claim = rejected
    with web_login(server, server.key("merchant", "shop-a")) as merchant:
        content = json.loads(merchant.get(f"/web/claims/{claim}/report.json").content)
        html = merchant.get(f"/web/claims/{claim}/report.html", params={"lang": "en"}).text
    entries = content["audit"]
    assert any(e["action"] == "claim.analysed" and e.get("assessment_id") for e in entries)
    # Entry numbers skip other claims' entries, and a previous hash is often another claim's: a
    # walkthrough read the printed chain as broken. The report says why it is not.
    assert "A gap in the numbers is not a missing entry" in html
    for entry in entries:
        assert "withheld" not in entry
        body = json.dumps(
            {
                "seq": entry["seq"],
                "at": entry["at"],
                "actor": entry["actor"],
                "action": entry["action"],
                "claim_id": claim,
                "assessment_id": entry.get("assessment_id"),
                "details": entry["details"],
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        recomputed = hashlib.sha256((entry["prev_hash"] + body).encode("utf-8")).hexdigest()
        assert recomputed == entry["entry_hash"], entry["action"]


def test_a_merchant_downloads_the_reports_data_and_checks_the_printed_value_without_the_service(
    rejected: tuple[Server, str],
) -> None:
    # A merchant cannot run the service's CLI: the claim page gives the case data the report's
    # content sha256 covers, byte for byte, to keep beside the report.
    server, claim = rejected
    merchant_key = server.key("merchant", "shop-a")
    with web_login(server, merchant_key) as merchant:
        html = merchant.get(f"/web/claims/{claim}/report.html").text
        data = merchant.get(f"/web/claims/{claim}/report.json")
        page = merchant.get(f"/web/claims/{claim}").text
    assert data.status_code == 200 and data.headers["content-type"] == "application/json"
    assert "attachment" in data.headers["content-disposition"]
    printed = re.search(r'name="refundlens:content-sha256" content="([0-9a-f]{64})"', html)
    assert printed is not None
    assert hashlib.sha256(data.content).hexdigest() == printed[1]
    assert f'href="/web/claims/{claim}/report.json"' in page
    # The shop's copy: the buyer's record at this shop only, as in its report.
    assert '"scope":"shop"' in data.text
    buyer_key = server.key("buyer", subject="buyer-1")
    with web_login(server, buyer_key) as buyer:
        assert buyer.get(f"/web/claims/{claim}/report.json").status_code == 403


def test_hours_left_read_as_a_person_says_them() -> None:
    assert hours(23.96) == "24"
    assert hours(2.0) == "2"
    assert hours(0.34) == "0.3"  # not "about 0 h" with 20 minutes left
    assert hours(-1.0) == "0.0"
    assert hours(None) == "0.0"


def test_a_deadline_in_chinas_zone_reads_beijing_time_to_a_chinese_shopper() -> None:
    from refundlens.rendering.i18n import deadline_words

    moment = dt.datetime(2026, 12, 7, 11, 56, 30, tzinfo=dt.UTC)
    china = dt.timezone(dt.timedelta(hours=8))
    assert deadline_words(moment, china, "zh_CN") == "2026-12-07 19:56 北京时间"
    assert deadline_words(moment, china, "en") == "2026-12-07 19:56 UTC+08:00"
    assert deadline_words(moment, dt.UTC, "zh_CN") == "2026-12-07 11:56 UTC"


def test_a_persons_steps_are_in_the_report_and_an_escalation_is_not_the_analysiss(
    rejected: tuple[Server, str],
) -> None:
    """A reviewer's walkthrough: a person's escalation read as the analysis's suggestion, and a
    live capture asked for was nowhere but the audit trail."""
    server, _ = rejected
    merchant_key = server.key("merchant", "shop-a")
    sku = listed_sku(server, merchant_key, "cup-steps")
    order = order_for(server, merchant_key, sku, "b-steps", "o-steps")
    buyer_key = server.key("buyer", subject="b-steps")
    photos = [("genuine.jpg", _sample("claim_genuine.jpg"))]
    claim = file_claim(server, buyer_key, order, photos, amount="250")["id"]  # over 200: a person
    with server.client(buyer_key) as buyer:
        analysed = wait_analysed(buyer, claim)
    assert analysed["state"] in ("awaiting_merchant", "under_review"), analysed
    with server.client(server.key("reviewer", assign=["shop-a"])) as reviewer:
        for decision, reason in (
            ("request_capture", "show the crack from the side"),
            ("escalate", "the seller disputes it: for the senior team"),
        ):
            done = reviewer.post(
                f"/v1/claims/{claim}/decision", json={"decision": decision, "reason": reason}
            )
            assert done.status_code == 200, done.text
        suggested = reviewer.get(f"/v1/claims/{claim}").json()["assessment"]["claim"]["action"]
        assert suggested != "escalate"
        html = reviewer.get(f"/v1/claims/{claim}/report.html?lang=en").text
    assert "The analysis suggested" in html
    assert "The analysis suggested: escalate" not in html
    assert "escalated by a person" in html
    steps = html[html.index("Steps a person took") :]
    assert "show the crack from the side" in steps and "for the senior team" in steps


def test_a_ledger_in_another_currency_is_not_compared_with_the_threshold_in_yuan(
    tmp_path: Path,
) -> None:
    # 3,000 JPY (some 145 CNY) read "at or above" a threshold of 3,000 yuan in a report for the
    # police, and the buyer's record added yen to yuan (a security review).
    import json

    with running_server(tmp_path) as server:
        add_tenants(server, "shop-a")
        merchant_key = server.key("merchant", "shop-a")
        sku = listed_sku(server, merchant_key)
        buyer_key = server.key("buyer", subject="buyer-9")
        reviewer_key = server.key("reviewer", assign=["shop-a"])
        claims = []
        for n, currency in enumerate(("JPY", "cny")):
            order = order_for(
                server, merchant_key, sku, "buyer-9", f"o-{n}", amount=5000, currency=currency
            )
            claim = file_claim(server, buyer_key, order, amount="3000")["id"]
            with server.client(buyer_key) as buyer:
                wait_analysed(buyer, claim)
            with server.client(reviewer_key) as reviewer:
                decided = reviewer.post(
                    f"/v1/claims/{claim}/decision",
                    json={"decision": "reject", "reason": "the listing photo with a crack"},
                )
                assert decided.status_code == 200, decided.text
            claims.append(claim)
        with server.client(merchant_key) as merchant:
            shown = merchant.get(f"/v1/orders/{order}").json()
            assert shown["currency"] == "CNY"  # "cny" read as the code it is
            bad = merchant.post(
                "/v1/orders",
                json={
                    "external_id": "o-x",
                    "sku_id": sku,
                    "buyer_id": "buyer-9",
                    "amount": 1,
                    "currency": "元元",
                },
            )
            assert bad.status_code == 422
        with web_login(server, merchant_key) as merchant:
            yen = merchant.get(f"/web/claims/{claims[0]}/report.html?lang=en").text
            yuan = json.loads(merchant.get(f"/web/claims/{claims[1]}/report.json").content)
    assert "not compared (no exchange rate is assumed)" in yen
    assert "at or above it" not in yen
    # The yuan claim's record counts the yen forgery, without adding its amount.
    assert yuan["buyer_record"]["confirmed_forgeries"] == 1
    assert yuan["buyer_record"]["confirmed_in_other_currencies"] == 1
    assert yuan["buyer_record"]["confirmed_forged_value"] == 0.0


def test_the_reference_checks_filter_names_read_in_chinese() -> None:
    # The zh report showed "blur 0.7" among Chinese facts (a merchant's walkthrough).
    from refundlens.detectors.residual import _FILTERS
    from refundlens.rendering.i18n import environment

    worded = environment("zh_CN").filters["fact_rows"]
    for name in _FILTERS:
        [row] = worded({"matched_filter": name})
        assert not any("a" <= ch <= "z" for ch in row.value), (name, row.value)


def test_a_downloaded_file_is_named_by_what_its_bytes_are() -> None:
    from refundlens.report.pictures import file_extension

    box = b"\x00\x00\x00\x18ftyp"
    assert [
        file_extension(data)
        for data in (
            b"\xff\xd8\xff\xe0",
            b"\x89PNG\r\n\x1a\n",
            b"RIFF\x00\x00\x00\x00WEBPVP8 ",
            box + b"heic",
            box + b"mif1",
            box + b"isom",
            box + b"qt  ",
            b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm",
            b"RIFF\x00\x00\x00\x00AVI LIST",
            b"%PDF-1.7",
            b"<script>",
        )
    ] == ["jpg", "png", "webp", "heic", "heic", "mp4", "mov", "webm", "avi", "bin", "bin"]
