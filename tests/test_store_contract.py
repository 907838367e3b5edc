"""One contract for every store: the memory store, SQLite and PostgreSQL answer the workflow alike.

Each test runs on the three (PostgreSQL skips, saying why, where no server is reachable and CI
is unset). The last tests walk a claim through the workflow on each store, with the same outcome.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refundlens import cases
from refundlens.cases import RoutingRules
from refundlens.config import Settings
from refundlens.store import BlobStore
from refundlens.store.interface import (
    ApiKey,
    Assessment,
    CaptureToken,
    Claim,
    ClaimFingerprint,
    ClaimPhoto,
    Decision,
    Evidence,
    Order,
    OrderReference,
    PackingVideo,
    ReferencePhoto,
    Sku,
    Store,
    Tenant,
    VideoFingerprint,
    WebhookEvent,
    new_id,
    utcnow,
)
from refundlens.store.memory import MemoryStore
from tests.service_support import backend

Opener = Callable[[], AbstractContextManager[Store]]


class Kit:
    """A store of one kind: ``open()`` is one transaction; ``seed`` adds what the CLI makes."""

    def __init__(self, kind: str, settings: Settings) -> None:
        self.kind, self.settings = kind, settings
        self.blobs = BlobStore(Path(settings.data_dir) / "blobs")
        if kind == "memory":
            memory = MemoryStore()
            self.memory = memory

            @contextmanager
            def opened() -> Iterator[Store]:
                yield memory

            self.open: Opener = opened
        else:
            from refundlens.store import Database
            from refundlens.store.sql.repositories import sql_stores

            self.database = Database(settings)
            self.database.upgrade()
            self.open = sql_stores(self.database)

    def seed(self, tenant: str, *, reviewer: str | None = None) -> None:
        row = Tenant(id=tenant, kind="merchant", name=tenant)
        key = ApiKey(id=reviewer, secret_hash="0" * 64, role="reviewer") if reviewer else None
        if self.kind == "memory":
            self.memory.add_tenant(row)
            if key is not None:
                self.memory.add_key(key, merchants=[tenant])
            return
        from refundlens.store.sql.models import ReviewerAssignment

        with self.database.session() as session:
            session.add(row)
            if key is not None:
                session.add(key)
                session.flush()
                session.add(ReviewerAssignment(key_id=key.id, tenant_id=tenant))

    def written(self) -> tuple[list[str], list[str]]:
        """(the audit log's actions, the outbox's events), oldest first."""
        if self.kind == "memory":
            tables = self.memory.tables
            return [e.action for e in tables.audit], [e.event for e in tables.outbox]
        from sqlalchemy import select

        from refundlens.store.sql.models import AuditEntry

        with self.database.session() as session:
            actions = session.execute(select(AuditEntry.action).order_by(AuditEntry.seq))
            events = session.execute(select(WebhookEvent.event).order_by(WebhookEvent.created_at))
            return list(actions.scalars()), list(events.scalars())


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def kit(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Kit]:
    with backend("sqlite" if request.param == "memory" else request.param) as url:
        made = Kit(request.param, Settings(data_dir=str(tmp_path), database_url=url))
        yield made
        if made.kind != "memory":
            made.database.dispose()


def _sku(store: Store, merchant: str, external_id: str = "mug") -> Sku:
    sku = Sku(id=new_id("sku"), merchant_id=merchant, external_id=external_id, title="Mug")
    store.catalogue.add_sku(sku)
    return sku


def _order(store: Store, sku: Sku, external_id: str = "o-1", amount: float = 100.0) -> Order:
    order = Order(
        id=new_id("ord"),
        merchant_id=sku.merchant_id,
        external_id=external_id,
        sku_id=sku.id,
        buyer_id="buyer-1",
        amount=amount,
        currency="CNY",
    )
    store.catalogue.add_order(order)
    return order


def _claim(store: Store, order: Order, state: str = "submitted") -> Claim:
    claim = Claim(
        id=new_id("clm"),
        seq=store.claims.next_seq(),
        order_id=order.id,
        merchant_id=order.merchant_id,
        buyer_id=order.buyer_id,
        claim_type="refund_only",
        amount=10.0,
        state=state,
    )
    store.claims.add(claim)
    return claim


def test_catalogue_lists_the_platform_tenants_with_a_webhook(kit: Kit) -> None:
    rows = [
        Tenant(id="shop", kind="merchant", name="s", webhook_url="http://h/s"),
        Tenant(id="p2", kind="platform", name="p", webhook_url="http://h/p2"),
        Tenant(id="p1", kind="platform", name="p", webhook_url="http://h/p1"),
        Tenant(id="p0", kind="platform", name="p"),
    ]
    for row in rows:
        if kit.kind == "memory":
            kit.memory.add_tenant(row)
        else:
            with kit.database.session() as session:
                session.add(row)
    with kit.open() as store:
        assert [t.id for t in store.catalogue.platform_webhooks()] == ["p1", "p2"]


def test_catalogue_finds_skus_orders_and_references_in_order(kit: Kit) -> None:
    kit.seed("m1")
    with kit.open() as store:
        assert store.catalogue.tenant("m1") is not None
        assert store.catalogue.tenant("nobody") is None
        sku = _sku(store, "m1")
        for name in ("first.jpg", "second.jpg"):
            store.catalogue.add_reference(
                sku,
                ReferencePhoto(
                    id=new_id("ref"),
                    sku_id=sku.id,
                    sha256=name[0] * 64,
                    name=name,
                    width=10,
                    height=10,
                    pdq="0" * 64,
                    created_at=utcnow() + dt.timedelta(minutes=len(name)),
                ),
            )
        order = _order(store, sku)
        for seconds in (3.0, 1.0):
            store.catalogue.add_order_reference(
                OrderReference(
                    id=new_id("oref"),
                    order_id=order.id,
                    sha256=f"{seconds:.0f}" * 64,
                    name=f"pack@{seconds}",
                    video_sha256="v" * 64,
                    seconds=seconds,
                )
            )
    with kit.open() as store:
        found = store.catalogue.sku_by_external_id("m1", "mug")
        assert found is not None and found.id == sku.id
        assert store.catalogue.sku_by_external_id("m2", "mug") is None
        assert [n for _, n in store.catalogue.reference_files(sku.id)] == [
            "first.jpg",
            "second.jpg",
        ]
        again = store.catalogue.order_by_external_id("m1", "o-1")
        assert again is not None and again.id == order.id
        assert [n for _, n in store.catalogue.order_reference_files(order.id)] == [
            "pack@1.0",
            "pack@3.0",
        ]
        # What existed at a moment (a claim's filing): "first.jpg" was added 9 minutes after
        # now, "second.jpg" 10 minutes after; the frames were kept now.
        moment = utcnow() + dt.timedelta(minutes=9.5)
        assert [n for _, n in store.catalogue.reference_files(sku.id, before=moment)] == [
            "first.jpg"
        ]
        assert store.catalogue.order_reference_files(order.id, before=moment) != []
        past = utcnow() - dt.timedelta(hours=1)
        assert store.catalogue.reference_files(sku.id, before=past) == []
        assert store.catalogue.order_reference_files(order.id, before=past) == []


def test_a_claims_analysis_uses_only_references_that_existed_when_it_was_filed(kit: Kit) -> None:
    """A merchant can fetch its claims' photos: one it adds to its SKU afterwards (the damage
    painted out) would make the honest photo look derived from it."""
    kit.seed("m1")
    with kit.open() as store:
        sku = _sku(store, "m1")
        order = _order(store, sku)
        claim = Claim(
            id=new_id("clm"), seq=1, order_id=order.id, merchant_id="m1", buyer_id="b1",
            claim_type="refund_only", amount=10.0, state="analysing",
            created_at=utcnow() - dt.timedelta(minutes=5),
        )  # fmt: skip
        store.claims.add(claim)
        for name, minutes in (("listing.jpg", -60), ("added-later.jpg", 1)):
            store.catalogue.add_reference(
                sku,
                ReferencePhoto(
                    id=new_id("ref"), sku_id=sku.id, sha256=name[0] * 64, name=name, width=10,
                    height=10, pdq="0" * 64, created_at=utcnow() + dt.timedelta(minutes=minutes),
                ),
            )  # fmt: skip
        # Packing frames are as old as their video's upload, whenever the worker kept them.
        for video_sha, minutes in (("a" * 64, -30), ("b" * 64, 1)):
            store.catalogue.add_packing_video(
                PackingVideo(
                    id=new_id("pvd"), order_id=order.id, video_sha256=video_sha, name="pack.mp4",
                    submitted_by="key", status="done",
                    created_at=utcnow() + dt.timedelta(minutes=minutes),
                )
            )  # fmt: skip
            store.catalogue.add_order_reference(
                OrderReference(
                    id=new_id("oref"), order_id=order.id, sha256=video_sha[0] * 64,
                    name=f"{video_sha[0]}@1.0", video_sha256=video_sha, seconds=1.0,
                )  # kept now, after the claim
            )  # fmt: skip
        claim_id = claim.id
    with kit.open() as store:
        _photos, references, _order_row = cases.input_files(store, claim_id)
        assert [name for _, name in references] == ["listing.jpg", "a@1.0"]
        # What a live capture must not repeat: every reference, however late.
        _photos, every, _order_row = cases.input_files(store, claim_id, as_filed=False)
        assert sorted(name for _, name in every) == [
            "a@1.0", "added-later.jpg", "b@1.0", "listing.jpg"
        ]  # fmt: skip

    # A claim filed later on the same order (the first one rejected, not as forged; the same
    # photo filed as another type) compares what the first claim compared: the shop's copy of
    # the photo with its damage painted out, added meanwhile, would make it look derived.
    with kit.open() as store:
        later = Claim(
            id=new_id("clm"), seq=2, order_id=order.id, merchant_id="m1", buyer_id="b1",
            claim_type="return_and_refund", amount=10.0, state="analysing",
            created_at=utcnow() + dt.timedelta(minutes=5),
        )  # fmt: skip
        store.claims.add(later)
        assert store.claims.first_claimed_on_order(order.id) == claim.created_at
    with kit.open() as store:
        _photos, references, _order_row = cases.input_files(store, later.id)
        assert [name for _, name in references] == ["listing.jpg", "a@1.0"]
        assert store.claims.first_claimed_on_order("ord_none") is None


def test_packing_videos_wait_in_their_outbox_until_marked(kit: Kit) -> None:
    kit.seed("m1")
    with kit.open() as store:
        order = _order(store, _sku(store, "m1"))
        video = PackingVideo(
            id=new_id("pvd"),
            order_id=order.id,
            video_sha256="v" * 64,
            name="pack.mp4",
            submitted_by="key",
            status="pending",
        )
        store.catalogue.add_packing_video(video)
    with kit.open() as store:
        assert store.catalogue.pending_packing_videos() == [(video.id, None)]
        store.catalogue.mark_packing_videos_queued([video.id], utcnow())
    with kit.open() as store:
        [(vid, queued)] = store.catalogue.pending_packing_videos()
        assert vid == video.id and queued is not None
        row = store.catalogue.packing_video(video.id, for_update=True)
        assert row is not None
        row.status = "done"
    with kit.open() as store:
        assert store.catalogue.pending_packing_videos() == []


def test_a_lease_has_one_holder_until_it_runs_out_or_is_let_go(kit: Kit) -> None:
    now = utcnow()
    later = now + dt.timedelta(seconds=60)
    with kit.open() as store:
        assert store.leases.take("tick.queue", "a", now, later)
    with kit.open() as store:  # its holder extends it while it holds
        assert store.leases.take("tick.queue", "a", now, later)
    with kit.open() as store:
        assert not store.leases.take("tick.queue", "b", now, later)
        store.leases.release("tick.queue", "b", now)  # not b's to let go
    with kit.open() as store:
        assert not store.leases.take("tick.queue", "b", now + dt.timedelta(seconds=1), later)
        assert store.leases.take("other", "b", now, later)  # another name, another lease
    with kit.open() as store:
        store.leases.release("tick.queue", "a", now)
    with kit.open() as store:
        assert store.leases.take("tick.queue", "b", now + dt.timedelta(seconds=1), later)
    with kit.open() as store:  # run out: a holder that died lets go
        assert store.leases.take("tick.queue", "c", later, later + dt.timedelta(seconds=60))


def test_what_an_orders_claims_hold_counts_the_latest_decision_of_each(kit: Kit) -> None:
    kit.seed("m1")
    with kit.open() as store:
        order = _order(store, _sku(store, "m1"))
        asked = _claim(store, order)
        partial, rejected = _claim(store, order, "decided"), _claim(store, order, "decided")
        reopened = _claim(store, order, "under_review")  # rejected, then appealed: open again
        for minutes, (claim, outcome, amount) in enumerate(
            (
                (partial, "rejected", None),
                (partial, "partial", 4.0),  # an appeal's later decision counts, not the first
                (rejected, "rejected", None),
                (reopened, "rejected", None),
            )
        ):
            store.claims.add_decision(
                Decision(
                    id=new_id("dec"),
                    claim_id=claim.id,
                    outcome=outcome,
                    amount=amount,
                    reason="r",
                    decided_by="rev",
                    created_at=utcnow() + dt.timedelta(minutes=minutes),
                )
            )
    with kit.open() as store:
        # 10 asked, 4 granted in part, 0 for the rejection, 10 for the claim appeal reopened.
        assert asked.id and store.claims.claimed_on_order(order.id) == pytest.approx(24.0)
        assert store.claims.claimed_on_order(order.id, besides=reopened.id) == pytest.approx(14.0)
        outcomes = [d.outcome for d in store.claims.decisions_of(partial.id)]
        assert outcomes == ["rejected", "partial"]
        # The decisions that stand against the buyer: the partial refund (a rejection of the
        # rest, which replaced the first rejection) and the rejection; not the one reopened by
        # an appeal.
        assert store.claims.rejected_on_order(order.id) == [
            (partial.id, partial.claim_type),
            (rejected.id, rejected.claim_type),
        ]
        assert store.claims.rejected_on_order(order.id, besides=rejected.id) == [
            (partial.id, partial.claim_type)
        ]


def test_claims_are_numbered_queued_and_beat_only_while_their_attempt_runs(kit: Kit) -> None:
    kit.seed("m1")
    with kit.open() as store:
        order = _order(store, _sku(store, "m1"))
        first, second = _claim(store, order), _claim(store, order)
        assert (first.seq, second.seq) == (1, 2)
        store.claims.add_photo(
            first,
            ClaimPhoto(
                id=new_id("pho"), claim_id=first.id, position=0, sha256="a" * 64, name="a.jpg"
            ),
        )
    with kit.open() as store:
        claim = store.claims.get(first.id)
        assert claim is not None and [p.name for p in claim.photos] == ["a.jpg"]
        assert claim.analysis_attempts == 0
        assert [cid for cid, _ in store.claims.submitted_queue()] == [first.id, second.id]
        store.claims.mark_queued([first.id], utcnow())
    with kit.open() as store:
        queue = dict(store.claims.submitted_queue())
        assert queue[first.id] is not None and queue[second.id] is None
        claim = store.claims.get(first.id, for_update=True)
        assert claim is not None
        claim.state, claim.analysis_attempts, claim.heartbeat_at = "analysing", 1, utcnow()
    with kit.open() as store:
        changed = store.claims.get(first.id)
        assert changed is not None
        changed_at = changed.updated_at
    with kit.open() as store:
        assert store.claims.beat(first.id, 1, utcnow())
        assert not store.claims.beat(first.id, 2, utcnow())  # not the running attempt
        assert not store.claims.beat(second.id, 0, utcnow())  # not analysing
        assert [c.id for c in store.claims.in_state("analysing")] == [first.id]
        store.claims.clear_heartbeats([first.id, second.id])
    with kit.open() as store:
        claim = store.claims.get(first.id)
        assert claim is not None and claim.heartbeat_at is None
        # Bookkeeping is no change of the claim: a platform's sync (updated_since) saw every
        # claim under analysis "changed" every 5 s (a review).
        assert claim.updated_at == changed_at


def test_waiting_claims_with_a_deadline_are_listed_for_the_scheduler(kit: Kit) -> None:
    kit.seed("m1")
    with kit.open() as store:
        order = _order(store, _sku(store, "m1"))
        waiting = _claim(store, order, "awaiting_merchant")
        waiting.deadline_at = utcnow()
        _claim(store, order, "awaiting_capture")  # no deadline: not listed
        _claim(store, order, "under_review")
    with kit.open() as store:
        listed = store.claims.waiting_with_deadline(["awaiting_merchant", "awaiting_capture"])
        assert [c.id for c in listed] == [waiting.id]


def test_assessments_evidence_tokens_prints_and_bank_read_back(kit: Kit) -> None:
    kit.seed("m1")
    with kit.open() as store:
        claim = _claim(store, _order(store, _sku(store, "m1")))
        assert store.assessments.latest(claim.id) is None
        assert store.assessments.last_attempt(claim.id) is None
        for attempt in (2, 1):
            store.assessments.add(
                Assessment(
                    id=new_id("asm"),
                    claim_id=claim.id,
                    attempt=attempt,
                    risk=0.1 * attempt,
                    action="review",
                    report={"attempt": attempt},
                )
            )
        store.evidence.add(
            Evidence(
                id=new_id("evd"),
                claim_id=claim.id,
                kind="statement",
                submitted_by="merchant",
                statement="x",
            )
        )
        store.evidence.add(
            Evidence(
                id=new_id("evd"),
                claim_id=claim.id,
                kind="unboxing_video",
                submitted_by="buyer",
                sha256="v" * 64,
            )
        )
        store.claims.add_capture_token(
            CaptureToken(id="cap_1", claim_id=claim.id, secret_hash="h" * 64, expires_at=utcnow())
        )
        store.fingerprints.add_photo_print(
            ClaimFingerprint(
                claim_id=claim.id,
                order_id=claim.order_id,
                buyer_id="buyer-1",
                merchant_id="m1",
                photo_sha256="a" * 64,
                pdq="f" * 64,
                quality=90,
            )
        )
        store.fingerprints.add_video_prints(
            [
                VideoFingerprint(
                    claim_id=claim.id,
                    order_id=claim.order_id,
                    buyer_id="buyer-1",
                    merchant_id="m1",
                    video_sha256="v" * 64,
                    seconds=0.0,
                    pdq="e" * 64,
                    quality=80,
                )
            ]
        )
        store.outbox.add(
            WebhookEvent(id=new_id("evt"), tenant_id="m1", event="claim.received", body={})
        )
    with kit.open() as store:
        latest = store.assessments.latest(claim.id)
        assert latest is not None and latest.attempt == 2 and latest.report == {"attempt": 2}
        assert store.assessments.last_attempt(claim.id) == 2
        assert [e.kind for e in store.evidence.of_kind(claim.id, "unboxing_video")] == [
            "unboxing_video"
        ]
        assert store.evidence.count_by(claim.id, "merchant", ("statement", "other")) == 1
        assert store.evidence.count_by(claim.id, "reviewer", ("statement",)) == 0
        # The unboxing video the claim brought is no item the buyer added as evidence.
        assert store.evidence.count_by(claim.id, "buyer", ("statement", "other")) == 0
        assert store.evidence.count_by(claim.id, "buyer", ("unboxing_video",)) == 1
        token = store.claims.capture_token("cap_1", for_update=True)
        assert token is not None and token.claim_id == claim.id and token.used_at is None
        assert [p.pdq for p in store.fingerprints.photo_prints(claim.id)] == ["f" * 64]
        # By time, every claim's (a live capture's last look for replays asks so).
        hour = dt.timedelta(hours=1)
        assert [p.pdq for p in store.fingerprints.photo_prints_since(utcnow() - hour)] == ["f" * 64]
        assert store.fingerprints.photo_prints_since(utcnow() + hour) == []
        assert store.fingerprints.printed_videos(claim.id) == {"v" * 64}
        assert not store.bank.holds("ours", "f" * 64)
        from refundlens.store.interface import BankEntry

        for bank in ("ours", "theirs"):
            store.bank.add(
                BankEntry(
                    bank=bank,
                    signer=bank,
                    pdq=("f" if bank == "ours" else "e") * 64,
                    codes=[],
                    confirmed_at=utcnow(),
                    claim_id=claim.id,
                )
            )
    with kit.open() as store:
        assert store.bank.holds("ours", "f" * 64)
        assert not store.bank.holds("theirs", "f" * 64)
        # Withdrawn from one bank only: a partner's entries are the partner's.
        assert store.bank.withdraw("ours", claim.id) == 1
    with kit.open() as store:
        assert not store.bank.holds("ours", "f" * 64)
        assert store.bank.holds("theirs", "e" * 64)


def test_the_audit_log_chains_and_verifies(kit: Kit) -> None:
    with kit.open() as store:
        store.audit.lock()
        first = store.audit.append("key-1", "claim.submitted", claim_id="clm_1", details={"n": 1})
        second = store.audit.append("system", "claim.analysed", details={"when": utcnow()})
        assert (first.seq, second.seq) == (1, 2)
        assert second.prev_hash == first.entry_hash
    with kit.open() as store:
        assert store.audit.verify() == (2, None)


def test_the_audit_log_counts_and_reads_back_a_claims_entries_by_action(kit: Kit) -> None:
    with kit.open() as store:
        for by in ("merchant", "buyer", "merchant"):
            store.audit.append("k", "claim.appealed", claim_id="clm_1", details={"by": by})
        store.audit.append("k", "claim.appealed", claim_id="clm_2", details={"by": "buyer"})
        store.audit.append("k", "claim.assigned", claim_id="clm_1")
    with kit.open() as store:
        assert store.audit.count("clm_1", "claim.appealed") == 3
        said = store.audit.details_of("clm_1", "claim.appealed")
        assert [d["by"] for d in said] == ["merchant", "buyer", "merchant"]
        assert store.audit.details_of("clm_1", "claim.assigned") == [{}]
        assert store.audit.details_of("clm_3", "claim.appealed") == []


def test_access_knows_reviewer_keys_and_their_merchants(kit: Kit) -> None:
    kit.seed("m1", reviewer="rev-1")
    kit.seed("m2")
    with kit.open() as store:
        key = store.access.api_key("rev-1")
        assert key is not None and key.role == "reviewer"
        assert store.access.reviewer_assigned("rev-1", "m1")
        assert not store.access.reviewer_assigned("rev-1", "m2")
        assert store.access.api_key("nobody") is None


def _photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (200, 256, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_a_claim_walks_the_workflow_alike_on_every_store(kit: Kit) -> None:
    """SKU, order, claim, analysis routed to the merchant's window, a reviewer's decision: the same states,
    audit trail and notifications on the memory store as on the databases."""
    kit.seed("m1", reviewer="rev-1")
    merchant, reviewer = cases.Actor("key-m", "merchant"), cases.Actor("rev-1", "reviewer")
    settings = kit.settings
    with kit.open() as store:
        sku = cases.create_sku(
            store, kit.blobs, settings, merchant, "m1", "mug", "Mug", [("l.jpg", _photo(1))]
        )
        order = cases.create_order(
            store, merchant, "m1", "o-1", sku.id, "buyer-1", 120.0, "CNY", None, None, None
        )
        claim = cases.create_claim(
            store,
            kit.blobs,
            settings,
            cases.Actor("key-b", "buyer"),
            order,
            "refund_only",
            "cracked",
            50.0,
            [("c.jpg", _photo(2))],
        )
        claim_id = claim.id
    with kit.open() as store:
        assert cases.claims_to_queue(store, settings) == [claim_id]
        cases.mark_queued(store, [claim_id])
        attempt = cases.start_analysis(store, claim_id, settings)
        assert attempt == 1
        assert cases.beat(store, claim_id, attempt)
    with kit.open() as store:
        photos, references, _ = cases.input_files(store, claim_id)
        assert [n for _, n in photos] == ["c.jpg"] and [n for _, n in references] == ["l.jpg"]
        report = {"claim": {"risk": 0.6, "action": "review"}, "images": []}
        routed = cases.finish_analysis(store, claim_id, attempt, report, RoutingRules(), settings)
        assert routed is not None and routed.state == "awaiting_merchant"
        assert (
            cases.finish_analysis(store, claim_id, attempt, report, RoutingRules(), settings)
            is None
        )
    with kit.open() as store:
        claim = store.claims.get(claim_id, for_update=True)
        assert claim is not None
        cases.assign(store, reviewer, claim, "rev-1")
        cases.decide(store, reviewer, claim, "approve", "photos consistent", None, settings)
        assert claim.state == "decided"
    with kit.open() as store:
        assert store.audit.verify() == (8, None)
    assert kit.written() == (
        [
            "sku.saved",
            "order.saved",
            "claim.submitted",
            "claim.analysing",
            "claim.analysed",
            "claim.assigned",
            "claim.window_closed",
            "decision.approve",
        ],
        ["claim.received", "claim.analysed", "merchant.asked", "claim.decided"],
    )


def test_the_amount_rules_weigh_a_claim_with_the_orders_other_claims(kit: Kit) -> None:
    # A buyer split one refund into claims of 100 on an order of 500, each under the limit of
    # 200 above which a refund-only claim goes to a person: all five were approved (a security
    # review). The order's running total is what the limit weighs.
    kit.seed("m1")
    merchant, buyer = cases.Actor("key-m", "merchant"), cases.Actor("key-b", "buyer")
    settings = kit.settings
    with kit.open() as store:
        sku = cases.create_sku(
            store, kit.blobs, settings, merchant, "m1", "mug", "Mug", [("l.jpg", _photo(1))]
        )
        order_id = cases.create_order(
            store, merchant, "m1", "o-1", sku.id, "buyer-1", 500.0, "CNY", None, None, None
        ).id
    # Each photo recognised as a new photo of the ordered item: nothing else asks for more.
    report = {
        "claim": {"risk": 0.05, "action": "approve"},
        "images": [{"findings": [{"code": "reference.same_item_new_photo", "facts": {}}]}],
    }
    routed = []
    for seed in (2, 3, 4):
        with kit.open() as store:
            order = store.catalogue.order(order_id)
            assert order is not None
            claim_id = cases.create_claim(
                store, kit.blobs, settings, buyer, order, "refund_only", "", 100.0,
                [("c.jpg", _photo(seed))],
            ).id  # fmt: skip
        with kit.open() as store:
            cases.mark_queued(store, [claim_id])
            attempt = cases.start_analysis(store, claim_id, settings)
            claim = cases.finish_analysis(
                store, claim_id, attempt, report, RoutingRules(), settings
            )
            assert claim is not None
            routed.append((claim.state, claim.routing_reason))
    assert [state for state, _ in routed] == ["approved", "approved", "awaiting_merchant"]
    assert routed[2][1] == (
        "with the order's other claims, 300 is claimed on this order: above 200, a person decides"
    )


def test_a_buyers_claims_are_weighed_together_over_the_window_before_each(kit: Kit) -> None:
    # A security review: many small claims by one buyer, each under every limit, were each
    # approved. Claims filed before this one in the window count (any shop, any currency for
    # the count, the policy's for the amount); later ones, older ones, other buyers' do not.
    kit.seed("m1")
    kit.seed("m2")
    merchant, buyer = cases.Actor("key-m", "merchant"), cases.Actor("key-b", "buyer")
    settings = kit.settings
    report = {
        "claim": {"risk": 0.05, "action": "approve"},
        "images": [{"findings": [{"code": "reference.same_item_new_photo", "facts": {}}]}],
    }
    by_count = RoutingRules(
        buyer_claims_max={"refund_only": 3}, buyer_claimed_max_amount={"refund_only": None}
    )
    by_amount = RoutingRules(
        buyer_claims_max={"refund_only": None}, buyer_claimed_max_amount={"refund_only": 150.0}
    )
    with kit.open() as store:
        skus = {
            shop: cases.create_sku(
                store, kit.blobs, settings, merchant, shop, "mug", "Mug", [("l.jpg", _photo(1))]
            ).id
            for shop in ("m1", "m2")
        }
    made = 0

    def file(buyer_id: str, amount: float, currency: str = "CNY") -> str:
        nonlocal made
        made += 1
        shop = ("m1", "m2")[made % 2]
        with kit.open() as store:
            order = cases.create_order(
                store, merchant, shop, f"o-{made}", skus[shop], buyer_id, 500.0, currency,
                None, None, None,
            )  # fmt: skip
            return cases.create_claim(
                store, kit.blobs, settings, buyer, order, "refund_only", "", amount,
                [("c.jpg", _photo(made + 10))],
            ).id  # fmt: skip

    def analyse(claim_id: str, rules: RoutingRules) -> tuple[str, str]:
        with kit.open() as store:
            cases.mark_queued(store, [claim_id])
            attempt = cases.start_analysis(store, claim_id, settings)
            claim = cases.finish_analysis(store, claim_id, attempt, report, rules, settings)
            assert claim is not None
            return claim.state, claim.routing_reason

    first = [file("buyer-1", 40.0), file("buyer-1", 40.0, "USD"), file("buyer-1", 40.0)]
    fourth = file("buyer-1", 40.0)
    other_buyer = file("buyer-2", 40.0)
    # Analysed in reverse: a claim is held to what was filed before it, not after (the one in
    # USD goes to a person for its currency, the amount limits being in CNY).
    states = [analyse(c, by_count)[0] for c in reversed(first)]
    assert states == ["approved", "awaiting_merchant", "approved"]
    assert analyse(fourth, by_count) == (
        "awaiting_merchant",
        "the buyer filed more claims in the last 30 days than this platform approves "
        "automatically: a person decides",
    )
    assert analyse(other_buyer, by_count)[0] == "approved"
    with kit.open() as store:
        for claim_id in first[:2]:  # filed 31 days ago
            old = store.claims.get(claim_id, for_update=True)
            assert old is not None
            old.created_at = utcnow() - dt.timedelta(days=31)
    fifth = file("buyer-1", 100.0)
    # In the window: the third and fourth claims (80 in CNY); with this one, 180 > 150.
    assert analyse(fifth, by_amount) == (
        "awaiting_merchant",
        "the buyer's claims of the last 30 days ask for more than this platform approves "
        "automatically: a person decides",
    )
    sixth = file("buyer-1", 60.0)
    with kit.open() as store:  # the fifth (100) out of the window too: 80 + 60 <= 150
        old = store.claims.get(fifth, for_update=True)
        assert old is not None
        old.created_at = utcnow() - dt.timedelta(days=31)
    assert analyse(sixth, by_amount)[0] == "approved"
    with kit.open() as store:
        assert store.claims.filed_by_buyer("buyer-1", utcnow() - dt.timedelta(days=60), 10**9) == {
            "CNY": (5, 280.0),
            "USD": (1, 40.0),
        }


def test_unprinted_videos_of_earlier_claims_not_analysed_yet_are_listed_latest_first(
    kit: Kit,
) -> None:
    kit.seed("m1")
    with kit.open() as store:
        order = _order(store, _sku(store, "m1"))
        claims = [_claim(store, order, state) for state in ("submitted", "analysing", "decided")]
        for n, claim in enumerate(claims):
            for kind in ("unboxing_video", "statement"):
                store.evidence.add(
                    Evidence(
                        id=new_id("evd"), claim_id=claim.id, kind=kind, submitted_by="buyer",
                        sha256=f"{n}{kind[0]}".ljust(64, "0"), name=f"v{n}.mp4",
                    )
                )  # fmt: skip
        later = _claim(store, order)
        ids = [c.id for c in claims]
    waiting = ("submitted", "analysing")
    hour_ago = utcnow() - dt.timedelta(hours=1)

    def unprinted(store: Store, before: int, limit: int = 10) -> list[object]:
        return list(store.fingerprints.unprinted_videos_before(before, hour_ago, waiting, limit))

    with kit.open() as store:
        listed = unprinted(store, later.seq)
        # Latest first; a decided claim's analysis is over; a statement is no video.
        assert [(v.claim_id, v.name) for v in listed] == [(ids[1], "v1.mp4"), (ids[0], "v0.mp4")]
        assert listed[0].buyer_id == "buyer-1" and listed[0].order_id == order.id
        assert unprinted(store, later.seq, 1) == listed[:1]
        assert unprinted(store, claims[1].seq) == listed[1:]
        store.fingerprints.add_video_prints(
            [
                VideoFingerprint(
                    claim_id=ids[1], order_id=order.id, buyer_id="buyer-1", merchant_id="m1",
                    video_sha256=listed[0].sha256, seconds=0.0, pdq="0" * 64, quality=90,
                )
            ]
        )  # fmt: skip
    with kit.open() as store:
        assert unprinted(store, later.seq) == listed[1:]
        # Filed before the window: no analysis decodes it again (a video that yields no
        # fingerprint stays unprinted).
        first = store.claims.get(ids[0], for_update=True)
        assert first is not None
        first.created_at = utcnow() - dt.timedelta(hours=2)
    with kit.open() as store:
        assert unprinted(store, later.seq) == []


def test_a_claim_the_merchant_answered_goes_to_a_person_and_the_platforms_evidence_is_no_answer(
    kit: Kit,
) -> None:
    # A review: a packing video the merchant put on the order after the claim is its answer
    # (its frames are left out of the analysis: a person weighs them); evidence the platform
    # adds (it may file for the buyer) is not the merchant's. With claims_within_order_amount
    # off, the order's amount does not send the claim to a person.
    kit.seed("m1")
    merchant, buyer = cases.Actor("key-m", "merchant"), cases.Actor("key-b", "buyer")
    settings = kit.settings
    with kit.open() as store:
        sku = cases.create_sku(
            store, kit.blobs, settings, merchant, "m1", "mug", "Mug", [("l.jpg", _photo(1))]
        )
        orders = [
            cases.create_order(
                store, merchant, "m1", f"o-{n}", sku.id, "buyer-1", 100.0, "CNY", None, None, None
            ).id
            for n in range(3)
        ]
    report = {
        "claim": {"risk": 0.05, "action": "approve"},
        "images": [{"findings": [{"code": "reference.same_item_new_photo", "facts": {}}]}],
    }

    def routed(order_id: str, seed: int, meanwhile: Callable[[Store, str], None]) -> Claim:
        with kit.open() as store:
            order = store.catalogue.order(order_id)
            assert order is not None
            claim_id = cases.create_claim(
                store, kit.blobs, settings, buyer, order, "return_and_refund", "", 100.0,
                [("c.jpg", _photo(seed))],
            ).id  # fmt: skip
        with kit.open() as store:
            meanwhile(store, claim_id)
            cases.mark_queued(store, [claim_id])
            attempt = cases.start_analysis(store, claim_id, settings)
            claim = cases.finish_analysis(
                store, claim_id, attempt, report, RoutingRules(), settings
            )
            assert claim is not None
            return claim

    def packing_video(store: Store, claim_id: str) -> None:
        claim = store.claims.get(claim_id)
        assert claim is not None
        store.catalogue.add_packing_video(
            PackingVideo(
                id=new_id("pvd"), order_id=claim.order_id, video_sha256="c" * 64,
                name="pack.mp4", submitted_by="key-m", status="done",
                created_at=utcnow() + dt.timedelta(minutes=1),
            )
        )  # fmt: skip

    def platform_statement(store: Store, claim_id: str) -> None:
        store.evidence.add(
            Evidence(
                id=new_id("evd"), claim_id=claim_id, kind="statement", submitted_by="admin",
                statement="filed for the buyer by phone",
            )
        )  # fmt: skip

    answered = routed(orders[0], 2, packing_video)
    assert answered.state == "under_review" and "merchant answered" in answered.routing_reason
    assert routed(orders[1], 3, platform_statement).state == "approved"
    # Over the order's amount (another claim holds it all), with the rule off: not held to it.
    with kit.open() as store:
        store.claims.add(
            Claim(
                id=new_id("clm"), seq=store.claims.next_seq(), order_id=orders[2],
                merchant_id="m1", buyer_id="buyer-1", claim_type="repair", amount=100.0,
                state="approved",
            )
        )  # fmt: skip
    settings = settings.replace(claims_within_order_amount=False)
    assert routed(orders[2], 4, lambda store, claim_id: None).state == "approved"
