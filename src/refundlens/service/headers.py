"""Security headers on every response (docs/security.md lists each with the test behind it).

The web page runs no inline script or style: its one script and one stylesheet are files under
``/web/static``, so a text that slipped through escaping still could not run. No page may be
framed (clickjacking), no response is sniffed into another type, and the claim pages are not
kept in shared or browser caches.
"""

from __future__ import annotations

from typing import Any

from ..report.evidence import REPORT_CSP

__all__ = ["API_CSP", "REPORT_CSP", "WEB_CSP", "SecurityHeaders"]

WEB_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The web page: its own files, its own photos and the check page's inline result picture; the
capture page's script sends the photos to this site only."""
API_CSP = "default-src 'none'; frame-ancestors 'none'"
"""JSON answers are never documents to render."""

# FastAPI's own documentation pages load Swagger UI and ReDoc from their CDN with inline script.
_DOC_PATHS = ("/docs", "/redoc")

_COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a form
    # POST, and the CSRF check could no longer tell this site's forms from another's.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


class SecurityHeaders:
    """Pure ASGI middleware: adds the headers to each response that does not set them itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = list(_COMMON)
                if not path.startswith(_DOC_PATHS):
                    csp = WEB_CSP if path.startswith("/web") else API_CSP
                    extra.append((b"content-security-policy", csp.encode()))
                # Pages, reports, photos and API answers hold buyers' data: kept out of a shared
                # machine's cache unless the route says otherwise (static files do).
                if not path.startswith(_DOC_PATHS):
                    extra.append((b"cache-control", b"no-store"))
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
