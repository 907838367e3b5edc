"""Bad days (issue 18, items 5-8): a locked database, a video bomb, a broker that is down, a
worker killed mid-analysis. Each test sets the fault up for real and measures what the service
does about it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from refundlens.config import Settings
from refundlens.store import Database
from refundlens.store.sql.models import Claim

from .service_support import Server, free_port, running_server


def test_a_database_locked_past_the_busy_timeout_answers_503_with_retry_after_never_500(
    tmp_path: Path,
) -> None:
    with running_server(
        tmp_path / "data", sqlite_busy_timeout_seconds=0.3, busy_retry_after_seconds=3
    ) as server:
        # Another writer holds SQLite's write lock (a long transaction elsewhere).
        holder = sqlite3.connect(tmp_path / "data" / "refundlens.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with server.client(server.admin) as admin:
                started = time.monotonic()
                r = admin.post("/v1/tenants", json={"id": "t", "kind": "merchant", "name": "t"})
                waited = time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert r.status_code == 503, r.text
        assert r.json()["error"]["code"] == "service.busy"
        assert r.headers["Retry-After"] == "3"
        assert waited < 2.0  # the busy timeout, not SQLite's default of never or the old 30 s
        with server.client(server.admin) as admin:  # the lock gone, the same request succeeds
            again = admin.post("/v1/tenants", json={"id": "t", "kind": "merchant", "name": "t"})
        assert again.status_code == 201, again.text


class PrivateRedis:
    """A redis-server of this test's own on a free loopback port, to stop and start at will."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--dir",
                str(self.folder),
                "--pidfile",
                str(self.folder / "redis.pid"),
            ],
            check=True,
            capture_output=True,
        )
        deadline = time.time() + 10
        while not self.up():
            if time.time() > deadline:
                raise RuntimeError(f"redis-server on {self.port} did not start")
            time.sleep(0.05)

    def up(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop the server this object started (by the pid in its pid file), and wait for it."""
        pidfile = self.folder / "redis.pid"
        if not pidfile.exists():
            return
        pid = int(pidfile.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and (self.up() or pidfile.exists()):
            time.sleep(0.02)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but redis-server is not installed")
        pytest.skip("redis-server is not installed (the broker fault tests start their own)")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = PrivateRedis(folder)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    from .service_support import backend

    with backend(request.param) as url:
        yield url


def _shop(server: Server) -> str:
    """A merchant with one SKU and one order for buyer ``b``; returns the order id."""
    listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
    with server.client(server.admin) as admin:
        admin.post("/v1/tenants", json={"id": "shop", "kind": "merchant", "name": "shop"})
    with server.client(server.key("merchant", "shop")) as merchant:
        sku = merchant.post(
            "/v1/skus",
            data={"external_id": "mug"},
            files=[("photos", ("listing.jpg", listing, "image/jpeg"))],
        ).json()["id"]
        order = merchant.post(
            "/v1/orders", json={"external_id": "o", "sku_id": sku, "buyer_id": "b", "amount": 100}
        )
        assert order.status_code == 201, order.text
        return str(order.json()["id"])


def _claim_row(settings: Settings, claim_id: str) -> Claim:
    database = Database(settings)
    try:
        with database.session() as session:
            claim = session.get(Claim, claim_id)
            assert claim is not None
            session.expunge(claim)
            return claim
    finally:
        database.dispose()


def _queued_tasks(redis_server: PrivateRedis) -> list[tuple[str, str]]:
    """(task name, its arguments) of every message waiting in the refundlens queue."""
    import json

    import redis

    waiting = redis.Redis(port=redis_server.port).lrange("refundlens", 0, -1)
    return [
        (json.loads(m)["headers"]["task"], json.loads(m)["headers"]["argsrepr"]) for m in waiting
    ]


def test_a_claim_filed_while_the_broker_is_down_is_saved_answered_201_and_queued_when_it_is_back(
    tmp_path: Path, private_redis: PrivateRedis, database_url: str
) -> None:
    from refundlens.workers.runner import Dispatcher

    photo = resources.files("refundlens").joinpath("samples/claim_forged.jpg").read_bytes()
    with running_server(
        tmp_path / "data", database_url=database_url, broker_url=private_redis.url
    ) as server:
        order = _shop(server)
        with server.client() as anyone:
            ready = anyone.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {
                "database": "ok",
                "migrations": "ok",
                "blobs": "ok",
                "pii_key": "ok",
                "broker": "ok",
            }
        private_redis.stop()  # the broker goes down
        with server.client() as anyone:
            ready = anyone.get("/readyz")
            assert anyone.get("/healthz").status_code == 200  # alive, but not ready
        assert ready.status_code == 503
        # In a word: /readyz needs no key, and the error's text named the broker's host and port.
        assert ready.json()["checks"]["broker"] == "unreachable"
        assert ready.json()["checks"]["database"] == "ok"
        file_claim = {
            "data": {"order_id": order, "type": "refund_only", "amount": "50"},
            "files": [("photos", ("c.jpg", photo, "image/jpeg"))],
            "headers": {"Idempotency-Key": "k1"},
        }
        with server.client(server.key("buyer", subject="b")) as buyer:
            created = buyer.post("/v1/claims", **file_claim)  # type: ignore[arg-type]
            assert created.status_code == 201, created.text  # saved; queued later
            claim_id = created.json()["id"]
            assert _claim_row(server.settings, claim_id).queued_at is None  # in the outbox
            again = buyer.post("/v1/claims", **file_claim)  # type: ignore[arg-type]
            assert (again.status_code, again.json()["id"]) == (200, claim_id)
            private_redis.start()  # the broker is back
            assert _queued_tasks(private_redis) == []
            # The tick (beat's task in a Celery deployment) empties the outbox.
            ticker = Dispatcher(server.settings)
            ticker.run_tick()
            ticker.runtime.db.dispose()
            assert _queued_tasks(private_redis) == [("refundlens.analyse_claim", f"['{claim_id}']")]
            row = _claim_row(server.settings, claim_id)
            assert row.state == "submitted" and row.queued_at is not None
            ticker = Dispatcher(server.settings)  # a second tick does not queue it twice
            ticker.run_tick()
            ticker.runtime.db.dispose()
            assert len(_queued_tasks(private_redis)) == 1


def test_a_claim_retried_with_its_idempotency_key_once_the_broker_is_back_is_queued_then(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    photo = resources.files("refundlens").joinpath("samples/claim_forged.jpg").read_bytes()
    with running_server(tmp_path / "data", broker_url=private_redis.url) as server:
        order = _shop(server)
        private_redis.stop()
        file_claim = {
            "data": {"order_id": order, "type": "refund_only", "amount": "50"},
            "files": [("photos", ("c.jpg", photo, "image/jpeg"))],
            "headers": {"Idempotency-Key": "k2"},
        }
        with server.client(server.key("buyer", subject="b")) as buyer:
            created = buyer.post("/v1/claims", **file_claim)  # type: ignore[arg-type]
            assert created.status_code == 201, created.text
            private_redis.start()
            again = buyer.post("/v1/claims", **file_claim)  # type: ignore[arg-type]
        assert (again.status_code, again.json()["id"]) == (200, created.json()["id"])
        assert _queued_tasks(private_redis) == [
            ("refundlens.analyse_claim", f"['{created.json()['id']}']")
        ]
        assert _claim_row(server.settings, created.json()["id"]).queued_at is not None


def _packing_order(server: Server) -> tuple[str, str]:
    """(merchant key, order id) of shop's order, made through the API."""
    order = _shop(server)
    return server.key("merchant", "shop"), order


def _order_references(settings: Settings, order_id: str, timeout: float = 120.0) -> list[str]:
    """The names of the order's references once its packing video is processed."""
    from sqlalchemy import select

    from refundlens.store.sql.models import OrderReference

    deadline = time.time() + timeout
    while time.time() < deadline:
        database = Database(settings)
        try:
            with database.session() as session:
                names = list(
                    session.execute(
                        select(OrderReference.name).where(OrderReference.order_id == order_id)
                    ).scalars()
                )
        finally:
            database.dispose()
        if names:
            return names
        time.sleep(0.1)
    raise AssertionError(f"order {order_id} got no references within {timeout} s")


def test_a_slow_packing_video_holds_no_database_lock_other_tenants_write_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's packing video held SQLite's write lock for 38 s while its frames were
    decoded; here key-frame selection is made to take 3 s, and another tenant's writes during
    it must not wait for it."""
    import threading

    from refundlens.media import video as video_module
    from refundlens.runtime import Runtime
    from refundlens.workers.tasks import tick

    from .test_video import packing_video

    real = video_module.key_frames
    busy = threading.Event()

    def slow_key_frames(*args: object, **kwargs: object) -> object:
        busy.set()
        time.sleep(3.0)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(video_module, "key_frames", slow_key_frames)
    packing_video(tmp_path / "packing.mp4")
    # Analyses on a thread of this process, so that the slowed function is the one that runs.
    with running_server(tmp_path / "data", embedded_analysis_processes=0) as server:
        merchant, order = _packing_order(server)
        result: dict[str, object] = {}

        def upload() -> None:
            with server.client(merchant) as client:
                result["r"] = client.post(
                    f"/v1/orders/{order}/packing-video",
                    files=[
                        (
                            "video",
                            ("packing.mp4", (tmp_path / "packing.mp4").read_bytes(), "video/mp4"),
                        )
                    ],
                )

        uploader = threading.Thread(target=upload)
        uploader.start()
        assert busy.wait(30), "key frames were never chosen"
        waits = []
        with server.client(server.admin) as admin:
            for n in range(3):  # another tenant's writes while the video is worked on
                started = time.monotonic()
                r = admin.post(
                    "/v1/tenants", json={"id": f"other{n}", "kind": "merchant", "name": "x"}
                )
                waits.append(time.monotonic() - started)
                assert r.status_code == 201, r.text
        # The scheduler's tick too (windows, reaper, outbox, webhooks), with its own connection.
        runtime = Runtime(server.settings)
        started = time.monotonic()
        tick(runtime, requeue=lambda _cid: None, requeue_video=lambda _vid: None)
        waits.append(time.monotonic() - started)
        runtime.db.dispose()
        uploader.join(60)
        names = _order_references(server.settings, order)
    assert max(waits) < 1.0, f"other tenants and the tick waited {waits} s"
    assert names and all(name.startswith("packing.mp4@") for name in names)


def test_packing_video_frames_are_decoded_by_the_task_runner_not_in_the_api_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded default analyses in a process beside the server: with video decoding
    broken in the server's own process, a packing video is still accepted (202) and its frames
    still become the order's references, so the API never held its frames."""
    from refundlens.media import video as video_module

    from .test_video import packing_video

    def no_decoding_here(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("a video was decoded in the API process")

    monkeypatch.setattr(video_module, "read_video", no_decoding_here)
    packing_video(tmp_path / "packing.mp4")
    with running_server(tmp_path / "data") as server:
        merchant, order = _packing_order(server)
        with server.client(merchant) as client:
            started = time.monotonic()
            r = client.post(
                f"/v1/orders/{order}/packing-video",
                files=[
                    ("video", ("packing.mp4", (tmp_path / "packing.mp4").read_bytes(), "video/mp4"))
                ],
            )
            answered = time.monotonic() - started
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending" and r.json()["order_id"] == order
        names = _order_references(server.settings, order)
    assert answered < 2.0
    assert names and all(name.startswith("packing.mp4@") for name in names)


def test_an_unboxing_video_sent_with_a_claim_is_decoded_by_the_task_runner_not_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for packing videos: the API checks the video's header and stores it; the analysis
    (in a process beside the server) decodes it and records its frame fingerprints."""
    from sqlalchemy import func, select

    from refundlens.media import video as video_module
    from refundlens.store.sql.models import VideoFingerprint

    from .service_support import assessed, wait_analysed
    from .test_video import packing_video

    def no_decoding_here(*_args: object, **_kwargs: object) -> object:
        raise AssertionError("a video was decoded in the API process")

    monkeypatch.setattr(video_module, "read_video", no_decoding_here)
    packing_video(tmp_path / "unboxing.mp4")
    photo = resources.files("refundlens").joinpath("samples/claim_forged.jpg").read_bytes()
    with running_server(tmp_path / "data") as server:
        order = _shop(server)
        with server.client(server.key("buyer", subject="b")) as buyer:
            created = buyer.post(
                "/v1/claims",
                data={"order_id": order, "type": "refund_only", "amount": "50"},
                files=[
                    ("photos", ("c.jpg", photo, "image/jpeg")),
                    (
                        "videos",
                        ("unboxing.mp4", (tmp_path / "unboxing.mp4").read_bytes(), "video/mp4"),
                    ),
                ],
            )
            assert created.status_code == 201, created.text
            wait_analysed(buyer, created.json()["id"])
        analysed = assessed(server, created.json()["id"])
        assert analysed["assessment"] is not None
        database = Database(server.settings)
        with database.session() as session:
            prints = session.execute(
                select(func.count())
                .select_from(VideoFingerprint)
                .where(VideoFingerprint.claim_id == created.json()["id"])
            ).scalar_one()
        database.dispose()
    assert prints > 0
