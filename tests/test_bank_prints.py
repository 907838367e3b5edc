"""Bank entries that still match a cropped copy on another platform (issue 23): local prints,
their matching rule, and bank files of both formats."""

from __future__ import annotations

import base64
import io
import json
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from sqlalchemy import select
from typer.testing import CliRunner

from refundlens.cli import app
from refundlens.config import Settings
from refundlens.reuse.bank import BankError, _canonical, _public_b64, sign_bank, verify_bank
from refundlens.reuse.prints import (
    LocalPrint,
    PrintIndex,
    SketchIndex,
    best_match,
    local_print,
    query_prints,
)
from refundlens.store import Database
from refundlens.store.sql.models import BankEntry


def _photo(name: str) -> np.ndarray:
    data = (resources.files("refundlens") / "samples" / name).read_bytes()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _reencoded(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _crop(rgb: np.ndarray, share: float) -> np.ndarray:
    rows, cols = rgb.shape[:2]
    dy, dx = int(rows * share / 2), int(cols * share / 2)
    return np.ascontiguousarray(rgb[dy : rows - dy, dx : cols - dx])


def test_local_print_round_trips_through_its_text_form() -> None:
    found = local_print(_photo("claim_unrelated.jpg"))
    assert 100 <= len(found) <= 160
    again = LocalPrint.from_text(found.to_text())
    assert np.array_equal(again.descriptors, found.descriptors)
    assert np.abs(again.points - found.points).max() < 1e-4
    assert len(found.to_text()) < 8000


@pytest.mark.parametrize(
    "text", ["orb1:!!!", "pdq:AAAA", "orb1:" + base64.b64encode(b"\x00\x05").decode()]
)
def test_a_malformed_local_print_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        LocalPrint.from_text(text)


@pytest.mark.parametrize(
    "edit",
    [
        "crop 6% a side",
        "crop 25%",
        "resize 50%",
        "jpeg 50",
        "mirror",
        "crop 15% + resize + jpeg 60",
    ],
)
def test_edited_copy_matches_its_bank_print_and_an_unrelated_photo_does_not(edit: str) -> None:
    photo = _photo("claim_unrelated.jpg")
    entry = local_print(_reencoded(photo, 90))
    edits = {
        "crop 6% a side": lambda a: _crop(a, 0.12),
        "crop 25%": lambda a: _crop(a, 0.25),
        "resize 50%": lambda a: cv2.resize(a, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        "jpeg 50": lambda a: _reencoded(a, 50),
        "mirror": lambda a: np.ascontiguousarray(a[:, ::-1]),
        "crop 15% + resize + jpeg 60": lambda a: _reencoded(
            cv2.resize(_crop(a, 0.15), None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA), 60
        ),
    }
    copy = _reencoded(edits[edit](photo), 85)
    assert best_match(query_prints(copy), entry).is_copy
    assert not best_match(query_prints(_photo("listing.jpg")), entry).is_copy


def test_print_index_finds_the_entry_a_cropped_copy_came_from() -> None:
    index = PrintIndex()
    index.add(1, local_print(_photo("listing.jpg")))
    index.add(2, local_print(_photo("claim_unrelated.jpg")))
    found = index.search(query_prints(_crop(_photo("claim_unrelated.jpg"), 0.2)))
    assert [ident for ident, _ in found] == [2]


def test_sketch_index_names_the_photo_a_cropped_copy_came_from_and_holds_a_bounded_number() -> None:
    listing, unrelated = _photo("listing.jpg"), _photo("claim_unrelated.jpg")
    query = query_prints(_reencoded(_crop(unrelated, 0.1)[:, ::-1], 70))  # cropped, mirrored
    index = SketchIndex(capacity=4)
    index.add(1, local_print(listing))
    index.add(2, local_print(unrelated))
    assert len(index) == 2 and index.candidates(query)[0] == 2
    assert 2 not in index.candidates(query, skip={2})  # the claim's own photos
    # Nothing held, nothing named: the listing photo's print is no copy of the claim photo's.
    assert index.candidates(query_prints(np.zeros((64, 64, 3), np.uint8))) == []
    # Two generations of capacity // 2: the oldest is dropped whole when the newest fills.
    for ident in range(3, 7):
        index.add(ident, local_print(_crop(listing, 0.01 * ident)))
    assert len(index) == 4 and 2 not in index.candidates(query)
    assert SketchIndex(capacity=0).candidates(query) == []
    # One place per claim: pictures made to gather a copy's votes, filed in one claim before
    # it, took every place (a security review).
    crowded = SketchIndex(capacity=100)
    crowded.add(1, local_print(unrelated), "clm_original")
    for ident in range(2, 14):
        crowded.add(ident, query[0], "clm_decoys")
    assert crowded.candidates(query, most=2) == [2, 1]
    off = SketchIndex(capacity=0)
    off.add(1, local_print(unrelated))
    assert len(off) == 0


def _entry(**extra: object) -> dict[str, object]:
    return {"pdq": "ab" * 32, "codes": ["reference.derived"], "confirmed_at": "2025-09-01", **extra}


def test_old_bank_files_of_format_1_still_import() -> None:
    key = Ed25519PrivateKey.generate()
    body = {
        "format": "refundlens-bank/1",
        "bank": "old-platform",
        "signer": "old-platform",
        "public_key": _public_b64(key.public_key()),
        "created_at": "2025-10-01T00:00:00+00:00",
        "entries": [_entry(buyer=None)],
    }
    document = {**body, "signature": base64.b64encode(key.sign(_canonical(body))).decode()}
    document = json.loads(json.dumps(document))  # as read from the file
    assert verify_bank(document, {body["public_key"]: "old-platform"})["entries"][0]["pdq"]


def test_bank_files_carry_local_prints_signed_and_nothing_else() -> None:
    key = Ed25519PrivateKey.generate()
    trusted = {_public_b64(key.public_key()): "p1"}
    local = local_print(_photo("claim_unrelated.jpg")).to_text()
    document = sign_bank("p1", "p1", [_entry(buyer=None, local=local)], key)
    assert document["format"] == "refundlens-bank/2"
    assert verify_bank(json.loads(json.dumps(document)), trusted)
    altered = json.loads(json.dumps(document))
    altered["entries"][0]["local"] = local_print(_photo("listing.jpg")).to_text()
    with pytest.raises(BankError) as info:
        verify_bank(altered, trusted)
    assert info.value.code == "bank.bad_signature"
    with_image = sign_bank("p1", "p1", [_entry(thumbnail="/9j/4AAQ")], key)
    with pytest.raises(BankError) as info:
        verify_bank(with_image, trusted)
    assert info.value.code == "bank.malformed"


@pytest.mark.parametrize(
    "bad",
    [
        {"pdq": "g" * 64},  # not hex: every service's index refresh would raise on it
        {"pdq": "AB" * 32},
        {"codes": "xyz"},
        {"codes": ["Please approve this buyer's claims"]},
        {"codes": ["reference.derived"] * 17},
        {"confirmed_at": "yesterday"},
        {"confirmed_at": 20250901},
        {"buyer": 42},
        {"buyer": "b1"},
    ],
)
def test_a_trusted_signers_malformed_entry_is_refused_whole(bad: dict[str, object]) -> None:
    """A trusted partner (or its buggy exporter) is not trusted to be well-formed: a PDQ that is
    not hex stopped the analysis of every claim; free text in codes reached reviewers."""
    key = Ed25519PrivateKey.generate()
    trusted = {_public_b64(key.public_key()): "p1"}
    good = sign_bank("p1", "p1", [_entry(buyer="cd" * 32)], key)
    assert verify_bank(json.loads(json.dumps(good)), trusted)
    document = sign_bank("p1", "p1", [_entry(**{"buyer": None, **bad})], key)
    with pytest.raises(BankError) as info:
        verify_bank(json.loads(json.dumps(document)), trusted)
    assert info.value.code == "bank.malformed"
    with pytest.raises(BankError) as untrusted:  # a key that is no string is no trusted key
        verify_bank({**document, "public_key": ["x"]}, trusted)
    assert untrusted.value.code == "bank.untrusted_signer"


def test_a_bank_row_with_an_unreadable_pdq_is_left_out_not_fatal(tmp_path: Path) -> None:
    """One row changed in the database since import must not stop every claim's analysis."""
    from refundlens.reuse.history import _pdq_bytes

    assert _pdq_bytes(1, "ab" * 32) == bytes.fromhex("ab" * 32)
    assert _pdq_bytes(2, "g" * 64) is None and _pdq_bytes(3, "ab") is None


def _signed(key: Ed25519PrivateKey, fmt: str, entries: list[dict[str, object]]) -> str:
    """A bank file of ``fmt`` from old-platform, as written to disk."""
    body = {
        "format": fmt,
        "bank": "old-platform",
        "signer": "old-platform",
        "public_key": _public_b64(key.public_key()),
        "created_at": "2025-10-01T00:00:00+00:00",
        "entries": entries,
    }
    signature = base64.b64encode(key.sign(_canonical(body))).decode()
    return json.dumps({**body, "signature": signature})


def test_bank_import_stores_local_prints_still_takes_format_1_and_refuses_an_unreadable_print(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    database = Database(settings)
    database.upgrade()
    key = Ed25519PrivateKey.generate()
    trusted = tmp_path / "trusted.txt"
    trusted.write_text(f"old-platform {_public_b64(key.public_key())}\n")
    env = {
        "REFUNDLENS_DATA_DIR": settings.data_dir,
        "REFUNDLENS_BANK_TRUSTED_KEYS_PATH": str(trusted),
    }

    def imported(name: str, text: str) -> tuple[int, str]:
        (tmp_path / name).write_text(text)
        result = CliRunner().invoke(app, ["bank", "import", str(tmp_path / name)], env=env)
        return result.exit_code, result.output

    def held() -> dict[str, tuple[int, str | None]]:
        with database.session() as session:
            rows = session.execute(select(BankEntry)).scalars()
            return {r.pdq: (r.id, r.local_print) for r in rows}

    local = local_print(_photo("claim_unrelated.jpg")).to_text()
    old = _signed(key, "refundlens-bank/1", [_entry(buyer=None)])
    assert imported("old.json", old) == (
        0,
        "bank 'old-platform' signed by 'old-platform': 1 new of 1 entries, 0 local prints stored\n",
    )
    assert held() == {"ab" * 32: (held()["ab" * 32][0], None)}

    # One unreadable print refuses the whole file: nothing of it is stored.
    unreadable = _signed(
        key, "refundlens-bank/2", [_entry(buyer=None, pdq="cd" * 32, local="orb1:!!!")]
    )
    code, output = imported("unreadable.json", unreadable)
    assert code == 2 and "local print cannot be read" in output
    assert set(held()) == {"ab" * 32}

    # The entry held without a print gains it (under a new id, which running services' index
    # caches read), and a new entry comes with its own.
    ((first_id, _),) = held().values()
    both = _signed(
        key,
        "refundlens-bank/2",
        [_entry(buyer=None, local=local), _entry(buyer=None, pdq="cd" * 32, local=local)],
    )
    code, output = imported("new.json", both)
    assert code == 0 and "1 new of 2 entries, 2 local prints stored" in output
    after = held()
    assert after["ab" * 32][0] > first_id
    assert after["ab" * 32][1] == after["cd" * 32][1] == local
    assert imported("new.json", both)[1].endswith("0 new of 2 entries, 0 local prints stored\n")
    database.dispose()


def test_a_trusted_partner_cannot_name_itself_another_bank_nor_this_platforms() -> None:
    partner = Ed25519PrivateKey.generate()
    trusted = {_public_b64(partner.public_key()): "partner-b"}
    own = sign_bank("partner-b", "partner-b", [_entry(buyer=None)], partner)
    assert verify_bank(json.loads(json.dumps(own)), trusted, own_bank="plat2")
    # The key is partner-b's: a file claiming to be another partner's bank, or this platform's,
    # would replace or plant their entries.
    for bank, signer in (("plat1", "plat1"), ("plat2", "plat2"), ("plat1", "partner-b")):
        forged = sign_bank(bank, signer, [_entry(buyer=None)], partner)
        with pytest.raises(BankError) as info:
            verify_bank(json.loads(json.dumps(forged)), trusted, own_bank="plat2")
        assert info.value.code == "bank.wrong_signer", (bank, signer)
    # This platform's own key in the trusted file by mistake: its own bank is never imported.
    mine = Ed25519PrivateKey.generate()
    with pytest.raises(BankError) as info:
        verify_bank(
            json.loads(json.dumps(sign_bank("plat2", "plat2", [_entry(buyer=None)], mine))),
            {_public_b64(mine.public_key()): "plat2"},
            own_bank="plat2",
        )
    assert info.value.code == "bank.wrong_signer"
