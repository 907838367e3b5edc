"""Every request counted, timed and logged once, under a request id.

The id is the client's ``X-Request-ID`` when it sends a sane one (a proxy or the platform's own
gateway usually does), else a new one; it is answered in ``X-Request-ID`` and bound to every log
line written while the request runs (``logs.bound``). The histogram is labelled with the route's
template (``/v1/claims/{claim_id}``), never the path itself: a label per claim would grow the
series without bound.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from .. import logs
from ..metrics import metrics
from .route_names import template_of

__all__ = ["Observe"]

log = logging.getLogger("refundlens.http")
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Observe:
    """Pure ASGI middleware: request id, one log line and one histogram sample per request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SANE_ID.fullmatch(given) else logs.new_request_id()
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with logs.bound(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                template = template_of(scope)
                method = scope.get("method", "")
                # The server takes any token as a method: anything else than the standard ones
                # is one label value, or anyone could add series without end.
                metrics().http_requests.labels(
                    method if method in _METHODS else "other", template, f"{status // 100}xx"
                ).observe(seconds)
                log.info(
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "route": template,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 1),
                    },
                )
