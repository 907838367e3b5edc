"""Uploaded bytes held in memory at once, over every request of one API process.

Starlette spools an upload to disk as it arrives; a route then reads each file into memory to
hash, check and decode it. Without a bound, eight concurrent claims of ten 50 MB files held
4 GB before any decode slot was asked for. Before it reads its first file, a request reserves
its whole body (every file it may read; at most the whole budget, so that no request is refused
for its size alone) from ``upload_memory_bytes``, and gives it back once it has been answered.
Requests wait in the order they asked, up to ``upload_slot_wait_seconds``, then are answered
503 ``service.busy`` with ``Retry-After``, nothing read or stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import RefundlensError

__all__ = ["HoldUploadMemory", "UploadMemory", "reserve"]

log = logging.getLogger(__name__)


class UploadMemory:
    """The process's budget: ``budget`` bytes (0: no bound), waited for ``wait_seconds``."""

    def __init__(self, budget: int, wait_seconds: float) -> None:
        self.budget = budget
        self.wait_seconds = wait_seconds
        self.used = 0
        self._waiting: deque[object] = deque()
        self._lock = threading.Lock()

    def queue(self, ticket: object) -> None:
        with self._lock:
            self._waiting.append(ticket)

    def try_take(self, ticket: object, size: int) -> bool:
        """Take ``size`` for ``ticket`` if it is first in line and the room is there."""
        with self._lock:
            if not self._waiting or self._waiting[0] is not ticket:
                return False
            if self.used + size > self.budget:
                return False
            self._waiting.popleft()
            self.used += size
            return True

    def leave(self, ticket: object) -> None:
        with self._lock:
            if ticket in self._waiting:
                self._waiting.remove(ticket)

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


class _Held:
    def __init__(self, memory: UploadMemory) -> None:
        self.memory = memory
        self.body = 0
        """Bytes of the request's body received so far."""
        self.size = 0
        self.reserved = False


_HELD: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("upload_memory", default=None)


async def reserve(size: int) -> None:
    """Before the request being served reads a file of ``size`` bytes: reserve what it may read
    (its whole body, at least ``size``, at most the budget) the first time it asks, waiting in
    line up to ``wait_seconds``; ``service.busy`` where no room is made. Later calls of the same
    request are covered. Outside a request served by :class:`HoldUploadMemory` (a function
    called directly) nothing is counted."""
    held = _HELD.get()
    if held is None or held.reserved or held.memory.budget <= 0:
        return
    memory = held.memory
    want = min(max(held.body, size), memory.budget)
    ticket = object()
    memory.queue(ticket)
    deadline = time.monotonic() + memory.wait_seconds
    try:
        while not memory.try_take(ticket, want):
            if time.monotonic() >= deadline:
                # service.busy has several causes: the log names this one (docs/operations.md).
                log.warning(
                    "upload busy: upload_memory_bytes (%d) held by other uploads for "
                    "upload_slot_wait_seconds (%g); this one wanted %d",
                    memory.budget,
                    memory.wait_seconds,
                    want,
                )
                raise RefundlensError(
                    "service.busy", "Other uploads are being read; send this one again shortly."
                )
            await asyncio.sleep(0.02)
    finally:
        memory.leave(ticket)
    held.size, held.reserved = want, True


class HoldUploadMemory:
    """The ASGI middleware that counts a request's body as it arrives and gives back what the
    request reserved once it has been answered."""

    def __init__(self, app: ASGIApp, *, memory: UploadMemory) -> None:
        self.app = app
        self.memory = memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = _Held(self.memory)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                held.body += len(message.get("body", b""))
            return message

        token = _HELD.set(held)
        try:
            await self.app(scope, counting_receive, send)
        finally:
            _HELD.reset(token)
            if held.size:
                self.memory.give(held.size)
