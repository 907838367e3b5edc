"""Structured logs: one JSON object per line, with the request that caused it.

Fields (docs/operations.md): ``time`` (ISO 8601 with its zone), ``level``, ``logger``, ``event``
(the message), and where known ``request_id``, ``claim_id``, ``tenant`` and ``duration_ms``,
plus any ``extra`` a call adds. The request id comes from the API's ``X-Request-ID`` header (or
is made there), travels with the claim's task to the worker, and is sent on with each webhook,
so one id follows a claim from upload to notification.

The library never configures logging on import; :func:`configure` is called by the CLI's
long-running commands (``serve``, ``worker``). Personal data never reaches a log: buyers' names
and phones are sealed in the database and no code logs them (a test reads a full run's logs).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

__all__ = [
    "JsonFormatter",
    "bound",
    "configure",
    "configure_like_parent",
    "context",
    "new_request_id",
    "request_id",
]

_context: contextvars.ContextVar[tuple[tuple[str, Any], ...]] = contextvars.ContextVar(
    "refundlens_log_context", default=()
)
# The standard LogRecord attributes: everything else on a record came from ``extra``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",  # uvicorn's copy of the message with ANSI colours
}


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def context() -> dict[str, Any]:
    """The fields bound to the code running now (request id, claim id, tenant)."""
    return dict(_context.get())


def request_id() -> str | None:
    value = context().get("request_id")
    return str(value) if value else None


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line written inside the block (None values are left out)."""
    merged = {**context(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(context())
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str = "info", *, json_lines: bool = True) -> None:
    """Send refundlens's logs (and uvicorn's and Celery's) to stderr, as JSON lines or plain."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # FAISS says which CPU build it loaded, eight lines at info in every process: not news.
    logging.getLogger("faiss.loader").setLevel(max(root.level, logging.WARNING))
    # httpx writes every request's whole URL at info: a webhook receiver's URL may carry its
    # token in the path or query (Slack, Teams), which the tenant API shows only to an admin
    # (an integrator's walkthrough found it in the log). refundlens.webhooks says what failed.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    # Alembic says which plugins it set up and which dialect it drives, nine lines at info on
    # every start: only the migrations it runs are news (a new user read the first admin key
    # between 25 of these lines).
    logging.getLogger("alembic.runtime.plugins").setLevel(max(root.level, logging.WARNING))
    migration = logging.getLogger("alembic.runtime.migration")
    for kept in [f for f in migration.filters if isinstance(f, _MigrationsRun)]:
        migration.removeFilter(kept)
    if root.level >= logging.INFO:  # at debug, everything Alembic says
        migration.addFilter(_MigrationsRun())
    # Child processes (the embedded task pool is spawned, not forked) log the same way.
    os.environ[_INHERITED] = f"{level}:{'json' if json_lines else 'plain'}"


_INHERITED = "REFUNDLENS_LOGGING_SET_UP"


class _MigrationsRun(logging.Filter):
    """Alembic's migration lines at info that name a migration run; warnings always."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or str(record.msg).startswith("Running ")


def configure_like_parent() -> None:
    """In a child process: log as the process that started it was configured to (if it was)."""
    inherited = os.environ.get(_INHERITED)
    if inherited:
        level, _, style = inherited.partition(":")
        configure(level, json_lines=style == "json")
