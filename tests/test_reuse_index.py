"""The in-memory reuse index catches up with the database whatever order inserts commit in.

Ids are handed out when a row is inserted, but transactions commit in their own order: on
PostgreSQL a print with a lower id can become visible after one with a higher id was read. An
index that only asks for ids above the last it read never sees that print, and the photo it
holds is never matched again in that process (a reused photo approved). SQLite writes one
transaction at a time, so there the test places the rows by id instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from refundlens.config import Settings
from refundlens.reuse.history import IndexCache
from refundlens.store import Database
from refundlens.store.interface import Claim, ClaimFingerprint, Order, Sku, Tenant, new_id
from tests.service_support import backend


def _code(seed: int) -> str:
    import numpy as np

    return bytes(np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8)).hex()


def _claim(session: Session, claim_id: str, seq: int, order: Order) -> None:
    session.add(
        Claim(
            id=claim_id, seq=seq, order_id=order.id, merchant_id="shop-i",
            buyer_id=order.buyer_id, claim_type="refund_only", amount=10.0, state="submitted",
        )
    )  # fmt: skip
    session.flush()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, str]]:
    with backend(request.param) as url:
        made = Database(Settings(data_dir=str(tmp_path), database_url=url))
        made.upgrade()
        claim_id = new_id("clm")
        with made.session() as session:
            session.add(Tenant(id="shop-i", kind="merchant", name="shop-i"))
            session.flush()
            sku = Sku(id=new_id("sku"), merchant_id="shop-i", external_id="mug", title="Mug")
            order = Order(
                id=new_id("ord"), merchant_id="shop-i", external_id="o-1", sku_id=sku.id,
                buyer_id="buyer-1", amount=10.0, currency="CNY",
            )  # fmt: skip
            for row in (sku, order):
                session.add(row)
                session.flush()
            _claim(session, claim_id, 1, order)
        yield made, claim_id
        made.dispose()


def _print(session: Session, claim_id: str, seed: int, ident: int | None = None) -> int:
    row = ClaimFingerprint(
        claim_id=claim_id, order_id="ord_x", buyer_id="buyer-1", merchant_id="shop-i",
        photo_sha256=f"{seed:064x}", variant="full", pdq=_code(seed), quality=100,
    )  # fmt: skip
    if ident is not None:
        row.id = ident
    session.add(row)
    session.flush()
    return row.id


def _found(cache: IndexCache, database: Database, seed: int) -> bool:
    with database.session() as session:
        cache.refresh(session)
    return bool(cache.claims.search(bytes.fromhex(_code(seed)), 0))


def test_a_print_committed_after_a_later_one_was_read_is_still_indexed(
    database: tuple[Database, str],
) -> None:
    db, claim_id = database
    cache = IndexCache()
    if db.engine.dialect.name == "postgresql":
        # Two transactions: the first takes its id, the second takes the next and commits first.
        slow = db.sessions()
        first = _print(slow, claim_id, 1)
        with db.session() as fast:
            second = _print(fast, claim_id, 2)
        assert first < second
        assert _found(cache, db, 2) and not _found(cache, db, 1)
        slow.commit()
        slow.close()
    else:
        with db.session() as session:
            _print(session, claim_id, 2, ident=12)
        assert _found(cache, db, 2) and not _found(cache, db, 1)
        with db.session() as session:
            _print(session, claim_id, 1, ident=11)
    assert _found(cache, db, 1), "the late print was skipped for good"
    # A long transaction (a bank import) holds thousands of ids while a later one commits.
    with db.session() as session:
        _print(session, claim_id, 4, ident=5000)
    assert _found(cache, db, 4)
    with db.session() as session:
        for seed in range(100, 1600):
            _print(session, claim_id, seed, ident=3000 + seed)
    assert all(_found(cache, db, seed) for seed in (100, 800, 1599))
    # And the index does not ask for a skipped id for ever: past the late-commit window a
    # gap is given up (a rolled-back insert never commits).
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=cache.late_commit_seconds + 1)
    with db.session() as session:
        _print(session, claim_id, 3, ident=6000)  # ids below it never committed
        cache.refresh(session)
        assert cache.waiting_for()
        cache.refresh(session, now=later)
        assert not cache.waiting_for()


def test_the_sketch_index_reads_only_the_latest_photos_prints(
    database: tuple[Database, str],
) -> None:
    # A first refresh of a large table must not carry every photo's print out of the database
    # (about 6 KB each): the index holds the latest reuse_print_index_photos.
    import numpy as np

    from refundlens.reuse.prints import local_print

    db, claim_id = database
    rng = np.random.default_rng(5)
    prints = [local_print(rng.integers(0, 256, (96, 128, 3), np.uint8)) for _ in range(6)]
    with db.session() as session:
        for seed, found in enumerate(prints):
            row = session.get(ClaimFingerprint, _print(session, claim_id, seed))
            assert row is not None
            row.local_print = found.to_text()
        _print(session, claim_id, 99)  # a crop's row, or an old one: no print
    cache = IndexCache(print_capacity=4)
    with db.session() as session:
        cache.refresh(session)
    assert len(cache.claim_prints) == 4
    with db.session() as session:
        ids = sorted(
            session.query(ClaimFingerprint.id)
            .filter(ClaimFingerprint.local_print.is_not(None))
            .all()
        )
    latest = {ident for (ident,) in ids[-4:]}
    named = set(cache.claim_prints.candidates((prints[-1], prints[-1]), most=10))
    assert named and named <= latest


def test_only_claims_filed_before_count_against_a_claim(database: tuple[Database, str]) -> None:
    # Two claims of one photo filed a moment apart: the analysis of the first may run after the
    # second arrived, and must not find the first claim reusing the second's photo.
    from refundlens.reuse.history import History

    db, first = database
    with db.session() as session:
        order = session.get(Claim, first).order_id  # type: ignore[union-attr]
        other_order = Order(
            id=new_id("ord"), merchant_id="shop-i", external_id="o-2",
            sku_id=session.get(Order, order).sku_id, buyer_id="buyer-2", amount=10.0,
            currency="CNY",
        )  # fmt: skip
        session.add(other_order)
        session.flush()
        second = new_id("clm")
        _claim(session, second, 2, other_order)
        for claim_id, order_id in ((first, order), (second, other_order.id)):
            session.add(
                ClaimFingerprint(
                    claim_id=claim_id,
                    order_id=order_id,
                    buyer_id="b",
                    merchant_id="shop-i",
                    photo_sha256="a" * 64,
                    variant="full",
                    pdq=_code(7),
                    quality=100,
                )
            )

    def found(claim_id: str, order_id: str, filed_as: int | None) -> list[str]:
        history = History(
            db.sessions, IndexCache(), claim_id, order_id, "b", "shop-i", None,
            filed_as=filed_as,
        )  # fmt: skip
        return [m["claim"] for m in history.seen_before(bytes.fromhex(_code(7)))]

    assert found(first, order, 1) == []
    assert found(second, other_order.id, 2) == [first]
    assert found(first, order, None) == [second]  # a live capture repeats nothing at all
