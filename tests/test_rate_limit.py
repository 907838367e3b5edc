"""Requests per credential (service/rate_limit.py): a key, a web session or a capture link past
its rate is answered 429 with Retry-After before its body is read; other credentials, the
probes and static files go on. Requests with no credential, and credentials refused, are
counted by the client's address."""

from __future__ import annotations

import logging
import secrets
import time
from pathlib import Path

import httpx
import pytest

from refundlens.config import SettingsError, load_settings
from refundlens.service.rate_limit import (
    SESSION_COOKIE,
    MemoryLimiter,
    RateLimiter,
    RedisLimiter,
    address_of,
    credential_of,
)
from refundlens.service.web.common import COOKIE

from .service_support import add_tenants, redis_for_test, running_server


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_then_the_sustained_rate_and_the_wait_is_told() -> None:
    clock = _Clock()
    limiter = MemoryLimiter(per_minute=60, burst=5, clock=clock)
    assert [limiter.admit("k") for _ in range(5)] == [0.0] * 5
    wait = limiter.admit("k")
    assert wait == pytest.approx(1.0)  # one a second, sustained
    assert limiter.admit("other") == 0.0  # another credential has its own place
    clock.now += 1.0
    assert limiter.admit("k") == 0.0
    assert limiter.admit("k") == pytest.approx(1.0)
    clock.now += 60.0  # a quiet minute gives the whole burst back, no more
    assert [limiter.admit("k") for _ in range(6)][-1] > 0
    # A refused request does not count: a client that keeps asking is not locked out longer.
    clock.now += 10.0
    for _ in range(50):
        limiter.admit("k")
    clock.now += 60.0
    assert limiter.admit("k") == 0.0


def test_made_up_credentials_cannot_grow_the_memory_without_bound() -> None:
    limiter = MemoryLimiter(per_minute=60, burst=2, clock=_Clock(), max_keys=100)
    for i in range(1000):
        limiter.admit(f"made-up-{i}")
    assert len(limiter._next) == 100


@pytest.fixture
def shared() -> str:
    return redis_for_test()


def test_processes_sharing_redis_share_one_limit(shared: str) -> None:
    # Two limiters stand for two API processes: together they admit one burst, not two.
    first: RateLimiter = RedisLimiter(shared, per_minute=60, burst=4)
    second: RateLimiter = RedisLimiter(shared, per_minute=60, burst=4)
    admitted = [(first if i % 2 else second).admit("key:abc") == 0.0 for i in range(8)]
    assert admitted == [True] * 4 + [False] * 4
    assert 0 < first.admit("key:abc") <= 1.0
    assert first.admit("key:other") == 0.0


def test_a_redis_that_does_not_answer_lets_requests_through() -> None:
    limiter = RedisLimiter("redis://127.0.0.1:9/0", per_minute=60, burst=1)
    assert [limiter.admit("k") for _ in range(3)] == [0.0, 0.0, 0.0]


def _scope(path: str, headers: dict[str, str]) -> dict[str, object]:
    return {
        "type": "http",
        "path": path,
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }


KEY = "rlk_0123456789abcdef.s3cret-part_x"


def test_the_credential_is_a_digest_of_the_key_the_session_or_the_capture_link() -> None:
    key = credential_of(_scope("/v1/claims", {"authorization": f"Bearer {KEY}"}))
    assert key is not None and key.startswith("key:") and "s3cret" not in key
    session = credential_of(_scope("/web/queue", {"cookie": "a=b; rl_session=s3cret"}))
    assert session is not None and session.startswith("session:") and "s3cret" not in session
    link = credential_of(_scope("/web/capture/tok123/photo/0", {}))
    assert link == credential_of(_scope("/web/capture/tok123", {}))
    assert link is not None and "tok123" not in link
    for free in ("/web/static/claim.js", "/healthz", "/readyz", "/metrics"):
        assert credential_of(_scope(free, {"cookie": "rl_session=s3cret"})) is None
    assert credential_of(_scope("/v1/claims", {})) is None
    assert SESSION_COOKIE == COOKIE


def test_one_credential_presented_differently_is_counted_as_one() -> None:
    """A review: the whole header was hashed, so spaces after "Bearer", a junk Authorization
    header on a page, or a junk first session cookie made a new bucket for each request."""
    key = credential_of(_scope("/v1/claims", {"authorization": f"Bearer {KEY}"}))
    for spaces in range(1, 6):
        header = "Bearer " + " " * spaces + KEY + " " * spaces
        assert credential_of(_scope("/v1/claims", {"authorization": header})) == key
    session = credential_of(_scope("/web/queue", {"cookie": "rl_session=real"}))
    for n in range(5):
        junk = {"authorization": f"x{n}", "cookie": f"rl_session=junk{n}; rl_session=real"}
        assert credential_of(_scope("/web/queue", junk)) == session  # the route takes the last
    # A key the route refuses without a lookup is no credential: not counted, not a bucket.
    assert credential_of(_scope("/v1/claims", {"authorization": "Bearer not-a-key"})) is None
    # The API reads no cookie: a session cookie on an API request is no credential there.
    assert credential_of(_scope("/v1/claims", {"cookie": "rl_session=real"})) is None


def test_a_key_past_its_rate_gets_429_while_other_keys_and_the_probes_go_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refundlens")
    with running_server(tmp_path / "data", requests_per_minute=60, request_burst=3) as server:
        add_tenants(server, "shop")  # the admin key's first requests
        merchant = server.key("merchant", "shop")
        other = server.key("merchant", "shop")
        with server.client(merchant) as client:
            codes = [client.get("/v1/skus").status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            # A write is counted like a read, and refused before its body is read.
            refused = client.post(
                "/v1/skus",
                data={"external_id": "mug"},
                files={"photos": ("mug.jpg", b"\xff\xd8 not read", "image/jpeg")},
            )
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "request.rate_limited"
            assert 1 <= int(refused.headers["Retry-After"]) <= 2
            # The request log names the route the refused request asked for, not "unmatched".
            deadline = time.time() + 5  # logged once the answer is sent
            while time.time() < deadline:
                logged = [
                    r
                    for r in caplog.records
                    if r.getMessage() == "request" and getattr(r, "status", 0) == 429
                ]
                if logged:
                    break
                time.sleep(0.05)
            assert [getattr(r, "route", None) for r in logged] == ["/v1/skus"]
        with server.client(other) as client:
            assert client.get("/v1/skus").status_code == 200
        with server.client(merchant) as client:
            assert client.get("/healthz").status_code == 200
        # Nothing of the refused write was stored.
        with server.client(other) as client:
            assert all(s["external_id"] != "mug" for s in client.get("/v1/skus").json()["items"])
        time.sleep(1.1)
        with server.client(merchant) as client:
            assert client.get("/v1/skus").status_code == 200


def test_a_capture_link_past_its_rate_is_told_in_words_not_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="refundlens")
    with (
        running_server(tmp_path / "data", requests_per_minute=60, request_burst=2) as server,
        server.client() as client,
    ):
        codes = [client.get("/web/capture/no-such-link").status_code for _ in range(3)]
        assert 429 not in codes[:2] and codes[2] == 429
        answer = client.get("/web/capture/no-such-link")
        assert answer.status_code == 429
        assert answer.headers["content-type"].startswith("text/plain")
        assert "请求过于频繁" in answer.text and "Too many requests" in answer.text
        # The page's script asks for JSON, and gets the API's shape, which it shows as busy.
        scripted = client.post("/web/capture/no-such-link", headers={"Accept": "application/json"})
        assert scripted.status_code == 429
        assert scripted.json()["error"]["code"] == "request.rate_limited"
        # Another link is another credential.
        assert client.get("/web/capture/another-link").status_code != 429
        # Logged under the page's template with its prefix, never the link itself.
        time.sleep(0.2)
        routes = {
            getattr(r, "route", None)
            for r in caplog.records
            if r.getMessage() == "request" and getattr(r, "status", 0) == 429
        }
        assert routes == {"/web/capture/{token}"}


def test_a_redis_address_that_is_no_url_is_refused_when_settings_load() -> None:
    # A walkthrough: without the scheme, serve printed that it was serving, then died with a
    # traceback from the Redis client.
    with pytest.raises(SettingsError, match="rate_limit_redis_url"):
        load_settings(env={"REFUNDLENS_RATE_LIMIT_REDIS_URL": "127.0.0.1:6379/5"})
    assert load_settings(env={"REFUNDLENS_RATE_LIMIT_REDIS_URL": "redis://127.0.0.1:6379/5"})


def test_a_burst_below_one_is_refused_while_requests_are_limited() -> None:
    with pytest.raises(SettingsError, match="request_burst"):
        load_settings(env={"REFUNDLENS_REQUEST_BURST": "0"})
    assert (
        load_settings(
            env={"REFUNDLENS_REQUEST_BURST": "0", "REFUNDLENS_REQUESTS_PER_MINUTE": "0"}
        ).requests_per_minute
        == 0
    )


def test_a_place_given_back_is_free_again() -> None:
    clock = _Clock()
    limiter = MemoryLimiter(per_minute=60, burst=2, clock=clock)
    assert [limiter.admit("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.admit("a") > 0
    limiter.give_back("a")
    assert limiter.admit("a") == 0.0 and limiter.admit("a") > 0
    limiter.give_back("never-seen")  # nothing to give back: no error, nothing made up


def test_a_place_given_back_in_redis_is_free_again(shared: str) -> None:
    limiter = RedisLimiter(shared, per_minute=60, burst=2)
    key = "address:test-" + secrets.token_hex(4)
    assert [limiter.admit(key) == 0.0 for _ in range(3)] == [True, True, False]
    limiter.give_back(key)
    assert limiter.admit(key) == 0.0 and limiter.admit(key) > 0


def test_an_address_is_counted_as_one_subscriber_has_it() -> None:
    def of(host: str | None) -> str:
        return address_of({"type": "http", "client": (host, 1) if host else None})

    assert of("203.0.113.7") == "address:203.0.113.7"
    # A subscriber is given up to a /48 and may pick any address in it (a review: by /64, one
    # free /48 was 65,536 buckets).
    assert of("2001:db8:1:2::1") == of("2001:db8:1:ff02:ffff::9") == "address:2001:db8:1::/48"
    assert of("2001:db8:2::1") != of("2001:db8:1::1")
    assert of("::ffff:203.0.113.7") == "address:203.0.113.7"
    assert of(None) == "address:unknown"
    assert of("testclient") == "address:testclient"


def _made_up_key() -> str:
    return f"rlk_{secrets.token_hex(8)}.{secrets.token_urlsafe(12)}"


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The API keys the routes looked up."""
    from refundlens.service import deps

    seen: list[str | None] = []
    authenticate = deps.authenticate

    def counting(session: object, header: str | None) -> object:
        seen.append(header)
        return authenticate(session, header)  # type: ignore[arg-type]

    monkeypatch.setattr(deps, "authenticate", counting)
    return seen


def test_made_up_keys_are_counted_by_address_before_any_lookup_and_accepted_keys_go_on(
    tmp_path: Path, lookups: list[str | None]
) -> None:
    """A review: each request with a new made-up key was a bucket of its own, so a client could
    make the service look keys up without bound."""
    with running_server(
        tmp_path / "data", anonymous_requests_per_minute=60, anonymous_request_burst=3
    ) as server:
        add_tenants(server, "shop")
        merchant = server.key("merchant", "shop")
        # Keys a route accepts give their place back: three new valid keys spend none of it.
        for key in [merchant] + [server.key("merchant", "shop") for _ in range(2)]:
            with server.client(key) as client:
                assert client.get("/v1/skus").status_code == 200
        lookups.clear()
        codes = []
        for _ in range(6):
            with server.client(_made_up_key()) as client:
                codes.append(client.get("/v1/skus").status_code)
        assert codes == [401, 401, 401, 429, 429, 429]
        assert len(lookups) == 3  # the refused ones cost no lookup
        with server.client(_made_up_key()) as client:
            refused = client.get("/v1/skus")
        assert refused.json()["error"]["code"] == "request.rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 2
        # A key a route accepted is not counted by its address.
        with server.client(merchant) as client:
            assert client.get("/v1/skus").status_code == 200
        # Once the address has a place again, a key is looked up again.
        time.sleep(1.1)
        with server.client(_made_up_key()) as client:
            assert client.get("/v1/skus").status_code == 401


def test_a_made_up_key_is_counted_whatever_the_answer_and_requests_at_once_too(
    tmp_path: Path,
) -> None:
    """A review: a made-up key sent to an unknown path (404) was remembered as accepted and then
    looked up without bound; and counted only after the answer, 150 made-up keys sent at once
    all passed a burst of 3."""
    from concurrent.futures import ThreadPoolExecutor

    with running_server(
        tmp_path / "data", anonymous_requests_per_minute=60, anonymous_request_burst=3
    ) as server:
        key = _made_up_key()
        with server.client(key) as client:
            codes = [client.get("/v1/no-such-path").status_code for _ in range(3)]
            assert codes == [404, 404, 404]
            assert client.get("/v1/skus").status_code == 429  # not remembered as accepted
        time.sleep(3.1)  # the burst back

        def one(_: int) -> int:
            with server.client(_made_up_key()) as client:
                return client.get("/v1/skus").status_code

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(one, range(24)))
        assert answers.count(401) <= 4 and answers.count(429) >= 20, answers


def test_requests_without_a_credential_and_made_up_sessions_and_links_count_by_address(
    tmp_path: Path,
) -> None:
    with running_server(
        tmp_path / "data", anonymous_requests_per_minute=60, anonymous_request_burst=4
    ) as server:
        add_tenants(server, "shop")
        merchant = server.key("merchant", "shop")
        with server.client(merchant) as client:
            assert client.get("/v1/skus").status_code == 200
        with httpx.Client(base_url=server.url, follow_redirects=False) as browser:
            # The sign-in page, a call without a key, a made-up session and a made-up link:
            # each takes a place.
            assert browser.get("/web/login").status_code == 200
            assert browser.get("/v1/skus").status_code == 401  # no key: no lookup, counted
            queue = browser.get(
                "/web/queue", headers={"cookie": f"{COOKIE}={secrets.token_urlsafe(32)}"}
            )
            assert queue.status_code == 303  # to the login page: the session is unknown
            assert browser.get(f"/web/capture/{secrets.token_urlsafe(32)}").status_code == 404
            # The address has no place left: a page says so in words, an API call in JSON.
            page = browser.get("/web/login")
            assert page.status_code == 429 and "Too many requests" in page.text
            assert browser.get(f"/web/enter/{secrets.token_urlsafe(32)}").status_code == 429
            assert browser.get("/v1/skus").json()["error"]["code"] == "request.rate_limited"
            # Not counted: the probes and static files.
            assert browser.get("/healthz").status_code == 200
            assert browser.get("/web/static/refundlens.css").status_code != 429
        # A key a route accepted goes on from the same address.
        with server.client(merchant) as client:
            assert client.get("/v1/skus").status_code == 200


def test_an_anonymous_burst_below_one_is_refused_while_requests_are_limited() -> None:
    with pytest.raises(SettingsError, match="anonymous_request_burst"):
        load_settings(env={"REFUNDLENS_ANONYMOUS_REQUEST_BURST": "0"})
    assert (
        load_settings(
            env={
                "REFUNDLENS_ANONYMOUS_REQUEST_BURST": "0",
                "REFUNDLENS_ANONYMOUS_REQUESTS_PER_MINUTE": "0",
            }
        ).anonymous_requests_per_minute
        == 0
    )
