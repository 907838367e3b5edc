"""Requests per credential: an API key, a web session or a capture link may make
``requests_per_minute`` requests a minute, sustained, and ``request_burst`` at once; another is
answered 429 ``request.rate_limited`` with ``Retry-After``, before its body is read.

The rule is the generic cell rate algorithm (GCRA) [1]_, a token bucket kept as one number per
credential: the theoretical arrival time of its next request. Kept in the process
(:class:`MemoryLimiter`) or, where several API processes serve one platform, in Redis
(:class:`RedisLimiter`, ``rate_limit_redis_url``) so that a key's limit holds across them. A
Redis that does not answer lets requests through (logged, and left alone for ten seconds): the
limit protects the service's capacity, and an outage of the counter must not become an outage
of the service.

A request is counted by the credential it presents, read as the route that checks it reads it
(:func:`credential_of`), before anyone checks it: a key that does not exist is limited too.

A client could still make up a new credential for each request, or send none (the sign-in
page, a sign-in link, unknown paths). Every request whose credential this process has not seen a
route accept is also counted by the client's address (:func:`address_of`), at
``anonymous_requests_per_minute``, before anything is looked up; where the route then accepts the
credential (:func:`accept_credential`) the place is given back and the credential remembered,
so that the people who share an address (an office, a carrier's NAT) spend none of it. What is
spent is made-up or refused credentials, and requests without one.

References
----------
.. [1] ATM Forum, "Traffic Management Specification Version 4.0", af-tm-0056.000, 1996,
   section 4.4.2 (the virtual scheduling algorithm).
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from ..metrics import metrics
from .route_names import matching_route

__all__ = [
    "MemoryLimiter",
    "RateLimit",
    "RateLimiter",
    "RedisLimiter",
    "accept_credential",
    "address_of",
    "credential_of",
]

log = logging.getLogger(__name__)

Clock = Callable[[], float]


class RateLimiter(Protocol):
    blocking: bool
    """Whether :meth:`admit` waits on the network (it then runs off the event loop)."""

    def admit(self, key: str) -> float:
        """0 where the request identified by ``key`` may go on, else the seconds until it may."""
        ...

    def give_back(self, key: str) -> None:
        """Return the place one admitted request of ``key`` took."""
        ...


class MemoryLimiter:
    """GCRA in this process: ``per_minute`` requests a minute sustained, ``burst`` at once.

    ``max_keys`` bounds the memory a client making up credentials can take: the credential seen
    longest ago is forgotten first (a forgotten credential starts again with a full burst)."""

    blocking = False

    def __init__(
        self,
        per_minute: int,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        self.interval = 60.0 / per_minute
        self.tolerance = self.interval * max(0, burst - 1)
        self.clock = clock
        self.max_keys = max_keys
        self._next: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def give_back(self, key: str) -> None:
        now = self.clock()
        with self._lock:
            if key in self._next:
                self._next[key] = max(now, self._next[key] - self.interval)

    def admit(self, key: str) -> float:
        now = self.clock()
        with self._lock:
            arrival = max(self._next.get(key, now), now)
            wait = arrival - self.tolerance - now
            if wait > 0:
                return wait
            self._next[key] = arrival + self.interval
            self._next.move_to_end(key)
            while len(self._next) > self.max_keys:
                self._next.popitem(last=False)
            return 0.0


# KEYS[1]: the credential's counter; ARGV: now (s), interval (s), tolerance (s). Returns the wait
# in milliseconds (0: admitted). One script, so that concurrent processes never both take the last
# place in the burst.
_GCRA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local arrival = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if arrival < now then arrival = now end
local wait = arrival - tolerance - now
if wait > 0 then return math.ceil(wait * 1000) end
local following = arrival + interval
redis.call('SET', KEYS[1], tostring(following), 'PX', math.ceil((following - now) * 1000) + 1000)
return 0
"""


# KEYS[1]: the counter; ARGV: now (s), interval (s). One request's place given back.
_GIVE_BACK = """
local now = tonumber(ARGV[1])
local arrival = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
local back = arrival - tonumber(ARGV[2])
if back <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], tostring(back), 'PX', math.ceil((back - now) * 1000) + 1000)
end
return 0
"""


_REDIS_PAUSE_SECONDS = 10.0
"""How long requests go uncounted after Redis failed to answer, before it is asked again."""


class RedisLimiter:
    """GCRA in Redis, shared by every process that names the same server: the same rule as
    :class:`MemoryLimiter`. Time is the Redis server's, so that processes whose clocks differ
    count alike."""

    blocking = True

    def __init__(
        self, url: str, per_minute: int, burst: int, *, prefix: str = "refundlens:rate:"
    ) -> None:
        import redis

        self.interval = 60.0 / per_minute
        self.tolerance = self.interval * max(0, burst - 1)
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.script = self.client.register_script(_GCRA)
        self.give_back_script = self.client.register_script(_GIVE_BACK)
        self._warned = 0.0
        self._paused_until = 0.0
        where = self.client.connection_pool.connection_kwargs
        self.where = f"{where.get('host', where.get('path', '?'))}:{where.get('port', '')}/{where.get('db', 0)}"
        """The server and database, never the URL's password: for the log."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            # Said at start-up: a mistyped address would otherwise turn the shared limit off
            # with one warning at the first request.
            log.warning(
                "rate limit: Redis at %s does not answer (%s): requests are let through "
                "uncounted until it does",
                self.where,
                exc,
            )

    def give_back(self, key: str) -> None:
        import redis

        if time.monotonic() < self._paused_until:
            return
        try:
            seconds, micros = self.client.time()
            now = float(seconds) + float(micros) / 1e6
            self.give_back_script(keys=[self.prefix + key], args=[now, self.interval])
        except redis.RedisError:
            self._paused_until = time.monotonic() + _REDIS_PAUSE_SECONDS

    def admit(self, key: str) -> float:
        import redis

        # After a failure Redis is left alone for a while: a server that hangs would otherwise
        # add its timeout to every request and hold a thread of the pool each time.
        if time.monotonic() < self._paused_until:
            return 0.0
        try:
            seconds, micros = self.client.time()
            now = float(seconds) + float(micros) / 1e6
            waited = int(
                self.script(keys=[self.prefix + key], args=[now, self.interval, self.tolerance])
            )
        except redis.RedisError as exc:
            self._paused_until = time.monotonic() + _REDIS_PAUSE_SECONDS
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("rate limit: Redis does not answer, requests are let through: %s", exc)
            return 0.0
        return waited / 1000.0


# Paths whose requests are not counted: the browser fetches a page's scripts and styles with the
# page's cookie, and the probes and the scraper must never be turned away.
_NOT_COUNTED = ("/web/static/", "/healthz", "/readyz", "/metrics")
SESSION_COOKIE = "rl_session"
"""The web session's cookie (``web.common.COOKIE``; a test holds them equal)."""
_API_KEY = re.compile(r"rlk_[0-9a-f]{1,36}\.[A-Za-z0-9_-]{1,100}")
"""An API key as ``auth.authenticate`` reads it (its ``_TOKEN``): anything else is refused there
without a lookup, and is not counted here."""


def counted(scope: Scope) -> bool:
    """Whether the request counts against any limit (static files and the probes do not)."""
    return not str(scope.get("path", "")).startswith(_NOT_COUNTED)


def address_of(scope: Scope) -> str:
    """The client's address as the limit counts it: an IPv4 address, or an IPv6 address's /48
    (a subscriber is given a /64 to a /48, inside which a client may pick any address: a review
    counted 65,536 buckets in one free /48 when it was the /64).

    The address is the server's (``scope["client"]``): behind a reverse proxy uvicorn takes it
    from ``X-Forwarded-For`` where the proxy is named in ``FORWARDED_ALLOW_IPS``, else every
    client has the proxy's address (docs/operations.md, Rate limits)."""
    client = scope.get("client")
    host = str(client[0]) if client else ""
    try:
        found = ipaddress.ip_address(host)
    except ValueError:
        return "address:" + (host[:64] or "unknown")
    if isinstance(found, ipaddress.IPv6Address):
        if found.ipv4_mapped is not None:
            return "address:" + str(found.ipv4_mapped)
        return "address:" + str(ipaddress.IPv6Network((found, 48), strict=False))
    return "address:" + str(found)


_ACCEPTED = "credential_accepted"


def accept_credential(request: Request, kind: str) -> None:
    """Say that a route checked the request's credential and found it good: ``kind`` is the one
    it checked (``key``, ``session`` or ``capture``), so that a route that checks another (the
    sign-in page reads a key from its form) vouches for nothing :func:`credential_of` read."""
    request.state.credential_accepted = kind


def credential_of(scope: Scope) -> str | None:
    """The credential a request presents, read as the route that checks it reads it, as a digest
    (never the secret itself): the capture link in a capture page's path, the web session cookie
    on other pages (the last ``rl_session``, as Starlette's cookie parser takes it), the API key
    elsewhere (the key itself, whatever spaces surround it); None for a request that presents
    none the route would read. Each presentation of one credential is counted as one."""
    path: str = scope.get("path", "")
    if not counted(scope):
        return None
    headers = Headers(scope=scope)
    if path.startswith("/web/capture/"):
        return "capture:" + _digest(path.split("/")[3])
    if path.startswith("/web/"):
        session = cookie_parser(headers.get("cookie", "")).get(SESSION_COOKIE)
        return "session:" + _digest(session) if session else None
    header = headers.get("authorization", "")
    if not header.startswith("Bearer "):
        return None
    key = _API_KEY.fullmatch(header[len("Bearer ") :].strip())
    return "key:" + _digest(key[0]) if key else None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


class RateLimit:
    """The ASGI middleware: counts each request by its credential (:func:`credential_of`), and by
    its address (:func:`address_of`) unless its credential was seen accepted, and answers 429
    with ``Retry-After`` when either has no place left. Either limiter may be None (that limit
    is off)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter | None,
        anonymous: RateLimiter | None = None,
        remembered: int = 100_000,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.anonymous = anonymous
        self.accepted: OrderedDict[str, None] = OrderedDict()
        """Credentials a route of this process accepted, most recent last (at most
        ``remembered``): not counted by their address."""
        self.remembered = remembered

    async def _call(self, limiter: RateLimiter, method: str, key: str) -> float:
        run = getattr(limiter, method)
        found = await run_in_threadpool(run, key) if limiter.blocking else run(key)
        return float(found or 0.0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not counted(scope):
            await self.app(scope, receive, send)
            return
        credential = credential_of(scope)
        wait = 0.0
        if credential is not None and self.limiter is not None:
            wait = await self._call(self.limiter, "admit", credential)
        address = None
        if wait <= 0 and self.anonymous is not None and credential not in self.accepted:
            # Counted before anything is looked up, and given back below if a route accepts
            # the credential: counted after the answer, requests sent at once all passed.
            address = address_of(scope)
            wait = await self._call(self.anonymous, "admit", address)
        if wait > 0:
            await _refuse(scope, send, wait)
            return
        if credential is None or address is None:
            await self.app(scope, receive, send)
            return
        # A dict of the scope's own: a route's request.state writes into it, whatever scope
        # copies the layers below make.
        state = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            kind = state.get(_ACCEPTED)
            if kind is not None and credential.startswith(f"{kind}:"):
                self.accepted[credential] = None
                self.accepted.move_to_end(credential)
                while len(self.accepted) > self.remembered:
                    self.accepted.popitem(last=False)
                assert self.anonymous is not None
                await self._call(self.anonymous, "give_back", address)


async def _refuse(scope: Scope, send: Send, wait: float) -> None:
    metrics().errors.labels("request.rate_limited").inc()
    _name_the_route(scope)
    retry = max(1, math.ceil(wait))
    accept = Headers(scope=scope).get("accept", "")
    if scope.get("path", "").startswith("/web/") and not accept.startswith("application/json"):
        # A person at a page (a buyer on a phone, a reviewer): words, in both languages.
        kind = b"text/plain; charset=utf-8"
        body = (
            f"请求过于频繁，请 {retry} 秒后再试。\nToo many requests: try again in {retry} s.\n"
        ).encode()
    else:
        kind = b"application/json"
        body = json.dumps(
            {
                "error": {
                    "code": "request.rate_limited",
                    "message": f"Too many requests from this credential or address; send it "
                    f"again in {retry} s (requests_per_minute, anonymous_requests_per_minute).",
                }
            }
        ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _name_the_route(scope: Scope) -> None:
    """Set the route a refused request asked for, as the router would have, so that the request
    log and the latency histogram name its template (which script is throttled on what), not
    "unmatched"; where no route matches, ``rate_limited``. Only for refusals: an admitted
    request is matched by the router itself."""
    found = matching_route(scope)
    scope["route"] = found if found is not None else _Unrouted("rate_limited")


@dataclasses.dataclass(frozen=True)
class _Unrouted:
    path: str
