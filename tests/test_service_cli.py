"""The service's commands through real subprocesses: serve, db upgrade, keys create."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .service_support import free_port


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REFUNDLENS_DATA_DIR": str(tmp_path / "data"),
        "REFUNDLENS_OCR_ENABLED": "false",
    }


def test_db_upgrade_creates_the_database_and_is_idempotent(tmp_path: Path) -> None:
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "refundlens", "db", "upgrade"],
            capture_output=True,
            text=True,
            env=_env(tmp_path),
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert "database at head" in result.stdout
    assert (tmp_path / "data" / "refundlens.db").exists()


def test_keys_create_prints_a_working_key_and_refuses_a_merchant_key_without_tenant(
    tmp_path: Path,
) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "refundlens", "keys", "create", "--role", "merchant"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert bad.returncode == 2 and "--tenant" in bad.stderr
    good = subprocess.run(
        [
            sys.executable,
            "-m",
            "refundlens",
            "keys",
            "create",
            "--role",
            "merchant",
            "--tenant",
            "shop-a",
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert good.returncode == 0, good.stderr
    assert good.stdout.strip().startswith("rlk_") and "." in good.stdout


def test_serve_prints_the_url_and_an_admin_key_once_and_answers(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "refundlens", "serve", "--port", str(port)]
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(tmp_path)
    )
    try:
        lines = []
        assert first.stdout is not None
        while not any("admin key" in line for line in lines):
            line = first.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        assert any(f"http://127.0.0.1:{port}" in line for line in lines)
        key = next(line for line in lines if "admin key" in line).rsplit(" ", 1)[-1].strip()
        deadline = time.time() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert time.time() < deadline
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        claims = httpx.get(
            f"http://127.0.0.1:{port}/v1/claims", headers={"Authorization": f"Bearer {key}"}
        )
        assert claims.status_code == 200 and claims.json()["items"] == []
    finally:
        first.terminate()
        first.wait(timeout=60)
    # A second start on the same data prints no new admin key.
    port = free_port()
    again = subprocess.Popen(
        [sys.executable, "-m", "refundlens", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(tmp_path),
    )
    try:
        assert again.stdout is not None
        seen = [again.stdout.readline() for _ in range(2)]
        assert any("serving on" in line for line in seen)
        assert not any("admin key" in line for line in seen)
    finally:
        again.terminate()
        again.wait(timeout=60)
