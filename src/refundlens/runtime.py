"""What the API and the workers share, built once per process: settings, database, blobs,
policy, routing rules and the in-memory caches (reuse index, decoded references)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from .cases.routing import RoutingRules
from .config import Settings, service_settings
from .fusion import load_policy
from .media.cache import DecodedCache
from .reuse.bank import buyer_hmac
from .reuse.history import History, IndexCache
from .store import BlobStore, Database
from .store.sql.models import Order

__all__ = ["Runtime"]


class Runtime:
    """What a task or a request needs, built once per process."""

    def __init__(self, settings: Settings) -> None:
        settings = service_settings(settings)
        self.settings = settings
        self.db = Database(settings)
        self.blobs = BlobStore(f"{settings.data_dir}/blobs")
        self.policy = load_policy(settings.policy_path or None)
        self.rules = RoutingRules.from_policy(self.policy.routing)
        self.index_cache = IndexCache(
            settings.reuse_index_shards,
            settings.reuse_min_pdq_quality,
            settings.reuse_index_late_commit_seconds,
            settings.reuse_print_index_photos,
        )
        self.references = DecodedCache(settings.worker_reference_cache_size, settings)
        # Pages that analyse a photo or start Chromium in the API process take a slot each.
        self.heavy_work = threading.BoundedSemaphore(max(1, settings.web_heavy_work_slots))
        self.heavy_holders: set[str] = set()
        self.heavy_lock = threading.Lock()
        # Uploads (claims, SKU photos, evidence, packing videos) being decoded and stored.
        self.upload_work = threading.BoundedSemaphore(max(1, settings.upload_decode_slots))
        # Live captures being decoded and checked, and the links they came on.
        self.capture_work = threading.BoundedSemaphore(max(1, settings.capture_decode_slots))
        self.captures_in_flight: set[str] = set()
        self.captures_lock = threading.Lock()

    @contextlib.contextmanager
    def heavy_slot(self, holder: str | None) -> Iterator[bool]:
        """One of the process's ``web_heavy_work_slots`` for ``holder`` (a key's id): yields
        whether it was taken. None is free, or ``holder`` holds one already while there are
        more: one credential takes at most one slot, so that another always finds one (a review:
        two looping report requests of one shop held both, and every other shop was busy)."""
        with self.heavy_lock:
            if (
                holder is not None
                and holder in self.heavy_holders
                and self.settings.web_heavy_work_slots > 1
            ):
                taken = False
            else:
                taken = self.heavy_work.acquire(blocking=False)
                if taken and holder is not None:
                    self.heavy_holders.add(holder)
        try:
            yield taken
        finally:
            if taken:
                with self.heavy_lock:
                    if holder is not None:
                        self.heavy_holders.discard(holder)
                self.heavy_work.release()

    def history(self, claim_id: str, order: Order, filed_as: int | None = None) -> History:
        """Cross-claim and bank lookups for ``claim_id`` (of ``order``): the analysis' reuse
        check and the live capture's replay check ask the same index. ``filed_as`` (the claim's
        number): only claims filed before it count (the analysis); None: every claim (a live
        capture)."""
        return History(
            self.db.sessions,
            self.index_cache,
            claim_id,
            order.id,
            order.buyer_id,
            order.merchant_id,
            buyer_hmac(self.settings.bank_buyer_hmac_key, order.buyer_id),
            self.settings.reuse_max_distance,
            self.blobs,
            self.settings.reuse_local_feature_candidates,
            filed_as,
            self.settings,
        )
