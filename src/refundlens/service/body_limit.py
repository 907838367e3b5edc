"""Request bodies counted as they arrive, refused the moment they pass their limit.

A pure ASGI middleware, so that it sees every body message before anything buffers or spools
it: a declared ``Content-Length`` over the limit is answered at once, before a byte is read; a
chunked body (no length) is counted message by message and answered as soon as the count
passes. Either way the answer is 413 ``request.too_large`` in the API's error shape, and the
rest of the body is never read (the server closes the connection).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimit"]


class _TooLarge(Exception):
    """Raised into the app from ``receive``: whatever it makes of it, the client gets the 413."""


class BodyLimit:
    """``multipart_bytes`` for multipart uploads that carry a key or a web session,
    ``capture_bytes`` for the capture page's upload (what one live capture may hold),
    ``other_bytes`` for every other body (anonymous uploads included)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        multipart_bytes: int,
        other_bytes: int,
        capture_bytes: int | None = None,
        signed_in: Callable[[Headers], bool] | None = None,
    ) -> None:
        self.app = app
        self.multipart_bytes = multipart_bytes
        self.other_bytes = other_bytes
        self.capture_bytes = multipart_bytes if capture_bytes is None else capture_bytes
        self.signed_in = signed_in
        """Whether the key or the session a request names is a live one (a database lookup)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        multipart = headers.get("content-type", "").lower().startswith("multipart/")
        # Only a request that names a key or a web session may upload files: the framework
        # parses a form before the route checks who sent it, so an anonymous multipart body
        # would otherwise be read and spooled up to the upload limit for nothing.
        signed = "authorization" in headers or "rl_session=" in headers.get("cookie", "")
        # Naming one is not enough: any made-up header would open the upload limit.
        if multipart and signed and self.signed_in is not None:
            signed = await run_in_threadpool(self.signed_in, headers)
        limit = self.multipart_bytes if multipart and signed else self.other_bytes
        # The capture page's upload carries its capability in the path (a one-time token),
        # which the route checks before it reads the body; it holds one capture at most.
        if multipart and scope.get("path", "").startswith("/web/capture/"):
            limit = self.capture_bytes
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            await _refuse(send, f"The request declares {declared} bytes", limit)
            return

        received = 0
        passed = started = False

        async def counting_receive() -> Message:
            nonlocal received, passed
            if passed:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    passed = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if passed:
                return  # the app's answer to a body cut short: the client gets the 413 instead
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not passed or started:
                raise
        if passed and not started:
            await _refuse(send, f"The request passed {received} bytes", limit)


async def _refuse(send: Send, said: str, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "request.too_large",
                "message": f"{said}; the limit is {limit} bytes.",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
