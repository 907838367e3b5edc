"""A real server for the service tests: uvicorn on a free loopback port, SQLite or PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from refundlens.config import Settings
from refundlens.service import create_app
from refundlens.service.auth import create_key
from refundlens.store import Database

PG_ADMIN_URL = os.environ.get(
    "REFUNDLENS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


REDIS = os.environ.get("REFUNDLENS_TEST_REDIS", "redis://127.0.0.1:6379/11")


def redis_for_test() -> str:
    """The test Redis, emptied; a skip with the reason where none is reachable, a failure
    where CI is set (CI runs one)."""
    try:
        import redis

        reachable = bool(redis.Redis.from_url(REDIS, socket_connect_timeout=2).ping())
    except Exception:
        reachable = False
    if not reachable:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Redis at {REDIS} is not reachable")
        pytest.skip(f"Redis not reachable at {REDIS} (set REFUNDLENS_TEST_REDIS); CI runs it")
    redis.Redis.from_url(REDIS).flushdb()
    return REDIS


def postgres_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(
            PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=3
        ):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty database for one test module; dropped afterwards."""
    import psycopg

    if not postgres_reachable():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL at {PG_ADMIN_URL} is not reachable")
        pytest.skip(
            f"PostgreSQL not reachable at {PG_ADMIN_URL} (set REFUNDLENS_TEST_PG); CI runs it"
        )
    name = f"refundlens_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Server:
    url: str
    settings: Settings
    admin: str
    app: Any = None
    """The ASGI app, served in this process (its ``state.runtime`` is the server's)."""

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120.0)

    def key(
        self,
        role: str,
        tenant: str | None = None,
        subject: str | None = None,
        assign: list[str] | None = None,
    ) -> str:
        database = Database(self.settings)
        try:
            with database.session() as session:
                return create_key(session, role, tenant, subject, assign=assign)
        finally:
            database.dispose()


def one_buyer_many_claims_policy(directory: Path) -> str:
    """A policy file (its path) without the rules that weigh a buyer's claims together
    (``routing.buyer_claims_max``, ``buyer_claimed_max_amount``): for a module whose shared shop
    files all its claims for one buyer, by convenience. Those rules are tested with their
    defaults in tests/test_cases.py and tests/test_store_contract.py."""
    path = directory / "one-buyer-many-claims.yaml"
    path.write_text(
        "routing:\n"
        "  buyer_claims_max: {refund_only: null}\n"
        "  buyer_claimed_max_amount: {refund_only: null}\n",
        encoding="utf-8",
    )
    return str(path)


@contextlib.contextmanager
def running_server(
    data_dir: Path, database_url: str = "", broker_url: str = "", **extra: object
) -> Iterator[Server]:
    settings = Settings(
        data_dir=str(data_dir), database_url=database_url, broker_url=broker_url, ocr_enabled=False
    ).replace(**extra)
    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    database = Database(settings)
    with database.session() as session:
        admin = create_key(session, "admin")
    database.dispose()
    try:
        yield Server(f"http://127.0.0.1:{port}", settings, admin, app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_analysed(client: httpx.Client, claim_id: str, timeout: float = 120.0) -> dict:  # type: ignore[type-arg]
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = client.get(f"/v1/claims/{claim_id}").json()
        if body["state"] not in ("submitted", "analysing"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"claim {claim_id} was not analysed within {timeout} s")


def assessed(server: Server, claim_id: str, timeout: float = 120.0) -> dict:  # type: ignore[type-arg]
    """The claim once analysed, as the platform (admin) sees it: with the assessment, the risk
    and the routing reason, which a buyer's own view never carries (cases/buyer.py)."""
    with server.client(server.admin) as admin:
        return wait_analysed(admin, claim_id, timeout)


# --- a shop to test against: the same few calls every service test, bench and fuzzer made ---


def sample(name: str) -> bytes:
    """A bundled demo photo (src/refundlens/samples; credited in NOTICE)."""
    from importlib import resources

    return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()


@contextlib.contextmanager
def backend(kind: str) -> Iterator[str]:
    """The database URL for a test module parametrized over ``sqlite`` and ``postgresql``:
    empty (the embedded SQLite) or a fresh PostgreSQL database, dropped afterwards."""
    if kind == "postgresql":
        with postgres_database() as url:
            yield url
    else:
        yield ""


def add_tenants(server: Server, *tenants: str) -> None:
    with server.client(server.admin) as admin:
        for tenant in tenants:
            r = admin.post("/v1/tenants", json={"id": tenant, "kind": "merchant", "name": tenant})
            assert r.status_code == 201, r.text


def listed_sku(server: Server, merchant_key: str, external_id: str = "mug") -> str:
    """A SKU whose reference is the bundled listing photo; its id."""
    with server.client(merchant_key) as merchant:
        r = merchant.post(
            "/v1/skus",
            data={"external_id": external_id},
            files=[("photos", ("listing.jpg", sample("listing.jpg"), "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def order_for(
    server: Server, merchant_key: str, sku: str, buyer: str, external_id: str, **fields: object
) -> str:
    """An order of ``sku`` for ``buyer`` (amount 300 unless ``fields`` says); its id."""
    with server.client(merchant_key) as merchant:
        r = merchant.post(
            "/v1/orders",
            json={"external_id": external_id, "sku_id": sku, "buyer_id": buyer, "amount": 300}
            | fields,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def file_claim(
    server: Server,
    buyer_key: str,
    order: str,
    photos: list[tuple[str, bytes]] | None = None,
    **form: str,
) -> dict:  # type: ignore[type-arg]
    """A refund-only claim of 100 on ``order`` with ``photos`` (the forged sample by default)."""
    files = [
        ("photos", (n, d, "image/jpeg"))
        for n, d in photos or [("c.jpg", sample("claim_forged.jpg"))]
    ]
    with server.client(buyer_key) as buyer:
        r = buyer.post(
            "/v1/claims",
            data={"order_id": order, "type": "refund_only", "amount": "100"} | form,
            files=files,
        )
        assert r.status_code == 201, r.text
        return dict(r.json())


def logged_in(client: httpx.Client, server: Server, key: str) -> httpx.Client:
    """``client`` logged in to the web page through its form, as a browser would: the login
    page's token (cookie and field), this site's Origin. Returns it, the session cookie set."""
    import re

    form = client.get("/web/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    response = client.post(
        "/web/login", data={"key": key, "csrf": csrf[1]}, headers={"Origin": server.url}
    )
    assert response.status_code == 303, response.text
    return client


@contextlib.contextmanager
def web_login(server: Server, key: str) -> Iterator[httpx.Client]:
    """A client logged in to the web page as ``key``; closed afterwards."""
    with httpx.Client(base_url=server.url, timeout=60.0) as client:
        yield logged_in(client, server, key)


def audit_entries(server: Server, claim_id: str) -> list[tuple[str, dict[str, object]]]:
    """(action, details) of every audit entry about ``claim_id``, oldest first, read from the
    server's database (the API shows entries to people, not their raw details)."""
    from sqlalchemy import select

    from refundlens.store import Database
    from refundlens.store.sql.models import AuditEntry

    database = Database(server.settings)
    with database.session() as session:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.claim_id == claim_id).order_by(AuditEntry.seq)
        ).scalars()
        entries = [(row.action, dict(row.details)) for row in rows]
    database.dispose()
    return entries
