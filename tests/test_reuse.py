"""Reuse across claims, the shared bank between two platforms, and the buyer's ledger."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refundlens.reuse.index import HashIndex

from .service_support import (
    Server,
    add_tenants,
    assessed,
    file_claim,
    listed_sku,
    order_for,
    running_server,
)


def _variant(kind: str) -> bytes:
    """The bundled unrelated photo as a buyer's other upload would be: cropped, resized, recompressed."""
    image = Image.open(
        io.BytesIO(
            resources.files("refundlens").joinpath("samples/claim_unrelated.jpg").read_bytes()
        )
    ).convert("RGB")
    if kind == "crop":
        w, h = image.size
        image = image.crop((w // 40, h // 40, w - w // 40, h - h // 40))
    elif kind == "resize":
        image = image.resize((image.width * 2 // 3, image.height * 2 // 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=60 if kind == "recompress" else 88)
    return out.getvalue()


def _cropped_unevenly() -> bytes:
    """The bundled unrelated photo as a second platform receives it: 10%, 3%, 2% and 9% cut
    from left, top, right and bottom, recompressed at 85. Uneven, so that the bank's centre-crop
    hashes do not catch it either: only the local print can."""
    image = Image.open(
        io.BytesIO(
            resources.files("refundlens").joinpath("samples/claim_unrelated.jpg").read_bytes()
        )
    ).convert("RGB")
    w, h = image.size
    image = image.crop((w * 10 // 100, h * 3 // 100, w - w * 2 // 100, h - h * 9 // 100))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _other_photo() -> bytes:
    return resources.files("refundlens").joinpath("samples/claim_genuine.jpg").read_bytes()


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refundlens", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )


def test_the_index_finds_every_hash_within_31_bits_and_nothing_beyond() -> None:
    rng = np.random.default_rng(5)
    stored = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    index = HashIndex(shards=3)
    index.add(list(range(5000)), stored)
    for flips in (0, 1, 15, 31, 33, 60):
        query = np.unpackbits(stored[42]).copy()
        query[rng.choice(256, flips, replace=False)] ^= 1
        found = dict(index.search(np.packbits(query).tobytes(), 31))
        assert (42 in found) == (flips <= 31), flips
        if flips <= 31:
            assert found[42] == flips


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    with running_server(tmp_path / "p1") as server:
        with server.client(server.admin) as admin:
            for shop in ("shop-a", "shop-b"):
                admin.post("/v1/tenants", json={"id": shop, "kind": "merchant", "name": shop})
        keys = {
            "a": server.key("merchant", "shop-a"),
            "b": server.key("merchant", "shop-b"),
            "reviewer": server.key("reviewer", assign=["shop-a", "shop-b"]),
        }
        orders = {}
        listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
        for shop, buyer in (
            ("a", "buyer-1"),
            ("a", "buyer-1b"),
            ("b", "buyer-2"),
            ("b", "buyer-3"),
        ):
            with server.client(keys[shop]) as merchant:
                sku = merchant.post(
                    "/v1/skus",
                    data={"external_id": "mug"},
                    files=[("photos", ("listing.jpg", listing, "image/jpeg"))],
                ).json()["id"]
                orders[buyer] = merchant.post(
                    "/v1/orders",
                    json={
                        "external_id": f"o-{buyer}",
                        "sku_id": sku,
                        "buyer_id": buyer,
                        "amount": 2000,
                    },
                ).json()["id"]
            keys[buyer] = server.key("buyer", subject=buyer)
            keys[f"shop-{buyer}"], keys[f"sku-{buyer}"] = shop, sku
        keys.update({f"order-{b}": o for b, o in orders.items()})
        yield server, keys


_ORDERS = itertools.count()


def _claim(
    server: Server, keys: dict[str, str], buyer: str, photo: bytes, amount: float = 100.0
) -> dict:  # type: ignore[type-arg]
    # Each claim on an order of its own: an order holds one open claim (max_open_claims_per_order).
    with server.client(keys[keys[f"shop-{buyer}"]]) as merchant:
        order = merchant.post(
            "/v1/orders",
            json={
                "external_id": f"o-{buyer}-{next(_ORDERS)}",
                "sku_id": keys[f"sku-{buyer}"],
                "buyer_id": buyer,
                "amount": 2000,
            },
        ).json()["id"]
    with server.client(keys[buyer]) as client:
        r = client.post(
            "/v1/claims",
            data={
                "order_id": order,
                "type": "return_and_refund",
                "amount": str(amount),
            },
            files=[("photos", ("p.jpg", photo, "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        return assessed(server, r.json()["id"])


def _reject(server: Server, keys: dict[str, str], claim: dict, merchant: str = "a") -> None:  # type: ignore[type-arg]
    """Bring the claim before a person (the merchant answers or appeals) and reject it there."""
    with server.client(keys[merchant]) as shop:
        state = shop.get(f"/v1/claims/{claim['id']}").json()["state"]
        if state == "approved":
            assert (
                shop.post(
                    f"/v1/claims/{claim['id']}/appeal", json={"reason": "nothing was returned"}
                ).status_code
                == 200
            )
        elif state == "awaiting_merchant":
            shop.post(
                f"/v1/claims/{claim['id']}/evidence",
                data={"kind": "statement", "statement": "packed intact"},
            )
    with server.client(keys["reviewer"]) as reviewer:
        r = reviewer.post(
            f"/v1/claims/{claim['id']}/decision",
            json={"decision": "reject", "reason": "a confirmed forgery"},
        )
        assert r.status_code == 200, r.text


def _codes(claim: dict) -> set[str]:  # type: ignore[type-arg]
    return {f["code"] for image in claim["assessment"]["images"] for f in image["findings"]}


def test_a_photo_reused_across_shops_is_found_in_its_variants_and_a_new_photo_is_not(
    platform: tuple[Server, dict[str, str]],
) -> None:
    server, keys = platform
    first = _claim(server, keys, "buyer-1", _variant("plain"))
    assert "reuse.seen_before" not in _codes(first)
    for kind in ("crop", "resize", "recompress"):
        later = _claim(server, keys, "buyer-2", _variant(kind))
        finding = next(
            f
            for image in later["assessment"]["images"]
            for f in image["findings"]
            if f["code"] == "reuse.seen_before"
        )
        assert first["id"] in {m["claim"] for m in finding["facts"]["matches"]}, kind
        assert later["state"] != "approved"
    unrelated = _claim(server, keys, "buyer-3", _other_photo())
    assert "reuse.seen_before" not in _codes(unrelated)


def test_a_confirmed_forgery_travels_to_another_platform_as_a_signed_bank_and_is_matched_there(
    platform: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    server, keys = platform
    forged = _claim(server, keys, "buyer-1", _variant("plain"), amount=1800)
    _reject(server, keys, forged)
    shared_key = "platforms-agreed-hmac-key"
    env1 = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": server.settings.data_dir,
        "REFUNDLENS_BANK_NAME": "platform-one",
        "REFUNDLENS_BANK_SIGNING_KEY_PATH": str(tmp_path / "one.pem"),
        "REFUNDLENS_BANK_BUYER_HMAC_KEY": shared_key,
    }
    keygen = _run(env1, "bank", "keygen", "--out", str(tmp_path / "one.pem"))
    assert keygen.returncode == 0, keygen.stderr
    trusted_line = keygen.stdout.strip()
    bank_file = tmp_path / "bank.json"
    exported = _run(env1, "bank", "export", "--out", str(bank_file))
    assert exported.returncode == 0, exported.stderr
    document = json.loads(bank_file.read_text())
    assert (
        document["entries"]
        and "buyer-1" not in bank_file.read_text()
        and "500" not in json.dumps(document["entries"])
    )
    # format 2: the photo's whole-image entry also carries its local print (descriptors, no
    # pixels); the entries of its centre crops do not repeat it
    assert document["format"] == "refundlens-bank/2"
    prints = [e["local"] for e in document["entries"] if "local" in e]
    assert prints and all(p.startswith("orb1:") for p in prints)

    # A second platform with its own database trusts platform-one's key.
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(trusted_line + "\n")
    with running_server(tmp_path / "p2", bank_buyer_hmac_key=shared_key) as second:
        env2 = {
            **os.environ,
            "REFUNDLENS_DATA_DIR": second.settings.data_dir,
            "REFUNDLENS_BANK_TRUSTED_KEYS_PATH": str(trusted),
            "REFUNDLENS_BANK_BUYER_HMAC_KEY": shared_key,
        }
        tampered = tmp_path / "tampered.json"
        altered = json.loads(bank_file.read_text())
        altered["entries"][0]["codes"].append("reference.identical")
        tampered.write_text(json.dumps(altered))
        refused = _run(env2, "bank", "import", str(tampered))
        assert refused.returncode == 2 and "altered" in refused.stderr
        unknown = _run(
            {**env2, "REFUNDLENS_BANK_TRUSTED_KEYS_PATH": str(tmp_path / "nobody.txt")},
            "bank",
            "import",
            str(bank_file),
        )
        assert unknown.returncode == 2
        imported = _run(env2, "bank", "import", str(bank_file))
        assert imported.returncode == 0, imported.stderr
        assert "platform-one" in _run(env2, "bank", "list").stdout
        with second.client(second.admin) as admin:
            admin.post("/v1/tenants", json={"id": "shop-z", "kind": "merchant", "name": "z"})
        merchant = second.key("merchant", "shop-z")
        listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
        with second.client(merchant) as m:
            sku = m.post(
                "/v1/skus",
                data={"external_id": "mug"},
                files=[("photos", ("listing.jpg", listing, "image/jpeg"))],
            ).json()["id"]
            order = m.post(
                "/v1/orders",
                json={"external_id": "o", "sku_id": sku, "buyer_id": "buyer-1", "amount": 500},
            ).json()["id"]
        buyer = second.key("buyer", subject="buyer-1")
        with second.client(buyer) as client:
            claim = client.post(
                "/v1/claims",
                data={"order_id": order, "type": "refund_only", "amount": "90"},
                files=[("photos", ("p.jpg", _variant("resize"), "image/jpeg"))],
            ).json()
            analysed = assessed(second, claim["id"])
    match = next(
        f
        for image in analysed["assessment"]["images"]
        for f in image["findings"]
        if f["code"] == "reuse.bank_match"
    )
    assert (
        match["facts"]["bank"] == "platform-one"
        and match["facts"]["matches"][0]["same_buyer"] is True
    )
    assert analysed["action"] == "escalate"


def _exported_bank(server: Server, keys: dict[str, str], tmp_path: Path) -> tuple[Path, str]:
    """Platform one confirms a forgery (the unrelated photo) and exports its bank: the file and
    the line a second platform trusts its signer by."""
    forged = _claim(server, keys, "buyer-1", _variant("plain"), amount=1800)
    _reject(server, keys, forged)
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": server.settings.data_dir,
        "REFUNDLENS_BANK_NAME": "platform-one",
        "REFUNDLENS_BANK_SIGNING_KEY_PATH": str(tmp_path / "one.pem"),
    }
    keygen = _run(env, "bank", "keygen", "--out", str(tmp_path / "one.pem"))
    assert keygen.returncode == 0, keygen.stderr
    bank_file = tmp_path / "bank.json"
    exported = _run(env, "bank", "export", "--out", str(bank_file))
    assert exported.returncode == 0, exported.stderr
    return bank_file, keygen.stdout.strip()


def _findings(claim: dict, code: str) -> list[dict]:  # type: ignore[type-arg]
    return [f for i in claim["assessment"]["images"] for f in i["findings"] if f["code"] == code]


def test_a_cropped_copy_of_a_banked_forgery_is_matched_on_another_platform_by_its_local_print(
    platform: tuple[Server, dict[str, str]], tmp_path: Path
) -> None:
    from refundlens.media import media_from_bytes
    from refundlens.media.fingerprint import hamming, pdq_centre_crops

    server, keys = platform
    bank_file, trusted_line = _exported_bank(server, keys, tmp_path)
    entries = json.loads(bank_file.read_text())["entries"]
    # Whole-image PDQ alone cannot find the copy: every entry (the photo and its centre crops)
    # is far from the copy in every orientation and centre crop the analysis looks up.
    copy = media_from_bytes(_cropped_unevenly(), "copy.jpg")
    looked_up = [copy.pdq, *copy.pdq_dihedral, *pdq_centre_crops(copy.analysis).values()]
    banked = [type(copy.pdq)(bytes.fromhex(e["pdq"]), 100) for e in entries]
    assert min(hamming(a, b) for a in looked_up for b in banked) > 31

    trusted = tmp_path / "trusted.txt"
    trusted.write_text(trusted_line + "\n")
    with running_server(tmp_path / "p2") as second:
        env = {
            **os.environ,
            "REFUNDLENS_DATA_DIR": second.settings.data_dir,
            "REFUNDLENS_BANK_TRUSTED_KEYS_PATH": str(trusted),
        }
        imported = _run(env, "bank", "import", str(bank_file))
        assert imported.returncode == 0, imported.stderr
        assert "1 local prints stored" in imported.stdout
        assert "1 with local prints" in _run(env, "bank", "list").stdout
        add_tenants(second, "shop-z")
        merchant = second.key("merchant", "shop-z")
        sku = listed_sku(second, merchant)
        filed = {}
        for buyer, photo in (("buyer-x", _cropped_unevenly()), ("buyer-y", _other_photo())):
            order = order_for(second, merchant, sku, buyer, f"o-{buyer}")
            claim = file_claim(
                second, second.key("buyer", subject=buyer), order, [("p.jpg", photo)]
            )
            filed[buyer] = assessed(second, claim["id"])
    copied, unrelated = filed["buyer-x"], filed["buyer-y"]
    assert not _findings(copied, "reuse.bank_match")
    (match,) = _findings(copied, "reuse.bank_local_match")
    facts = match["facts"]
    assert facts["bank"] == "platform-one" and facts["signer"] == "platform-one"
    assert facts["inliers"] >= 30 and facts["matched_percent"] >= 30
    assert facts["coverage_percent"] >= 40
    assert facts["pdq_distance"] > facts["pdq_max_distance"] == 31
    assert match["strength"] > 0 and "live photos" in match["reason"]["en"]
    # A match by the print alone asks for a live capture, never more: the bank holds no picture
    # a person could compare.
    assert copied["action"] == "request_capture"
    codes = _codes(unrelated)
    assert "reuse.bank_local_match" not in codes and "reuse.bank_match" not in codes


def test_the_ledger_sums_a_buyers_confirmed_forgeries(
    platform: tuple[Server, dict[str, str]],
) -> None:
    from refundlens.reuse.history import History, IndexCache
    from refundlens.store import Database

    server, keys = platform
    amounts = [700.0, 450.0]
    for amount, photo in zip(amounts, (_variant("plain"), _other_photo()), strict=True):
        claim = _claim(server, keys, "buyer-1b", photo, amount=amount)
        _reject(server, keys, claim)
    database = Database(server.settings)
    try:
        history = History(
            database.sessions, IndexCache(), "clm_none", "ord_none", "buyer-1b", "shop-a", None
        )
        summary = history.buyer_summary()
    finally:
        database.dispose()
    assert summary["confirmed_forgeries"] == 2
    assert summary["confirmed_forged_value"] == pytest.approx(sum(amounts))
    assert summary["confirmed_forged_value"] >= 1000


def test_a_bank_file_nested_past_the_parser_is_refused_with_a_code_not_a_traceback(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "REFUNDLENS_DATA_DIR": str(tmp_path / "data")}
    assert _run(env, "db", "upgrade").returncode == 0
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused = _run(env, "bank", "import", str(deep))
    assert refused.returncode == 2 and "[bank.malformed]" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_earlier_claims_photos_are_decoded_with_no_transaction_open(
    platform: tuple[Server, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # On SQLite a session holds the write lock: the reuse check decoded up to 20 earlier photos
    # inside one (one of them hostile), and every other writer waited for 50 s (a security
    # review).
    import contextlib

    import refundlens.media
    from refundlens.reuse.history import History, IndexCache
    from refundlens.runtime import Runtime

    server, keys = platform
    _claim(server, keys, "buyer-1", _variant("plain"))
    later = _claim(server, keys, "buyer-1", _variant("resize"))
    runtime = Runtime(server.settings)
    open_sessions = 0
    seen_open: list[int] = []

    @contextlib.contextmanager
    def counted() -> Iterator[object]:
        nonlocal open_sessions
        open_sessions += 1
        try:
            with runtime.db.sessions() as session:
                yield session
        finally:
            open_sessions -= 1

    decode = refundlens.media.media_from_bytes

    def watched(*args: object, **kwargs: object) -> object:
        seen_open.append(open_sessions)
        return decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(refundlens.media, "media_from_bytes", watched)
    try:
        with runtime.db.sessions() as session:
            from refundlens.store.sql.models import Claim

            order_id = session.get(Claim, later["id"]).order_id  # type: ignore[union-attr]
        history = History(
            counted,  # type: ignore[arg-type]
            IndexCache(),
            "clm_none",
            order_id,
            "buyer-1",
            "shop-a",
            None,
            blobs=runtime.blobs,
        )
        earlier = history.earlier_same_sku()
    finally:
        runtime.db.dispose()
    assert earlier and seen_open and set(seen_open) == {0}, seen_open
