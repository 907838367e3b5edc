"""Celery workers on the Redis of loopback: the same task function, and a worker killed mid-analysis."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
from celery import Celery
from PIL import Image
from sqlalchemy import func, select

from refundlens import cases
from refundlens.config import Settings
from refundlens.store import BlobStore, Database
from refundlens.store.sql.models import Assessment, Claim, Order, Tenant, utcnow
from refundlens.store.sql.repositories import SqlStore

from .service_support import redis_for_test

# With a database server, `refundlens worker` seals personal data with a key from the
# environment (it refuses the data folder's key file): these tests' own setup uses it too.
PII_KEY = "kT8C0Jm4a1tUK5y8uGQZ2m3JpZcQx0a6m0vJ3m1yQ0E="


@pytest.fixture
def broker() -> str:
    return redis_for_test()


def _big_claim() -> bytes:
    # A 12 MP claim made from the bundled forged sample: its analysis takes seconds, long enough
    # to kill the worker in the middle of it.
    sample = Image.open(
        io.BytesIO(resources.files("refundlens").joinpath("samples/claim_forged.jpg").read_bytes())
    )
    big = sample.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=90)
    return out.getvalue()


def _setup(settings: Settings, photo: bytes | None = None) -> str:
    database = Database(settings)
    database.upgrade()
    blobs = BlobStore(Path(settings.data_dir) / "blobs")
    listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
    actor = cases.Actor("test", "admin")
    with database.session() as session:
        session.add(Tenant(id="shop", kind="merchant", name="shop"))
        session.flush()
        sku = cases.create_sku(
            SqlStore(session), blobs, settings, actor, "shop", "mug", "", [("listing.jpg", listing)]
        )
        order = cases.create_order(
            SqlStore(session), actor, "shop", "o1", sku.id, "buyer", 500.0, "CNY", None, None, None
        )
        claim = cases.create_claim(
            SqlStore(session),
            blobs,
            settings,
            actor,
            session.get(Order, order.id),
            "refund_only",
            "broken",
            100.0,
            [("claim.jpg", photo or _big_claim())],
        )
        claim_id = claim.id
    database.dispose()
    return claim_id


@pytest.fixture
def worker_env(tmp_path: Path, broker: str) -> Iterator[tuple[Settings, dict[str, str]]]:
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        broker_url=broker,
        ocr_enabled=False,
        task_visibility_timeout_seconds=4.0,
    )
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": settings.data_dir,
        "REFUNDLENS_BROKER_URL": broker,
        "REFUNDLENS_OCR_ENABLED": "false",
        "REFUNDLENS_TASK_VISIBILITY_TIMEOUT_SECONDS": "4",
        # Every detector runs: the forged 12 MP claim is slow enough to be killed mid-analysis.
        "REFUNDLENS_ANALYSIS_EARLY_STOP": "false",
    }
    yield settings, env


def _start_worker(env: dict[str, str], log: Path, *, beat: bool = False) -> subprocess.Popen[bytes]:
    # Beat keeps its schedule file in the working folder: the worker runs in the test's own,
    # with the import path made absolute so that it still runs this tree's code.
    path = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    return subprocess.Popen(
        [sys.executable, "-m", "refundlens", "worker", "--concurrency", "1"]
        + ([] if beat else ["--no-beat"]),
        env={**env, "PYTHONPATH": os.pathsep.join(path)} if path else env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=log.parent,
    )


def _state(settings: Settings, claim_id: str) -> tuple[str, int]:
    database = Database(settings)
    try:
        with database.session() as session:
            claim = session.get(Claim, claim_id)
            assert claim is not None
            count = session.execute(
                select(func.count()).select_from(Assessment).where(Assessment.claim_id == claim_id)
            ).scalar_one()
            return claim.state, int(count)
    finally:
        database.dispose()


def _wait(settings: Settings, claim_id: str, states: set[str], timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        state, _ = _state(settings, claim_id)
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"claim {claim_id} never reached {states}")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=60)


def test_a_celery_worker_runs_the_same_analysis(
    worker_env: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = worker_env
    claim_id = _setup(settings)
    worker = _start_worker(env, tmp_path / "worker.log")
    try:
        Celery(broker=settings.broker_url).send_task(
            "refundlens.analyse_claim", args=[claim_id], queue="refundlens"
        )
        state = _wait(
            settings, claim_id, {"awaiting_merchant", "approved", "awaiting_capture"}, timeout=180
        )
    finally:
        _stop(worker)
    assert state == "awaiting_merchant"
    assert _state(settings, claim_id)[1] == 1


def test_a_worker_killed_mid_analysis_loses_nothing_and_the_claim_is_assessed_once(
    worker_env: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings, env = worker_env
    claim_id = _setup(settings)
    first = _start_worker(env, tmp_path / "first.log")
    Celery(broker=settings.broker_url).send_task(
        "refundlens.analyse_claim", args=[claim_id], queue="refundlens"
    )
    try:
        _wait(settings, claim_id, {"analysing"}, timeout=120)
    finally:
        _stop(first, signal.SIGKILL)
    assert _state(settings, claim_id) == ("analysing", 0), (
        "the first worker finished before it was killed"
    )
    second = _start_worker(env, tmp_path / "second.log")
    try:
        state = _wait(
            settings, claim_id, {"awaiting_merchant", "approved", "awaiting_capture"}, timeout=240
        )
    finally:
        _stop(second)
    assert state == "awaiting_merchant"
    assert _state(settings, claim_id)[1] == 1


def test_service_pictures_are_jpeg_and_the_mask_png() -> None:
    import io

    import numpy as np
    from PIL import Image

    from refundlens.detectors._examples import forged_from_listing
    from refundlens.pipeline import analyze
    from refundlens.report import overlay_image, picture_blobs

    claim, context, _ = forged_from_listing(seed=5)
    image = analyze([claim], context.references).images[0]
    blobs = picture_blobs(image)
    assert blobs["mask"].startswith(b"\x89PNG")
    assert blobs["overlay"].startswith(b"\xff\xd8\xff")
    assert blobs["aligned_reference"].startswith(b"\xff\xd8\xff")
    overlay = overlay_image(image)
    assert overlay is not None
    shown = np.asarray(Image.open(io.BytesIO(blobs["overlay"])).convert("RGB"), np.int16)
    assert shown.shape == overlay.shape
    assert np.abs(shown - overlay).mean() < 3  # a visual aid, close to the picture drawn


def _small_claim() -> bytes:
    return resources.files("refundlens").joinpath("samples/claim_forged.jpg").read_bytes()


def test_an_in_process_backlog_re_submitted_by_the_ticker_is_analysed_once_per_claim(
    tmp_path: Path,
) -> None:
    from refundlens.workers.runner import Dispatcher

    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    claim_id = _setup(settings, _small_claim())
    dispatcher = Dispatcher(settings, tick_seconds=3600)
    dispatcher.start()  # its first tick queues the waiting claim
    for _ in range(3):  # the ticker and the API asking again while the claim still waits
        dispatcher.submit(claim_id)
        dispatcher.run_tick()
    dispatcher.stop()  # waits for everything queued
    state, assessments = _state(settings, claim_id)
    assert (state, assessments) == ("awaiting_merchant", 1)
    database = Database(settings)
    with database.session() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None and claim.analysis_attempts == 1
    database.dispose()


def test_a_task_delivered_again_after_the_analysis_finished_does_nothing(tmp_path: Path) -> None:
    from refundlens.runtime import Runtime
    from refundlens.workers.tasks import analyse_claim

    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    claim_id = _setup(settings, _small_claim())
    runtime = Runtime(settings)
    assert analyse_claim(runtime, claim_id) == "awaiting_merchant"
    assert analyse_claim(runtime, claim_id) == "skipped"
    assert _state(settings, claim_id) == ("awaiting_merchant", 1)
    runtime.db.dispose()


def _history(settings: Settings, claim_id: str) -> tuple[Claim, list[str], list[str]]:
    """The claim, its audit actions in order, and the events queued for its merchant."""
    from refundlens.store.sql import audit
    from refundlens.store.sql.models import AuditEntry, WebhookEvent

    database = Database(settings)
    with database.session() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        session.expunge(claim)
        actions = list(
            session.execute(
                select(AuditEntry.action)
                .where(AuditEntry.claim_id == claim_id)
                .order_by(AuditEntry.seq)
            ).scalars()
        )
        events = [e.event for e in session.execute(select(WebhookEvent)).scalars()]
        checked, problem = audit.verify(session)
        assert problem is None and checked > 0
    database.dispose()
    return claim, actions, events


def test_a_claim_whose_analysis_keeps_failing_goes_to_a_person_without_an_assessment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundlens.runtime import Runtime
    from refundlens.workers import tasks
    from refundlens.workers.runner import Dispatcher

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ValueError("a detector bug")

    monkeypatch.setattr(tasks, "analyze", broken)
    settings = Settings(
        data_dir=str(tmp_path / "data"), ocr_enabled=False, embedded_analysis_processes=0
    )  # a thread: the patched analysis lives in this process
    claim_id = _setup(settings, _small_claim())
    dispatcher = Dispatcher(settings, tick_seconds=3600)
    dispatcher.start()  # queues the claim; each failure is retried at once, in order
    _wait(settings, claim_id, {"under_review"}, timeout=120)
    dispatcher.stop()
    claim, actions, events = _history(settings, claim_id)
    assert claim.state == "under_review"
    assert claim.risk is None and claim.action == "review"
    assert claim.routing_reason.startswith("the analysis failed 3 times in a row")
    assert claim.analysis_attempts == settings.analysis_max_attempts == 3
    assert actions.count("claim.analysis_failed") == 3
    assert actions[-1] == "claim.analysis_abandoned"
    assert "claim.analysis_failed" in events
    assert _state(settings, claim_id) == ("under_review", 0)
    # The reaper and a late Celery retry find nothing more to do.
    runtime = Runtime(settings)
    assert tasks.analyse_claim(runtime, claim_id) == "skipped"
    runtime.db.dispose()


def test_an_analysis_that_fails_once_is_retried_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from refundlens.workers import tasks
    from refundlens.workers.runner import Dispatcher

    real = tasks.analyze
    calls = []

    def flaky(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("blob store at 10.0.0.7:9000 /srv/blobs briefly unreachable")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tasks, "analyze", flaky)
    settings = Settings(
        data_dir=str(tmp_path / "data"), ocr_enabled=False, embedded_analysis_processes=0
    )
    claim_id = _setup(settings, _small_claim())
    dispatcher = Dispatcher(settings, tick_seconds=3600)
    dispatcher.start()
    _wait(settings, claim_id, {"awaiting_merchant"}, timeout=120)
    dispatcher.stop()
    claim, actions, _events = _history(settings, claim_id)
    assert claim.state == "awaiting_merchant" and claim.analysis_attempts == 2
    assert actions.count("claim.analysis_failed") == 1
    assert "claim.analysis_abandoned" not in actions
    assert _state(settings, claim_id) == ("awaiting_merchant", 1)
    # The shop reads the audit entry: the exception's kind, not its text (hosts, paths).
    from refundlens.store.sql.models import AuditEntry

    database = Database(settings)
    with database.session() as session:
        (failed,) = session.execute(
            select(AuditEntry.details).where(
                AuditEntry.claim_id == claim_id, AuditEntry.action == "claim.analysis_failed"
            )
        ).scalars()
    database.dispose()
    assert failed["error"] == "OSError (the worker's log has the message)", failed


def test_analyses_that_die_with_their_worker_count_as_failures(tmp_path: Path) -> None:
    """A file that kills its worker (no exception to catch) must not go round the reaper for ever."""
    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    claim_id = _setup(settings, _small_claim())
    database = Database(settings)
    for attempt in range(1, 4):  # three workers take the claim and die before recording
        with database.session() as session:
            assert cases.start_analysis(SqlStore(session), claim_id, settings) == attempt
    with database.session() as session:  # the reaper's fourth try
        assert cases.start_analysis(SqlStore(session), claim_id, settings) is None
    database.dispose()
    claim, actions, _events = _history(settings, claim_id)
    assert claim.state == "under_review" and claim.analysis_attempts == 3
    assert actions[-1] == "claim.analysis_abandoned"


def test_the_review_sla_setting_sets_the_deadline_when_a_claim_reaches_a_person(
    tmp_path: Path,
) -> None:
    import datetime as dt

    from refundlens.runtime import Runtime
    from refundlens.workers.tasks import analyse_claim

    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False, review_sla_hours=6.0)
    claim_id = _setup(settings, _small_claim())
    runtime = Runtime(settings)
    assert analyse_claim(runtime, claim_id) == "awaiting_merchant"
    later = utcnow() + dt.timedelta(hours=settings.merchant_response_hours + 1)
    with runtime.db.session() as session:  # the merchant's window runs out unanswered
        assert cases.expire_windows(SqlStore(session), later, settings=settings) == [claim_id]
        claim = session.get(Claim, claim_id)
        assert claim is not None and claim.state == "under_review"
        deadline = cases.aware(claim.deadline_at)
        assert deadline is not None
        assert abs((deadline - later).total_seconds() - 6 * 3600) < 60
        # The reason says what moved it, and the platform is told (no event was sent).
        assert claim.routing_reason == "the merchant's window ran out: a person decides"
        from refundlens.store.sql.models import WebhookEvent

        expired = [
            e.body
            for e in session.execute(select(WebhookEvent)).scalars()
            if e.event == "claim.window_expired"
        ]
        assert len(expired) == 1
        assert expired[0]["claim"]["state"] == "under_review"
        assert expired[0]["from"] == "awaiting_merchant"
        told = dt.datetime.fromisoformat(expired[0]["deadline_at"])
        assert told.replace(tzinfo=None) == deadline.replace(tzinfo=None)
    runtime.db.dispose()


def test_an_embedded_analysis_process_that_dies_is_replaced_and_the_claim_handed_over(
    tmp_path: Path,
) -> None:
    """A file that crashes the decoder kills its analysis process, every time. Here a stand-in
    pool starts the attempt as the process would, then dies (BrokenProcessPool)."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    from refundlens.workers.runner import Dispatcher

    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    claim_id = _setup(settings, _small_claim())
    pools: list[object] = []

    class DyingPool:
        def submit(self, _fn: object, cid: str, *_request: object) -> Future[str]:
            database = Database(settings)
            with database.session() as session:
                cases.start_analysis(SqlStore(session), cid, settings)
            database.dispose()
            future: Future[str] = Future()
            future.set_exception(BrokenProcessPool("the analysis process was killed"))
            return future

        def shutdown(self, wait: bool = True) -> None:
            pass

    def new_pool(_n: int) -> DyingPool:
        pools.append(DyingPool())
        return pools[-1]  # type: ignore[return-value]

    dispatcher = Dispatcher(settings, tick_seconds=3600)
    dispatcher._new_processes = new_pool  # type: ignore[method-assign]
    dispatcher.start()
    _wait(settings, claim_id, {"under_review"}, timeout=60)
    dispatcher.stop()
    claim, actions, events = _history(settings, claim_id)
    assert claim.analysis_attempts == 3 and claim.risk is None
    assert actions.count("claim.analysis_failed") == 3
    assert actions[-1] == "claim.analysis_abandoned"
    assert "claim.analysis_failed" in events
    assert len(pools) == 4  # the first pool, and a new one after each death


def test_the_embedded_default_analyses_in_a_process_beside_the_server(tmp_path: Path) -> None:
    import os

    from refundlens.workers.runner import Dispatcher

    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    assert settings.embedded_analysis_processes == 1
    claim_id = _setup(settings, _small_claim())
    dispatcher = Dispatcher(settings, tick_seconds=3600)
    dispatcher.start()
    _wait(settings, claim_id, {"awaiting_merchant"}, timeout=120)
    assert dispatcher._processes is not None
    children = dispatcher._processes.submit(os.getpid).result()  # type: ignore[union-attr]
    dispatcher.stop()
    assert children != os.getpid()
    assert _state(settings, claim_id) == ("awaiting_merchant", 1)


def _attempts(settings: Settings, claim_id: str) -> int:
    database = Database(settings)
    try:
        with database.session() as session:
            claim = session.get(Claim, claim_id)
            assert claim is not None
            return claim.analysis_attempts
    finally:
        database.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    from .service_support import backend

    with backend(request.param) as url:
        yield url


def test_a_worker_killed_mid_analysis_is_re_analysed_once_its_heartbeat_stops(
    tmp_path: Path, broker: str, database_url: str
) -> None:
    """SIGKILL a Celery worker mid-analysis, with the broker's visibility timeout at 15 minutes
    (so Celery's own redelivery cannot be what saves the claim): the tick in another worker's
    beat sees the heartbeat stop and queues the claim again. Measured: seconds from the kill to
    the second attempt's start, against heartbeat timeout + one tick (10 s) + worker start-up."""
    heartbeat, timeout = 1.0, 5.0
    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        broker_url=broker,
        ocr_enabled=False,
        pii_key=PII_KEY,
        analysis_heartbeat_seconds=heartbeat,
        analysis_heartbeat_timeout_seconds=timeout,
    )
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": settings.data_dir,
        "REFUNDLENS_DATABASE_URL": database_url,
        "REFUNDLENS_PII_KEY": PII_KEY,
        "REFUNDLENS_BROKER_URL": broker,
        "REFUNDLENS_OCR_ENABLED": "false",
        "REFUNDLENS_TASK_VISIBILITY_TIMEOUT_SECONDS": "900",
        # Every detector runs: the forged 12 MP claim is slow enough to be killed mid-analysis.
        "REFUNDLENS_ANALYSIS_EARLY_STOP": "false",
        "REFUNDLENS_ANALYSIS_HEARTBEAT_SECONDS": str(heartbeat),
        "REFUNDLENS_ANALYSIS_HEARTBEAT_TIMEOUT_SECONDS": str(timeout),
    }
    claim_id = _setup(settings)
    first = _start_worker(env, tmp_path / "first.log")
    Celery(broker=broker).send_task("refundlens.analyse_claim", args=[claim_id], queue="refundlens")
    try:
        _wait(settings, claim_id, {"analysing"}, timeout=120)
        time.sleep(0.3)  # started (its heartbeat_at is set when it starts)
    finally:
        _stop(first, signal.SIGKILL)
    killed = time.monotonic()
    assert _state(settings, claim_id) == ("analysing", 0), "finished before it was killed"
    assert _attempts(settings, claim_id) == 1
    second = _start_worker(env, tmp_path / "second.log", beat=True)
    try:
        deadline = killed + 90
        while _attempts(settings, claim_id) < 2:
            assert time.monotonic() < deadline, "the dead attempt was never retried"
            time.sleep(0.1)
        retried_after = time.monotonic() - killed
        state = _wait(
            settings, claim_id, {"awaiting_merchant", "approved", "awaiting_capture"}, timeout=240
        )
    finally:
        _stop(second)
    print(f"re-analysis started {retried_after:.1f} s after the SIGKILL")
    assert retried_after < timeout + 10 + 15  # heartbeat timeout, one tick, worker start-up
    assert state == "awaiting_merchant"
    assert _state(settings, claim_id)[1] == 1  # one assessment: the dead attempt recorded none
    assert _attempts(settings, claim_id) == 2  # the dead attempt counts as a failed one


def test_the_reaper_requeues_an_analysis_whose_heartbeat_stopped_once_and_not_a_live_one(
    tmp_path: Path,
) -> None:
    import datetime as dt

    settings = Settings(
        data_dir=str(tmp_path / "data"), ocr_enabled=False, analysis_heartbeat_timeout_seconds=45
    )
    claim_id = _setup(settings, _small_claim())
    database = Database(settings)
    with database.session() as session:
        attempt = cases.start_analysis(SqlStore(session), claim_id, settings)
        assert attempt == 1
    now = utcnow()
    with database.session() as session:
        assert (
            cases.stale_analyses(SqlStore(session), settings, now + dt.timedelta(seconds=30)) == []
        )
        assert cases.beat(SqlStore(session), claim_id, attempt)  # alive: beats move the limit on
        late = now + dt.timedelta(seconds=50)
        assert cases.stale_analyses(SqlStore(session), settings, late) == [claim_id]
        cases.mark_queued(SqlStore(session), [claim_id], dead=[claim_id])  # the reaper queued it
    with database.session() as session:  # waiting in the queue: not re-queued at every tick
        assert cases.stale_analyses(SqlStore(session), settings, late) == []
        assert not cases.beat(SqlStore(session), claim_id, attempt + 1)  # no such attempt yet
        assert cases.start_analysis(SqlStore(session), claim_id, settings) == 2
    with database.session() as session:  # the old attempt, if it wakes, beats for nothing
        assert not cases.beat(SqlStore(session), claim_id, attempt)
    database.dispose()


def test_a_packing_video_left_in_the_outbox_is_queued_by_beat_and_processed_by_a_worker(
    tmp_path: Path, broker: str, database_url: str
) -> None:
    """No API and no hand-off: a packing video registered while the broker was unreachable
    (queued_at empty). A worker with beat queues it at its first tick and keeps its frames."""
    from refundlens.media.video import probe_video
    from refundlens.store.sql.models import OrderReference, PackingVideo

    from .test_video import packing_video

    settings = Settings(
        data_dir=str(tmp_path / "data"),
        database_url=database_url,
        broker_url=broker,
        pii_key=PII_KEY,
    )
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": settings.data_dir,
        "REFUNDLENS_DATABASE_URL": database_url,
        "REFUNDLENS_PII_KEY": PII_KEY,
        "REFUNDLENS_BROKER_URL": broker,
        "REFUNDLENS_OCR_ENABLED": "false",
    }
    claim_id = _setup(settings, _small_claim())
    packing_video(tmp_path / "packing.mp4")
    data = (tmp_path / "packing.mp4").read_bytes()
    database = Database(settings)
    with database.session() as session:
        order = session.get(Order, session.get(Claim, claim_id).order_id)  # type: ignore[union-attr]
        assert order is not None
        row = cases.register_packing_video(
            SqlStore(session),
            cases.Actor("test", "admin"),
            order,
            "packing.mp4",
            BlobStore(Path(settings.data_dir) / "blobs").put(data),
            probe_video(data, settings),
        )
        video_id, order_id = row.id, order.id
    worker = _start_worker(env, tmp_path / "worker.log", beat=True)
    try:
        deadline = time.time() + 120
        while True:
            with database.session() as session:
                status = session.get(PackingVideo, video_id).status  # type: ignore[union-attr]
            if status != "pending" or time.time() > deadline:
                break
            time.sleep(0.2)
    finally:
        _stop(worker)
    with database.session() as session:
        row = session.get(PackingVideo, video_id)
        assert row is not None and row.status == "done" and row.queued_at is not None
        names = list(
            session.execute(
                select(OrderReference.name).where(OrderReference.order_id == order_id)
            ).scalars()
        )
        assert names and all(n.startswith("packing.mp4@") for n in names)
    database.dispose()


def test_a_failed_analysis_under_celery_is_logged_as_an_error_naming_the_claim(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Celery's own retry line is at info: an operator's alert on errors must see the failure.
    import logging

    from refundlens.workers import celery_app as module

    def broken(*_args: object, **_kwargs: object) -> str:
        raise FileNotFoundError("no such blob")

    monkeypatch.setattr(module, "analyse_claim", broken)
    monkeypatch.setattr(module, "_rt", lambda: None)
    with caplog.at_level(logging.INFO):
        result = module.analyse_claim_task.apply(args=["clm_lost"], retries=5)  # the last try
    assert result.state == "FAILURE"
    [failed] = [r for r in caplog.records if r.name == "refundlens.workers.celery_app"]
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    assert failed.getMessage() == "analysis of clm_lost failed (try 6 of 6)"


def test_in_process_a_claim_never_waits_behind_packing_videos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The embedded default gives packing videos a lane of their own, as Celery gives them a
    queue: while videos are being decoded (here: held until the claim is done), a claim filed
    after them is analysed."""
    import threading

    from refundlens.workers import runner
    from refundlens.workers.runner import Dispatcher

    # In threads (no analysis process), so that the held video is this test's function.
    settings = Settings(
        data_dir=str(tmp_path / "data"), ocr_enabled=False, embedded_analysis_processes=0
    )
    Database(settings).upgrade()
    release = threading.Event()
    started: list[str] = []

    def slow_video(_runtime: object, video_id: str) -> str:
        started.append(video_id)
        release.wait()
        return "done"

    monkeypatch.setattr(runner, "process_packing_video", slow_video)
    dispatcher = Dispatcher(settings, tick_seconds=3600)
    dispatcher.start()
    try:
        for i in range(5):  # a shop's backlog of videos, sent before the claim
            dispatcher.hand_off_packing_video(f"pvd_{i}")
        claim_id = _setup(settings, _small_claim())
        assert dispatcher.submit(claim_id)
        deadline = time.monotonic() + 120
        while _state(settings, claim_id)[0] != "awaiting_merchant":
            assert time.monotonic() < deadline, "the claim waited behind the videos"
            time.sleep(0.2)
        assert started == ["pvd_0"]  # one video being decoded; the rest still wait
    finally:
        release.set()
        dispatcher.stop()
    assert started == [f"pvd_{i}" for i in range(5)]


def test_two_ticks_at_once_queue_each_claim_once_and_a_dead_ticks_lease_runs_out(
    tmp_path: Path,
) -> None:
    # Every `refundlens worker` runs Celery's beat unless told --no-beat: two ticks at once read
    # one outbox and handed its claim to the queue twice.
    import datetime as dt
    import threading

    from refundlens.runtime import Runtime
    from refundlens.workers.tasks import TICK_LEASE, tick

    from .test_cases import _claim_awaiting_capture

    settings = Settings(data_dir=str(tmp_path))
    runtime, claim_id = _claim_awaiting_capture(settings)
    with runtime.db.session() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        claim.state, claim.queued_at = "submitted", None  # in the outbox
    queued: list[str] = []
    inside, go_on = threading.Event(), threading.Event()

    def slow(claim: str) -> None:  # a broker that takes its time
        queued.append(claim)
        inside.set()
        assert go_on.wait(20)

    first = threading.Thread(target=tick, args=(runtime, slow, lambda _v: None))
    first.start()
    assert inside.wait(20)
    other = Runtime(settings)  # another worker's tick
    second = tick(other, requeue=queued.append, requeue_video=lambda _v: None)
    go_on.set()
    first.join(20)
    assert second["queueing"] == "another tick held it" and second["queued"] == [], second
    assert queued == [claim_id]
    # Let go at the end: the next tick queues (nothing is left to queue).
    assert tick(other, requeue=queued.append, requeue_video=lambda _v: None)["queueing"] == "done"
    assert queued == [claim_id]
    # A tick that died holding the lease holds it until its time has passed, then lets go.
    now = utcnow()
    with runtime.db.session() as session:
        took = SqlStore(session).leases.take(
            TICK_LEASE, "died", now, now + dt.timedelta(seconds=1.5)
        )
        assert took
    held = tick(other, requeue=queued.append, requeue_video=lambda _v: None)
    assert held["queueing"] == "another tick held it"
    time.sleep(1.6)
    assert tick(other, requeue=queued.append, requeue_video=lambda _v: None)["queueing"] == "done"
    # A tick whose lease passed to another (a broker slower than tick_lease_seconds) hands
    # over nothing more: the other reads the same outbox (a review).
    from refundlens.workers.tasks import _queue_work

    with runtime.db.session() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        claim.state, claim.queued_at = "submitted", None
    lost = _queue_work(other, queued.append, lambda _v: None, lambda: False)
    assert lost[4] == [] and queued == [claim_id]
    other.db.dispose()
    runtime.db.dispose()
