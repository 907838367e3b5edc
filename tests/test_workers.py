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

from refundlens.cases import workflow
from refundlens.config import Settings
from refundlens.store import BlobStore, Database
from refundlens.store.models import Assessment, Claim, Order, Tenant

REDIS = os.environ.get("REFUNDLENS_TEST_REDIS", "redis://127.0.0.1:6379/11")


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping())
    except Exception:
        return False


@pytest.fixture
def broker() -> str:
    if not _redis_up():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Redis at {REDIS} is not reachable")
        pytest.skip(f"Redis not reachable at {REDIS} (set REFUNDLENS_TEST_REDIS); CI runs it")
    import redis

    redis.Redis.from_url(REDIS).flushdb()
    return REDIS


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
    actor = workflow.Actor("test", "admin")
    with database.session() as session:
        session.add(Tenant(id="shop", kind="merchant", name="shop"))
        session.flush()
        sku = workflow.create_sku(
            session, blobs, settings, actor, "shop", "mug", "", [("listing.jpg", listing)]
        )
        order = workflow.create_order(
            session, actor, "shop", "o1", sku.id, "buyer", 500.0, "CNY", None, None, None
        )
        claim = workflow.create_claim(
            session,
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
    }
    yield settings, env


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "refundlens", "worker", "--concurrency", "1", "--no-beat"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
    from refundlens.workers.tasks import Runtime, analyse_claim

    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    claim_id = _setup(settings, _small_claim())
    runtime = Runtime(settings)
    assert analyse_claim(runtime, claim_id) == "awaiting_merchant"
    assert analyse_claim(runtime, claim_id) == "skipped"
    assert _state(settings, claim_id) == ("awaiting_merchant", 1)
    runtime.db.dispose()
