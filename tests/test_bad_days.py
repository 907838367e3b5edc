"""Bad days (issue 18, items 5-8): a locked database, a video bomb, a broker that is down, a
worker killed mid-analysis. Each test sets the fault up for real and measures what the service
does about it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from .service_support import running_server


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
