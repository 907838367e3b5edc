"""What an operations team sees: /metrics, JSON log lines with request ids, and no personal data
in the logs of a full run. ``refundlens serve`` runs as a process of its own, as in production:
the analysis runs in its task pool, so the metrics it counts are summed across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from refundlens.config import Settings
from refundlens.service.auth import create_key
from refundlens.store import Database

from .service_support import free_port

BUYER_NAME, BUYER_PHONE = "张秀英", "13912345678"


def _sample(name: str) -> bytes:
    return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()


class Served:
    def __init__(
        self, url: str, metrics_url: str, data: Path, admin: str, lines: list[str]
    ) -> None:
        self.url, self.metrics_url, self.data = url, metrics_url, data
        self.admin, self.lines = admin, lines

    def key(self, role: str, tenant: str | None = None, subject: str | None = None) -> str:
        database = Database(Settings(data_dir=str(self.data)))
        try:
            with database.session() as session:
                return create_key(session, role, tenant, subject)
        finally:
            database.dispose()

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("ops")
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "REFUNDLENS_DATA_DIR": str(data),
        "REFUNDLENS_OCR_ENABLED": "false",
        "REFUNDLENS_METRICS_PORT": str(metrics_port),
        "REFUNDLENS_LOG_FORMAT": "json",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "refundlens", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")))  # type: ignore[union-attr]
    reader.daemon = True
    reader.start()
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "".join(lines)
            time.sleep(0.2)
        database = Database(Settings(data_dir=str(data)))
        with database.session() as session:
            admin = create_key(session, "admin")
        database.dispose()
        yield Served(
            f"http://127.0.0.1:{port}",
            f"http://127.0.0.1:{metrics_port}/metrics",
            data,
            admin,
            lines,
        )
    finally:
        process.terminate()
        process.wait(timeout=60)


def _value(text: str, name: str, **labels: str) -> float:
    """The sample ``name{labels}`` in a Prometheus exposition (0 where absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0


def _file_and_analyse_a_claim(served: Served, n: int) -> str:
    with served.client(served.admin) as admin:
        admin.post("/v1/tenants", json={"id": "shop-a", "kind": "merchant", "name": "shop-a"})
    merchant_key = served.key("merchant", "shop-a")
    buyer_key = served.key("buyer", subject="buyer-1")
    with served.client(merchant_key) as merchant:
        sku = merchant.post(
            "/v1/skus",
            data={"external_id": f"yoghurt-{n}"},
            files=[("photos", ("listing.jpg", _sample("listing.jpg"), "image/jpeg"))],
        ).json()["id"]
        order = merchant.post(
            "/v1/orders",
            json={
                "external_id": f"o-{n}",
                "sku_id": sku,
                "buyer_id": "buyer-1",
                "amount": 50,
                "buyer": {"name": BUYER_NAME, "phone": BUYER_PHONE},
            },
        ).json()["id"]
    with served.client(buyer_key) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "20"},
            files=[("photos", ("claim.jpg", _sample("claim_genuine.jpg"), "image/jpeg"))],
            headers={"X-Request-ID": f"req-ops-test-{n}"},
        )
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == f"req-ops-test-{n}"
        claim_id = str(r.json()["id"])
        deadline = time.time() + 120
        while buyer.get(f"/v1/claims/{claim_id}").json()["state"] in ("submitted", "analysing"):
            assert time.time() < deadline
            time.sleep(0.5)
    return claim_id


def test_metrics_count_across_processes_for_an_admin_or_the_scraper_port_only(
    served: Served,
) -> None:
    _file_and_analyse_a_claim(served, 1)
    # An event given up on leaves webhooks_pending: counted apart, an alert sees it (it went
    # quiet as the events were lost: an integrator's walkthrough).
    from refundlens.store.sql.models import WebhookEvent

    database = Database(Settings(data_dir=str(served.data)))
    try:
        with database.session() as session:
            session.add(
                WebhookEvent(
                    id="evt_given_up",
                    tenant_id="shop-a",
                    event="claim.analysed",
                    body={},
                    status="failed",
                )
            )
    finally:
        database.dispose()
    with httpx.Client(base_url=served.url, timeout=30) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        # Any token is a method to the server: each made a series of its own, without end.
        for n in range(3):
            anonymous.request(f"X{n:05d}ABC", "/healthz")
    merchant_key = served.key("merchant", "shop-a")
    with served.client(served.admin) as admin:
        answer = admin.get("/metrics")
    with served.client(merchant_key) as merchant:
        assert merchant.get("/metrics").status_code == 403
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert _value(text, "refundlens_claims_received_total", claim_type="refund_only") == 1
    # Counted in the task pool's process, summed here.
    assert _value(text, "refundlens_analysis_seconds_count") == 1
    analysed = sum(
        _value(text, "refundlens_claims_analysed_total", claim_type="refund_only", action=a)
        for a in ("approve", "request_capture", "review", "escalate")
    )
    assert analysed == 1
    assert _value(text, "refundlens_detector_seconds_count", detector="reference") == 1
    assert _value(text, "refundlens_queue_depth") == 0
    assert _value(text, "refundlens_webhooks_failed") == 1
    assert _value(text, "refundlens_audit_chain_length") >= 5
    assert _value(text, "refundlens_http_request_seconds_count", route="/v1/claims") >= 1
    assert "X00000ABC" not in text
    assert _value(text, "refundlens_http_request_seconds_count", method="other") >= 3
    assert _value(text, "refundlens_errors_total", code="auth.missing") >= 1
    # The scraper's own port: no key, the same series.
    scraped = httpx.get(served.metrics_url, timeout=30)
    assert scraped.status_code == 200
    assert _value(scraped.text, "refundlens_claims_received_total", claim_type="refund_only") == 1
    assert "refundlens_queue_depth" in scraped.text


def test_logs_are_json_lines_with_request_ids_and_never_a_buyers_name_or_phone(
    served: Served,
) -> None:
    claim_id = _file_and_analyse_a_claim(served, 2)
    time.sleep(1.0)  # the last lines of the run
    events = []
    for line in served.lines:
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    assert events, "".join(served.lines[-20:])
    for event in events:
        assert {"time", "level", "logger", "event"} <= set(event)
        assert event["time"].endswith("+00:00")
    tagged = [e for e in events if e.get("request_id") == "req-ops-test-2"]
    assert any(e["event"] == "request" and e["route"] == "/v1/claims" for e in tagged)
    # The analysis ran in the task pool's process, under the request that filed the claim.
    analysis = [e for e in events if e.get("claim_id") == claim_id]
    assert any(e.get("request_id") == "req-ops-test-2" for e in analysis), analysis
    # and the notifications it queued name that request too (webhooks send it as X-Request-ID).
    from sqlalchemy import select

    from refundlens.store.sql.models import WebhookEvent

    database = Database(Settings(data_dir=str(served.data)))
    with database.session() as session:
        bodies = session.execute(
            select(WebhookEvent.event, WebhookEvent.body).where(WebhookEvent.claim_id == claim_id)
        ).all()
    database.dispose()
    assert {event for event, body in bodies if body.get("request_id") == "req-ops-test-2"} >= {
        "claim.received",
        "claim.analysed",
    }
    everything = "".join(served.lines)
    assert BUYER_NAME not in everything and BUYER_PHONE not in everything


def test_every_metric_is_documented_in_operations_md() -> None:
    import re

    source = (Path(__file__).resolve().parents[1] / "src/refundlens/metrics.py").read_text()
    defined = set(re.findall(r'"(refundlens_[a-z_]+)"', source))
    documented = (Path(__file__).resolve().parents[1] / "docs/operations.md").read_text()
    assert defined and {m for m in defined if f"`{m}`" not in documented} == set()


def test_no_log_line_carries_a_webhook_receivers_whole_url() -> None:
    # httpx wrote every request's URL at info, a Slack or Teams receiver's token in its path
    # (an integrator's walkthrough found it in the log).
    import logging

    from refundlens.logs import configure

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure("info")
        for name in ("httpx", "httpcore"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
        assert logging.getLogger("refundlens.webhooks").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], root.level = handlers, level


def test_a_readiness_probe_reads_the_migration_scripts_once_per_process_not_per_probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /readyz needs no key and is never rate limited (load balancers must not be turned away):
    # each probe parsed every migration script (30 ms), and a flood of probes slowed every
    # other request (a security review). The code's newest migration does not change while it
    # runs.
    from types import SimpleNamespace

    from alembic.script import ScriptDirectory

    from refundlens.runtime import Runtime
    from refundlens.service.readiness import readiness

    runtime = Runtime(Settings(data_dir=str(tmp_path)))
    runtime.db.upgrade()
    no_broker = SimpleNamespace(celery=False)
    assert readiness(runtime, no_broker)["migrations"] == "ok"  # type: ignore[arg-type]
    parsed: list[object] = []
    real = ScriptDirectory.from_config
    monkeypatch.setattr(
        ScriptDirectory, "from_config", lambda *a, **k: parsed.append(a) or real(*a, **k)
    )
    for _ in range(3):
        assert readiness(runtime, no_broker)["migrations"] == "ok"  # type: ignore[arg-type]
    assert parsed == []
    runtime.db.dispose()
