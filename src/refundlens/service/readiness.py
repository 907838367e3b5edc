"""What ``/readyz`` checks: each check answers ``"ok"`` or a sentence saying what failed."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import TYPE_CHECKING

from sqlalchemy import select

from ..errors import RefundlensError

if TYPE_CHECKING:
    from ..config import Settings
    from ..runtime import Runtime
    from ..workers.runner import Dispatcher

__all__ = ["public_checks", "readiness"]

log = logging.getLogger("refundlens.service")


def public_checks(checks: dict[str, str]) -> dict[str, str]:
    """What ``/readyz`` tells anyone (it needs no key): each check's verdict in a word or two
    (``unreachable``, ``not writable``, ``not at head``, ``cannot open sealed personal data``),
    never the error text, which named internal hosts, ports and paths. The details go to the
    log, where the operator reads them."""
    out = {}
    for name, value in checks.items():
        if value == "ok":
            out[name] = "ok"
            continue
        log.warning("readyz: %s %s", name, value)
        out[name] = (
            "not at head"
            if name == "migrations" and value.startswith("at ")
            else value.split(":")[0][:40]
        )
    return out


def readiness(runtime: Runtime, dispatch: Dispatcher) -> dict[str, str]:
    checks = {
        "database": _database(runtime),
        "migrations": _migrations(runtime),
        "blobs": _blobs(runtime),
        "pii_key": _pii_key(runtime),
    }
    if dispatch.celery:
        checks["broker"] = _broker(runtime.settings.broker_url, runtime.settings)
    return checks


def _database(runtime: Runtime) -> str:
    try:
        with runtime.db.session() as session:
            session.execute(select(1))
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def _migrations(runtime: Runtime) -> str:
    try:
        current, head = runtime.db.revisions()
    except Exception as exc:
        return f"unknown: {type(exc).__name__}: {exc}"[:300]
    return "ok" if current == head else f"at {current}, not at head {head}"


def _broker(url: str, settings: Settings) -> str:
    from kombu.connection import Connection

    timeout = settings.readyz_timeout_seconds
    try:
        with Connection(url, connect_timeout=timeout) as connection:  # type: ignore[no-untyped-call]
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}: {exc}"[:300]
    return "ok"


def _blobs(runtime: Runtime) -> str:
    try:
        runtime.blobs.root.mkdir(parents=True, exist_ok=True)
        handle, path = tempfile.mkstemp(dir=runtime.blobs.root, prefix=".readyz-")
        os.close(handle)
        os.unlink(path)
    except OSError as exc:
        return f"not writable: {exc}"[:300]
    return "ok"


def _pii_key(runtime: Runtime) -> str:
    """The newest sealed order opens with the configured PII key. A restore that forgot the key
    (the embedded default then makes a new one) is caught here, not at the first appeal."""
    try:
        from sqlalchemy import select

        from ..store.crypto import PiiCipher
        from ..store.sql.models import Order

        with runtime.db.session() as session:
            sealed = session.execute(
                select(Order.buyer_pii)
                .where(Order.buyer_pii.is_not(None))
                .order_by(Order.created_at.desc())
                .limit(1)
            ).scalar()
        if sealed is not None:
            PiiCipher.from_settings(runtime.settings).open(sealed)
    except RefundlensError as exc:
        hint = "" if runtime.settings.pii_key else " (REFUNDLENS_PII_KEY is not set)"
        return f"cannot open sealed personal data: {exc.message}{hint}"[:300]
    except Exception as exc:
        return f"cannot open sealed personal data: {type(exc).__name__}"[:300]
    return "ok"
