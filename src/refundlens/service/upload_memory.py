"""Uploaded bytes held in memory at once, over every request of one API process.

Starlette spools an upload to disk as it arrives; a route then reads each file into memory to
hash, check and decode it. Without a bound, eight concurrent claims of ten 50 MB files held
4 GB before any decode slot was asked for. Each request reserves its files' sizes from
``upload_memory_bytes`` before it reads them, and gives them back when its answer has been
sent; a request that finds no room waits up to ``upload_slot_wait_seconds``, then is answered
503 ``service.busy`` with ``Retry-After`` with nothing read or stored.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import RefundlensError

__all__ = ["HoldUploadMemory", "UploadMemory", "reserve"]


class UploadMemory:
    """The process's budget: ``budget`` bytes (0: no bound), waited for ``wait_seconds``."""

    def __init__(self, budget: int, wait_seconds: float) -> None:
        self.budget = budget
        self.wait_seconds = wait_seconds
        self.used = 0
        self._lock = threading.Lock()

    def try_take(self, size: int) -> bool:
        with self._lock:
            # A file larger than the whole budget is read alone, once nothing else is held.
            if self.used and self.used + size > self.budget:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


class _Held:
    def __init__(self, memory: UploadMemory) -> None:
        self.memory = memory
        self.size = 0


_HELD: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("upload_memory", default=None)


async def reserve(size: int) -> None:
    """Reserve ``size`` bytes for the request being served before reading them, waiting for room
    up to ``wait_seconds``; ``service.busy`` where none is made. Outside a request served by
    :class:`HoldUploadMemory` (a function called directly) nothing is counted."""
    held = _HELD.get()
    if held is None or held.memory.budget <= 0 or size <= 0:
        return
    deadline = time.monotonic() + held.memory.wait_seconds
    while not held.memory.try_take(size):
        if time.monotonic() >= deadline:
            raise RefundlensError(
                "service.busy",
                "Other uploads are being read; send this one again shortly.",
            )
        await asyncio.sleep(0.05)
    held.size += size


class HoldUploadMemory:
    """The ASGI middleware that gives back what a request reserved once it has been answered."""

    def __init__(self, app: ASGIApp, *, memory: UploadMemory) -> None:
        self.app = app
        self.memory = memory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held = _Held(self.memory)
        token = _HELD.set(held)
        try:
            await self.app(scope, receive, send)
        finally:
            _HELD.reset(token)
            if held.size:
                self.memory.give(held.size)
