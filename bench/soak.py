"""Soak test with faults, on the real components (``make soak``; issue 24).

PostgreSQL, Redis, the API (``refundlens serve``) and two Celery workers (``refundlens worker``,
one with the tick) run on loopback, with a webhook receiver and a bounded load generator that
files claims with real photos at a steady rate: smartphone photos of packaged groceries from
``../shared/data/grocery-store-packages`` (read by relative path from the repository's root),
each against a SKU whose reference is the product's web ("iconic") photo. At set times the script

1. SIGKILLs a worker while it runs an analysis (its whole process group), and restarts it;
2. restarts Redis (which keeps nothing on disk, so every queued message is lost);
3. stops PostgreSQL for 20 s (``--duration`` 300; the times scale with it), then starts it;
4. makes the webhook endpoint hang (it reads the event, records its id, and answers only after
   the deliverer's timeout), then answers again.

At the end it checks, from the database and the receiver: every claim accepted (201/200) is
assessed exactly once, or handed to a person without an assessment after failed analyses; no
claim is lost or duplicated (one claim per Idempotency-Key); every webhook event is delivered
and received at least once under one event id; the audit chain verifies
(``refundlens audit verify``). It reports p50/p95/p99 upload-to-assessment times per phase
(before, during and after each fault) to ``bench/results/soak.md``.

PostgreSQL and Redis are private instances started by this script on free loopback ports
(``initdb`` into a temporary folder; ``redis-server``): the faults then hit nothing but this
run, and the machine's shared servers are left alone. Everything it started is stopped at the
end, on failure too. Bounded: load for ``--duration`` seconds, then at most ``--drain`` seconds
for the backlog and the webhooks; the whole run stays under 10 minutes with the defaults.

Run: ``make soak`` or ``python -m bench.soak [--duration 300] [--rate 0.5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import http.server
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PHOTOS = Path("../shared/data/grocery-store-packages")  # relative to the repository's root
PG_BIN = Path("/usr/lib/postgresql")
WEBHOOK_SECRET = "soak-secret-of-at-least-32-characters"

# --- the pure parts (tests/test_soak.py) ---------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """Claims submitted in [start, end) seconds after the load began belong to this phase."""

    label: str
    start: float
    end: float


def timeline(duration: float) -> tuple[list[Phase], dict[str, float]]:
    """The phases and the fault times for a load of ``duration`` seconds.

    At 300 s: SIGKILL a worker at 50 s, restart Redis at 110 s, stop PostgreSQL at 170 s for
    20 s, hang the webhook endpoint at 230 s for 40 s. "during" is the 30 s (40 s for the hang)
    from the fault, "after" the rest until the next fault; everything scales with ``duration``.

    >>> phases, faults = timeline(300)
    >>> [p.label for p in phases][:3]
    ['before', 'worker SIGKILL: during', 'worker SIGKILL: after']
    >>> faults["postgres_down_s"], phases[-1].end
    (20.0, 300.0)
    """
    s = duration / 300.0
    faults = {
        "worker_kill": 50 * s,
        "redis_restart": 110 * s,
        "postgres_stop": 170 * s,
        "postgres_down_s": 20 * s,
        "webhook_hang": 230 * s,
        "webhook_hang_s": 40 * s,
    }
    marks = [
        ("worker SIGKILL", faults["worker_kill"], 30 * s),
        ("Redis restart", faults["redis_restart"], 30 * s),
        ("PostgreSQL down", faults["postgres_stop"], 30 * s),
        ("webhook hangs", faults["webhook_hang"], 40 * s),
    ]
    phases = [Phase("before", 0.0, marks[0][1])]
    for i, (name, start, window) in enumerate(marks):
        nxt = marks[i + 1][1] if i + 1 < len(marks) else float(duration)
        phases.append(Phase(f"{name}: during", start, start + window))
        phases.append(Phase(f"{name}: after", start + window, nxt))
    return phases, faults


def phase_of(t: float, phases: Sequence[Phase]) -> str:
    """The label of the phase ``t`` falls in (the last one for a time past the end)."""
    for phase in phases:
        if phase.start <= t < phase.end:
            return phase.label
    return phases[-1].label if t >= phases[-1].end else phases[0].label


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (NumPy's default), NaN for no values.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def phase_latencies(
    samples: Sequence[tuple[float, float]], phases: Sequence[Phase]
) -> list[dict[str, Any]]:
    """Per phase: claims, p50, p95, p99 and max of (submitted at, seconds to assessment)."""
    rows = []
    for phase in phases:
        values = [lat for t, lat in samples if phase_of(t, phases) == phase.label]
        rows.append(
            {
                "phase": phase.label,
                "from_s": phase.start,
                "to_s": phase.end,
                "claims": len(values),
                "p50": percentile(values, 50),
                "p95": percentile(values, 95),
                "p99": percentile(values, 99),
                "max": max(values) if values else float("nan"),
            }
        )
    return rows


@dataclass(frozen=True)
class ClaimRow:
    """What the database holds about one claim at the end."""

    id: str
    state: str
    assessments: int
    attempts: int
    routing_reason: str = ""


SETTLED_WITHOUT_ANALYSIS = "under_review"  # the analysis failed N times: a person decides


def check_claims(
    accepted: dict[str, str], rows: Sequence[ClaimRow], keyed: dict[str, str]
) -> list[str]:
    """Problems with exactly-once: ``accepted`` maps each Idempotency-Key the load generator
    got a 201/200 for to its claim id; ``rows`` are the database's claims (the warm-up left
    out); ``keyed`` maps each key to the claim the database recorded for it. Empty when all is
    well."""
    problems: list[str] = []
    by_id = {row.id: row for row in rows}
    for key, claim_id in accepted.items():
        row = by_id.get(claim_id)
        if row is None:
            problems.append(f"lost: claim {claim_id} (key {key}) was accepted but is not stored")
            continue
        if keyed.get(key) != claim_id:
            problems.append(f"key {key}: answered {claim_id}, recorded {keyed.get(key)}")
        if row.state in ("submitted", "analysing"):
            problems.append(f"not assessed: claim {claim_id} is still {row.state}")
        elif row.assessments == 0 and not (
            row.state == SETTLED_WITHOUT_ANALYSIS and "analysis failed" in row.routing_reason
        ):
            problems.append(f"no assessment: claim {claim_id} is {row.state} without one")
        elif row.assessments > 1:
            problems.append(f"assessed {row.assessments} times: claim {claim_id}")
    unknown = sorted(set(by_id) - set(accepted.values()))
    if unknown:
        problems.append(
            f"duplicated: {len(unknown)} claims stored that no accepted request named "
            f"({', '.join(unknown[:5])})"
        )
    return problems


def check_webhooks(events: dict[str, str], received: Counter[str]) -> list[str]:
    """Problems with at-least-once delivery: ``events`` maps each outbox event id to its
    status in the database, ``received`` counts the deliveries the receiver saw per id."""
    problems = [
        f"webhook {event_id} is {status}, not delivered"
        for event_id, status in events.items()
        if status != "delivered"
    ]
    problems += [
        f"webhook {event_id} was never received" for event_id in events if received[event_id] == 0
    ]
    problems += [f"received an unknown event id {i}" for i in received if i not in events]
    return problems


# --- the components --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    sys.stdout.write(f"[soak {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stdout.flush()


class Postgres:
    """A private PostgreSQL cluster in a temporary folder, on a free loopback port."""

    def __init__(self, folder: Path) -> None:
        versions = sorted(PG_BIN.glob("*/bin/pg_ctl"))
        if not versions:
            raise SystemExit("soak: PostgreSQL server binaries not found under /usr/lib/postgresql")
        self.bin = versions[-1].parent
        self.folder = folder / "pg"
        self.folder.mkdir()
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root
        if self.as_postgres:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.folder / "data"), "-A", "trust", "-U", "postgres")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/refundlens_soak"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.folder / "data"),
            "-o",
            options,
            "-l",
            str(self.folder / "log"),
            "-w",
            "start",
        )
        deadline = time.time() + 30
        while not self.ready():
            if time.time() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.2)

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2
            ):
                return True
        except psycopg.Error:
            return False

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE refundlens_soak")


class Redis:
    """A private Redis on a free loopback port; keeps nothing on disk, like the machine's."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        deadline = time.time() + 20
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=1).ping():
                    return
            except redis.RedisError:
                pass
            if time.time() > deadline:
                raise RuntimeError("Redis did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Service:
    """A ``refundlens`` command in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], folder: Path) -> None:
        self.name, self.args, self.env, self.folder = name, args, env, folder
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "refundlens", *self.args],
            env=self.env,
            cwd=self.folder,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.starts += 1

    def computing(self) -> bool:
        """A process of this service's group is burning CPU right now (over 50 ms)."""

        def cpu() -> dict[int, int]:
            ticks = {}
            for stat in Path("/proc").glob("[0-9]*/stat"):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                    if self.proc is not None and int(fields[2]) == self.proc.pid:  # pgrp
                        ticks[int(stat.parent.name)] = int(fields[11]) + int(fields[12])
            return ticks

        before = cpu()
        time.sleep(0.05)
        after = cpu()
        return any(after.get(pid, 0) > t for pid, t in before.items())

    def kill(self) -> None:
        """SIGKILL the whole process group (a Celery worker's main process and its child)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def busy(self) -> bool:
        """A Celery worker holds an analysis: its log has a task received and not yet finished
        (with a prefetch of one, the one it runs)."""
        text = self.log_path.read_text(errors="replace")
        received, finished = set(), set()
        for match in re.finditer(r"Task refundlens\.analyse_claim\[([0-9a-f-]+)\] (\w+)", text):
            (received if match[2] == "received" else finished).add(match[1])
        return bool(received - finished)


class Receiver:
    """The merchant's webhook endpoint: verifies each signature and counts each event id; while
    hanging, it records the event, then answers only after the deliverer has given up."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.bad_signatures = 0
        self.hang_until = 0.0
        self.hung = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                from refundlens.workers.webhooks import verify_signature

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                event_id = self.headers.get("X-Refundlens-Event-Id", "")
                ok = verify_signature(
                    WEBHOOK_SECRET, body, self.headers.get("X-Refundlens-Signature", "")
                )
                with receiver.lock:
                    if not ok:
                        receiver.bad_signatures += 1
                    else:
                        receiver.received[event_id] += 1
                wait = receiver.hang_until - time.time()
                if wait > 0:
                    with receiver.lock:
                        receiver.hung += 1
                    time.sleep(wait)  # past the deliverer's 5 s timeout: it counts as failed
                with contextlib.suppress(OSError):
                    self.send_response(200 if ok else 401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/refundlens"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.hang_until = 0.0
        self.server.shutdown()
        self.server.server_close()


# --- the load -----------------------------------------------------------------------------


@dataclass
class Product:
    name: str
    iconic: Path
    photos: list[Path]


def products(limit: int) -> list[Product]:
    """Products with a listing ("iconic") photo and smartphone photos of the same product."""
    root = ROOT / PHOTOS if not PHOTOS.is_absolute() else PHOTOS
    if not (root / "test").is_dir():
        raise SystemExit(f"soak: the photos are missing: {root} (../shared/data)")
    found = []
    for folder in sorted((root / "test" / "Packages").glob("*/*")):
        iconic = next(
            (root / "iconic-images-and-descriptions" / "Packages" / folder.parent.name).glob(
                f"{folder.name}/*_Iconic.jpg"
            ),
            None,
        )
        photos = sorted(folder.glob("*.jpg"))
        if iconic is not None and len(photos) >= 4:
            found.append(Product(folder.name, iconic, photos))
    random.Random(24).shuffle(found)
    return found[:limit]


@dataclass
class Submission:
    key: str
    started: float  # seconds after the load began, at the first try
    accepted_at: float | None = None
    claim_id: str | None = None
    tries: int = 0
    errors: list[str] = field(default_factory=list)


class Load:
    """Files claims at ``rate`` per second for ``duration`` seconds; a try that fails (the API
    is unreachable, 503 while the database is down) is retried with the same Idempotency-Key
    every second for up to ``give_up`` seconds, as a platform's client would."""

    def __init__(
        self, api: str, buyer_key: str, orders: list[tuple[str, Product]], give_up: float = 90.0
    ) -> None:
        self.api, self.buyer_key, self.orders, self.give_up = api, buyer_key, orders, give_up
        self.submissions: list[Submission] = []
        self.lock = threading.Lock()
        self.t0 = 0.0

    def _file(self, i: int, started: float) -> None:
        import httpx

        order, product = self.orders[i % len(self.orders)]
        rng = random.Random(i)
        photos = rng.sample(product.photos, 2)
        sub = Submission(str(uuid.uuid4()), started)
        with self.lock:
            self.submissions.append(sub)
        files = [("photos", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        deadline = time.monotonic() + self.give_up
        with httpx.Client(
            base_url=self.api,
            timeout=30.0,
            headers={"Authorization": f"Bearer {self.buyer_key}", "Idempotency-Key": sub.key},
        ) as client:
            while time.monotonic() < deadline:
                sub.tries += 1
                try:
                    r = client.post(
                        "/v1/claims",
                        data={
                            "order_id": order,
                            "type": "refund_only",
                            "amount": "50",
                            "reason": "arrived damaged",
                        },
                        files=files,
                    )
                except httpx.HTTPError as exc:
                    sub.errors.append(type(exc).__name__)
                    time.sleep(1.0)
                    continue
                if r.status_code in (200, 201):
                    sub.claim_id = r.json()["id"]
                    sub.accepted_at = time.monotonic() - self.t0
                    return
                sub.errors.append(str(r.status_code))
                if r.status_code < 500:
                    return  # refused for good: a bug in this script or the API, reported
                time.sleep(float(r.headers.get("Retry-After", "1")))

    def run(self, rate: float, duration: float, t0: float) -> None:
        self.t0 = t0
        count = int(rate * duration)
        with ThreadPoolExecutor(8) as pool:
            for i in range(count):
                due = t0 + i / rate
                time.sleep(max(0.0, due - time.monotonic()))
                pool.submit(self._file, i, time.monotonic() - t0)


# --- the run ------------------------------------------------------------------------------


def run(duration: float, rate: float, drain: float, keep: bool) -> int:
    begun = time.monotonic()
    phases, faults = timeline(duration)
    folder = Path(tempfile.mkdtemp(prefix="refundlens-soak-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        folder.chmod(0o755)
    notes: list[str] = []
    with contextlib.ExitStack() as cleanup:
        if not keep:
            cleanup.callback(shutil.rmtree, folder, True)
        pg = Postgres(folder)
        pg.start()
        cleanup.callback(pg.stop)
        pg.create_database()
        redis = Redis(folder)
        redis.start()
        cleanup.callback(redis.stop)
        receiver = Receiver()
        receiver.start()
        cleanup.callback(receiver.stop)
        data_dir = folder / "data"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REFUNDLENS_")},
            "PYTHONPATH": os.pathsep.join(
                [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
            "REFUNDLENS_DATA_DIR": str(data_dir),
            "REFUNDLENS_DATABASE_URL": pg.url,
            "REFUNDLENS_PII_KEY": Fernet.generate_key().decode(),  # refused on a server
            "REFUNDLENS_BROKER_URL": redis.url,
            "REFUNDLENS_OCR_ENABLED": "false",
            # The soak files many claims on each of its eight orders (the faults, not the
            # per-order limits, are what it tests).
            "REFUNDLENS_MAX_OPEN_CLAIMS_PER_ORDER": "100000",
            "REFUNDLENS_CLAIMS_WITHIN_ORDER_AMOUNT": "false",
            # Recovery within the phases of a 5-minute run (defaults: 5, 45, 600).
            "REFUNDLENS_ANALYSIS_HEARTBEAT_SECONDS": "3",
            "REFUNDLENS_ANALYSIS_HEARTBEAT_TIMEOUT_SECONDS": "15",
            "REFUNDLENS_ANALYSIS_REQUEUE_SECONDS": "30",
        }

        def cli(*args: str) -> str:
            done = subprocess.run(
                [sys.executable, "-m", "refundlens", *args],
                env=env,
                cwd=folder,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"refundlens {' '.join(args)}: {done.stderr.strip()}")
            return done.stdout.strip()

        cli("db", "upgrade")
        cli("tenants", "add", "shop", "--name", "Soak shop")
        admin = cli("keys", "create", "--role", "admin", "--label", "soak")
        merchant = cli("keys", "create", "--role", "merchant", "--tenant", "shop")
        buyer = cli("keys", "create", "--role", "buyer", "--subject", "buyer-1")
        port = free_port()
        api = Service("api", ["serve", "--host", "127.0.0.1", "--port", str(port)], env, folder)
        beat = Service("worker-a", ["worker", "--concurrency", "1"], env, folder)
        other = Service("worker-b", ["worker", "--concurrency", "1", "--no-beat"], env, folder)
        for service in (api, beat, other):
            service.start()
            cleanup.callback(service.stop)
        url = f"http://127.0.0.1:{port}"
        import httpx

        deadline = time.time() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=3).status_code == 200:
                    break
            if time.time() > deadline:
                raise RuntimeError("the API did not become ready (see api.log)")
            time.sleep(0.5)
        orders = setup_shop(url, admin, merchant, receiver.url)
        log(f"ready in {time.monotonic() - begun:.0f} s: {len(orders)} SKUs, API {url}")
        warm = warm_up(url, buyer, orders)
        load = Load(url, buyer, orders)
        t0 = time.monotonic()
        loader = threading.Thread(target=load.run, args=(rate, duration, t0), daemon=True)
        loader.start()
        events: dict[str, float] = {}
        caught: set[str] = set()  # claims analysing when the worker was killed
        try:
            inject_faults(t0, faults, pg, redis, receiver, other, notes, events, caught)
            loader.join(timeout=duration + 120)
            log("load done; draining")
            settled = drain_backlog(pg.url, load, receiver, deadline=time.monotonic() + drain)
        finally:
            receiver.hang_until = 0.0
            if redis.proc is None:
                redis.start()
            if not pg.ready():
                pg.start()
        result = check(pg.url, load, receiver, cli, phases, notes, warm)
        by_id = {r.id: r for r in result["rows"]}
        for claim_id in sorted(caught):
            r = by_id.get(claim_id)
            if r is not None:
                notes.append(
                    f"claim {claim_id}, analysing when the worker was killed: now {r.state}, "
                    f"{r.attempts} analysis attempts, {r.assessments} assessment(s)"
                )
        result.update(
            duration=duration,
            rate=rate,
            settled_s=settled,
            wall_s=time.monotonic() - begun,
            events=events,
            workers=(beat.starts, other.starts),
        )
        write_report(result, phases, faults)
        return 0 if not result["problems"] else 1


def setup_shop(url: str, admin: str, merchant: str, webhook: str) -> list[tuple[str, Product]]:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as client:
        r = client.post(
            "/v1/tenants",
            headers={"Authorization": f"Bearer {admin}"},
            json={
                "id": "shop",
                "kind": "merchant",
                "name": "Soak shop",
                "webhook_url": webhook,
                "webhook_secret": WEBHOOK_SECRET,
            },
        )
        r.raise_for_status()
        orders = []
        head = {"Authorization": f"Bearer {merchant}"}
        for i, product in enumerate(products(8)):
            r = client.post(
                "/v1/skus",
                headers=head,
                data={"external_id": product.name, "title": product.name},
                files=[
                    ("photos", (product.iconic.name, product.iconic.read_bytes(), "image/jpeg"))
                ],
            )
            r.raise_for_status()
            r = client.post(
                "/v1/orders",
                headers=head,
                json={
                    "external_id": f"o-{i}",
                    "sku_id": r.json()["id"],
                    "buyer_id": "buyer-1",
                    "amount": 200,
                    "shipped_at": "2026-11-01T08:00:00+08:00",
                    "delivered_at": "2026-11-03T08:00:00+08:00",
                    "buyer": {"name": "张三", "phone": "13800138000"},
                },
            )
            r.raise_for_status()
            orders.append((r.json()["id"], product))
    return orders


def warm_up(url: str, buyer: str, orders: list[tuple[str, Product]]) -> set[str]:
    """One claim per worker first (not counted): each loads the engine once. Their ids."""
    import httpx

    with httpx.Client(
        base_url=url, timeout=60, headers={"Authorization": f"Bearer {buyer}"}
    ) as client:
        ids = []
        for order, product in orders[:2]:
            r = client.post(
                "/v1/claims",
                data={"order_id": order, "type": "refund_only", "amount": "50"},
                files=[("photos", ("w.jpg", product.photos[0].read_bytes(), "image/jpeg"))],
            )
            r.raise_for_status()
            ids.append(r.json()["id"])
        deadline = time.time() + 120
        while time.time() < deadline:
            states = [client.get(f"/v1/claims/{i}").json()["state"] for i in ids]
            if all(s not in ("submitted", "analysing") for s in states):
                return set(ids)
            time.sleep(0.5)
    raise RuntimeError("the warm-up claims were not analysed in 120 s (see worker-*.log)")


def inject_faults(
    t0: float,
    faults: dict[str, float],
    pg: Postgres,
    redis: Redis,
    receiver: Receiver,
    worker: Service,
    notes: list[str],
    events: dict[str, float],
    caught: set[str],
) -> None:
    def at(seconds: float) -> None:
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))

    def now() -> float:
        return time.monotonic() - t0

    at(faults["worker_kill"])
    # Mid-analysis: wait (up to 20 s) until the worker holds a task it has not finished and
    # burns CPU on it, and a claim is being analysed.
    give_up = time.monotonic() + 20
    busy = False
    while time.monotonic() < give_up:
        if worker.busy() and worker.computing() and analysing(pg):
            busy = True
            break
        time.sleep(0.01)
    events["worker SIGKILL"] = now()
    worker.kill()
    caught.update(analysing(pg))
    log(f"SIGKILLed worker-b at {now():.1f} s ({'mid-analysis' if busy else 'idle'})")
    notes.append(
        f"worker-b SIGKILLed at {events['worker SIGKILL']:.1f} s, "
        + ("while it ran an analysis" if busy else "while idle (no analysis caught in 20 s)")
    )
    time.sleep(3)
    worker.start()
    events["worker restarted"] = now()

    at(faults["redis_restart"])
    events["Redis stopped"] = now()
    redis.stop()
    log(f"Redis stopped at {now():.1f} s")
    time.sleep(5)
    redis.start()
    events["Redis started"] = now()
    log(f"Redis started at {now():.1f} s")

    at(faults["postgres_stop"])
    events["PostgreSQL stopped"] = now()
    pg.stop()
    log(f"PostgreSQL stopped at {now():.1f} s")
    time.sleep(faults["postgres_down_s"])
    pg.start()
    events["PostgreSQL started"] = now()
    log(f"PostgreSQL started at {now():.1f} s")

    at(faults["webhook_hang"])
    events["webhook hangs"] = now()
    receiver.hang_until = time.time() + faults["webhook_hang_s"]
    log(f"webhook endpoint hangs from {now():.1f} s for {faults['webhook_hang_s']:.0f} s")
    at(faults["webhook_hang"] + faults["webhook_hang_s"])
    events["webhook answers"] = now()


def analysing(pg: Postgres) -> set[str]:
    """Claims in ``analysing`` now, read straight from the database."""
    import psycopg

    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(pg.url.replace("+psycopg", ""), connect_timeout=2) as conn,
    ):
        rows = conn.execute("SELECT id FROM claims WHERE state = 'analysing'").fetchall()
        return {str(r[0]) for r in rows}
    return set()


def _engine(url: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(url, pool_pre_ping=True)


def drain_backlog(url: str, load: Load, receiver: Receiver, deadline: float) -> float:
    """Seconds after the load until every claim left analysis and every event was delivered."""
    from sqlalchemy import func, select

    from refundlens.store.sql.models import Claim, WebhookEvent

    engine = _engine(url)
    started = time.monotonic()
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), engine.connect() as conn:
                busy = conn.execute(
                    select(func.count()).where(Claim.state.in_(["submitted", "analysing"]))
                ).scalar_one()
                pending = conn.execute(
                    select(func.count()).where(WebhookEvent.status == "pending")
                ).scalar_one()
                if busy == 0 and pending == 0:
                    return time.monotonic() - started
            time.sleep(2)
        return float("nan")
    finally:
        engine.dispose()


def check(
    url: str,
    load: Load,
    receiver: Receiver,
    cli: Any,
    phases: list[Phase],
    notes: list[str],
    warm: set[str],
) -> dict[str, Any]:
    from sqlalchemy import func, select

    from refundlens.store.sql.models import (
        Assessment,
        AuditEntry,
        Claim,
        IdempotencyKey,
        WebhookEvent,
    )

    engine = _engine(url)
    with engine.connect() as conn:
        claims = conn.execute(
            select(
                Claim.id,
                Claim.state,
                Claim.analysis_attempts,
                Claim.routing_reason,
            )
        ).all()
        stored_keys = dict(
            (k, c) for k, c in conn.execute(select(IdempotencyKey.key, IdempotencyKey.claim_id))
        )
        counts = dict(
            conn.execute(
                select(Assessment.claim_id, func.count()).group_by(Assessment.claim_id)
            ).all()
        )
        first = dict(
            conn.execute(
                select(Assessment.claim_id, func.min(Assessment.created_at)).group_by(
                    Assessment.claim_id
                )
            ).all()
        )
        failed_at = dict(
            conn.execute(
                select(AuditEntry.claim_id, func.max(AuditEntry.at))
                .where(AuditEntry.action == "claim.analysis_failed")
                .group_by(AuditEntry.claim_id)
            ).all()
        )
        hook_events = dict(conn.execute(select(WebhookEvent.id, WebhookEvent.status)).all())
        hook_attempts = Counter(
            dict(conn.execute(select(WebhookEvent.id, WebhookEvent.attempts)).all())
        )
    engine.dispose()
    accepted = {s.key: s.claim_id for s in load.submissions if s.claim_id}
    rows = [
        ClaimRow(c.id, c.state, counts.get(c.id, 0), c.analysis_attempts, c.routing_reason)
        for c in claims
        if c.id not in warm
    ]
    # The service keeps sha256("<api key id>:<Idempotency-Key>") (service/routes/claims.py).
    key_id = load.buyer_key.split(".")[0]
    keyed = {
        key: stored_keys.get(hashlib.sha256(f"{key_id}:{key}".encode()).hexdigest(), "")
        for key in accepted
    }
    problems = check_claims(accepted, rows, keyed)
    problems += check_webhooks(hook_events, receiver.received)
    refused = [s for s in load.submissions if not s.claim_id]
    problems += [f"never accepted: {s.key} ({', '.join(s.errors)})" for s in refused]
    verify = subprocess_ok(cli, "audit", "verify")
    if not verify[0]:
        problems.append(f"audit verify failed: {verify[1]}")
    # Upload to assessment: from the first try (what the buyer waited) to the assessment's time
    # on the server's clock (the same machine), or to the hand-off to a person.
    wall0 = time.time() - (time.monotonic() - load.t0)
    samples = []
    for s in load.submissions:
        when = first.get(s.claim_id) or failed_at.get(s.claim_id)
        if s.claim_id is None or when is None:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        samples.append((s.started, when.timestamp() - (wall0 + s.started)))
    return {
        "problems": problems,
        "submitted": len(load.submissions),
        "accepted": len(accepted),
        "retried": sum(1 for s in load.submissions if s.tries > 1),
        "errors": Counter(e for s in load.submissions for e in s.errors),
        "states": Counter(r.state for r in rows),
        "attempts": Counter(r.attempts for r in rows),
        "assessments": Counter(r.assessments for r in rows),
        "to_person": sum(1 for r in rows if r.assessments == 0),
        "webhook_events": len(hook_events),
        "webhook_status": Counter(hook_events.values()),
        "webhook_received": sum(receiver.received.values()),
        "webhook_repeats": sum(1 for n in receiver.received.values() if n > 1),
        "webhook_max_attempts": max(hook_attempts.values(), default=0),
        "webhook_hung": receiver.hung,
        "bad_signatures": receiver.bad_signatures,
        "audit": verify[1],
        "latency": phase_latencies(samples, phases),
        "notes": notes,
        "rows": rows,
    }


def subprocess_ok(cli: Any, *args: str) -> tuple[bool, str]:
    try:
        return True, str(cli(*args))
    except RuntimeError as exc:
        return False, str(exc)


def _machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}, {platform.machine()}), Python {platform.python_version()}, "
        f"load average at the end {load} (the machine is shared with other builds and tests)"
    )


def write_report(result: dict[str, Any], phases: list[Phase], faults: dict[str, float]) -> None:
    def fmt(x: float) -> str:
        return "–" if x != x else f"{x:.1f}"

    ok = not result["problems"]
    lines = [
        "# Soak test with faults (issue 24)",
        "",
        f"Command: `make soak` (`python -m bench.soak --duration {result['duration']:.0f} "
        f"--rate {result['rate']}`), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        f"Machine: {_machine()}.",
        "",
        "Components, all on loopback: PostgreSQL 15 and Redis 7 (private instances started by "
        "the script), `refundlens serve` (uvicorn), two `refundlens worker --concurrency 1` "
        "(one with the tick), a webhook receiver that verifies signatures and counts event ids. "
        f"Load: {result['rate']} claims/s for {result['duration']:.0f} s, each claim two "
        "smartphone photos (348x348) of a packaged grocery product against a SKU whose reference is the "
        "product's web photo (`../shared/data/grocery-store-packages`, 8 products), amount 50, "
        "OCR off; retried with the same Idempotency-Key on 503 or a lost connection. Settings "
        "changed for the run: heartbeat 3 s, heartbeat timeout 15 s, requeue after 30 s.",
        "",
        f"Result: **{'PASS' if ok else 'FAIL'}**. Wall time {result['wall_s']:.0f} s; backlog and "
        f"webhooks settled {fmt(result['settled_s'])} s after the load ended.",
        "",
        "## Faults",
        "",
        *[f"- {name} at {t:.1f} s" for name, t in result["events"].items()],
        *[f"- {note}" for note in result["notes"]],
        "",
        "## Claims",
        "",
        f"- submitted {result['submitted']}, accepted {result['accepted']} "
        f"({result['retried']} needed more than one try; errors seen: "
        f"{dict(result['errors']) or 'none'})",
        f"- final states: {dict(result['states'])}",
        f"- assessments per claim: {dict(result['assessments'])}; analysis attempts per claim: "
        f"{dict(result['attempts'])}",
        f"- webhook events {result['webhook_events']} ({dict(result['webhook_status'])}); "
        f"deliveries received {result['webhook_received']}, event ids received more than once "
        f"{result['webhook_repeats']} (de-duplicated by id), deliveries held by the hanging "
        f"endpoint {result['webhook_hung']}, most attempts for one event "
        f"{result['webhook_max_attempts']}, bad signatures {result['bad_signatures']}",
        f"- audit: {result['audit']}",
        "",
        "## Upload to assessment, per phase",
        "",
        "From the first try of the upload to the assessment's time on the server (or the hand-off "
        "to a person); a claim belongs to the phase in which its upload began.",
        "",
        "| phase | from s | to s | claims | p50 s | p95 s | p99 s | max s |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['phase']} | {r['from_s']:.0f} | {r['to_s']:.0f} | {r['claims']} | "
            f"{fmt(r['p50'])} | {fmt(r['p95'])} | {fmt(r['p99'])} | {fmt(r['max'])} |"
            for r in result["latency"]
        ],
        "",
        "## Problems",
        "",
        *([f"- {p}" for p in result["problems"][:50]] or ["none"]),
        "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.md").write_text("\n".join(lines), encoding="utf-8")
    sys.stdout.write("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=0.5, help="claims per second")
    parser.add_argument("--drain", type=float, default=150.0, help="seconds to settle after")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data folder")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    return run(args.duration, args.rate, args.drain, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
