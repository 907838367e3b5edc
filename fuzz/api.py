"""Schema-driven fuzzing of the claims API over real HTTP (``make fuzz``; schemathesis).

The contract under test (docs/errors.md, docs/service.md): whatever a client sends, the API
answers with a status below 500, and every answer matches the OpenAPI document: its status
code, content type and body (an error is ``{"error": {"code", "message"}}``). The server is the
embedded default (SQLite, in-process tasks) in a temporary data directory, seeded with a
merchant, a SKU, an order and a claim so that the routes are reachable, and every route is
called with each role's key (admin, reviewer, merchant, buyer) and with none. Half the cases of
a route with a path id use the seeded one (the route's real work), half a generated one; a
third carry one hostile value (:data:`HOSTILE`: NUL, lone surrogates, NaN, odd digits, long).

A failing case is written to ``fuzz/crashes/api-*.txt`` as a curl command with the failure;
make it a test in tests/test_service_input.py before fixing it. The run exits 1 if any failed.

Usage: ``python -m fuzz.api --seconds 300 [--database-url postgresql+psycopg://...]`` (needs
``pip install schemathesis``).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROLES = ("admin", "reviewer", "merchant", "buyer", "none")


@dataclass
class Target:
    url: str
    keys: dict[str, str]
    ids: dict[str, str]
    stop: Any = None


@dataclass
class Tally:
    routes: int = 0
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # signature -> report
    reached: set[tuple[str, str]] = field(default_factory=set)  # (route, role) called


def start_server(data_dir: Path, database_url: str = "") -> Target:
    """The embedded default on a free loopback port, seeded; ``stop`` shuts it down."""
    import socket

    import httpx
    import uvicorn

    from refundlens.config import Settings
    from refundlens.service import create_app
    from refundlens.service.auth import create_key
    from refundlens.store import Database

    settings = Settings(data_dir=str(data_dir), database_url=database_url, ocr_enabled=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"

    def key(role: str, **kwargs: Any) -> str:
        database = Database(settings)
        try:
            with database.session() as session:
                return create_key(session, role, **kwargs)
        finally:
            database.dispose()

    keys = {"admin": key("admin")}

    def call(role: str, method: str, path: str, **request: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {keys[role]}"}
        r = httpx.request(method, url + path, headers=headers, timeout=120, **request)
        if r.status_code >= 300:
            raise RuntimeError(f"seeding {method} {path}: {r.status_code} {r.text[:300]}")
        return dict(r.json())

    for tenant in ("shop-a", "shop-b"):
        call(
            "admin", "POST", "/v1/tenants", json={"id": tenant, "kind": "merchant", "name": tenant}
        )
    keys["merchant"] = key("merchant", tenant_id="shop-a")
    keys["buyer"] = key("buyer", subject="buyer-1")
    keys["reviewer"] = key("reviewer", assign=["shop-a"])

    def sample(name: str) -> bytes:
        return resources.files("refundlens").joinpath(f"samples/{name}").read_bytes()

    sku = call(
        "merchant",
        "POST",
        "/v1/skus",
        data={"external_id": "cup-1", "title": "mug"},
        files=[("photos", ("listing.jpg", sample("listing.jpg"), "image/jpeg"))],
    )["id"]
    order = call(
        "merchant",
        "POST",
        "/v1/orders",
        json={"external_id": "o-1", "sku_id": sku, "buyer_id": "buyer-1", "amount": 150.0},
    )["id"]
    claim = call(
        "buyer",
        "POST",
        "/v1/claims",
        data={"order_id": order, "type": "refund_only", "amount": "120", "reason": "broken"},
        files=[("photos", ("claim.jpg", sample("claim_forged.jpg"), "image/jpeg"))],
    )["id"]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=30)

    return Target(url, keys, {"claim_id": claim, "order_id": order, "sku_id": sku}, stop)


# What a schema does not say a client may send, but a client may: put into a third of the
# cases, in one generated query, path or body field. (A lone surrogate only in JSON: nothing
# else can carry it.) The generator alone never makes them (Hypothesis' text() leaves
# surrogates out, JSON numbers are finite), and each broke the API once (issue 18).
HOSTILE = (
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "nan",
    "NaN",
    "inf",
    "-Infinity",
    "1e400",
    "-1",
    "²",
    "٣",
    "𝟘",
    "99999999999999999999999",
    "9223372036854775808",
    "\u202e",
    "%00",
    "../..",
    "x" * 10_000,
    "",
)


def _with_hostile(strategy: Any) -> Any:
    from hypothesis import strategies as st

    def put(drawn: tuple[Any, int | None, str]) -> Any:
        case, pick, value = drawn
        slots = []
        for container, json in (
            (case.query, False),
            (case.path_parameters, False),
            (case.body, case.media_type == "application/json"),
        ):
            if isinstance(container, dict):
                for key, old in container.items():
                    if old is None or isinstance(old, str | int | float):
                        slots.append((container, key, json))
        if pick is not None and slots:
            container, key, json = slots[pick % len(slots)]
            # An empty or dot-segment path id never reaches the route: the client resolves
            # /v1/claims/../.. to / and the answer is another route's (ids cannot start with a
            # dot, so none is stored under one: tests/test_service_input.py).
            in_path = container is case.path_parameters
            if in_path and (not value or value.startswith(".")):
                return case
            if json or not any("\ud800" <= c <= "\udfff" for c in value):
                container[key] = value
        return case

    pick = st.one_of(st.none(), st.none(), st.integers(0, 99))
    return st.tuples(strategy, pick, st.sampled_from(HOSTILE)).map(put)


CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


def fuzz(
    target: Target, seconds: float, crashes: Path, examples: int, only: tuple[str, ...] = CHECKS
) -> Tally:
    import schemathesis
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    checks = [
        check
        for check in (
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        )
        if check.__name__ in only
    ]
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    tally = Tally(routes=len(operations))
    deadline = time.monotonic() + seconds

    def batch(operation: Any, role: str, mode: Any, seeded: bool) -> None:
        """``examples`` cases of one route, as one role; a failure is shrunk and saved."""
        names = {p.name for p in operation.path_parameters}
        key = target.keys.get(role)
        headers = {"Authorization": f"Bearer {key}"} if key else None
        strategy = _with_hostile(
            operation.as_strategy(
                mode,
                path_parameters={k: v for k, v in target.ids.items() if k in names}
                if seeded
                else None,
                headers={"authorization": f"Bearer {key}"} if key else None,
            )
        )
        failed: dict[str, str] = {}

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate, Phase.shrink],
            verbosity=Verbosity.quiet,  # failures are reported below, once each
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            if time.monotonic() > deadline + 60:
                return  # shrinking past the budget: keep what was found
            response = case.call(base_url=target.url, headers=headers, timeout=60)
            tally.cases += 1
            tally.reached.add((operation.label, role))
            tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (AssertionError, BaseExceptionGroup) as exc:
                # The last failure recorded is the smallest: Hypothesis replays it last.
                failed["report"] = (
                    f"# {operation.label} as {role} ({mode.value}, "
                    f"{'seeded' if seeded else 'generated'} ids): {response.status_code}\n"
                    f"{case.as_curl_command(headers=headers, base_url=target.url)}\n\n{exc}\n"
                    f"\nResponse: {response.text[:2000]}\n"
                )
                raise

        try:
            run()
        except Unsatisfiable:
            return  # nothing to vary (a negative case of a route without parameters)
        except (Exception, BaseExceptionGroup) as exc:  # the minimal failure (or a group)
            report = failed.get("report") or f"# {operation.label} as {role}: {exc!r}\n"
            found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
            titles = sorted({getattr(f, "title", None) or type(f).__name__ for f in found})
            signature = f"{operation.label}: {', '.join(titles)}"
            if signature not in tally.failures:
                tally.failures[signature] = report
                digest = hashlib.sha256(signature.encode()).hexdigest()[:12]
                crashes.mkdir(exist_ok=True)
                (crashes / f"api-{digest}.txt").write_text(report, encoding="utf-8")
                print(f"FAILED as {role}: {signature}", flush=True)

    # Every (route, role, mode, seeded ids or not) in turn, a batch of cases each, until the
    # time is spent: each role reaches each route even in a short run.
    rounds = itertools.product(operations, ROLES, modes, (True, False))
    for operation, role, mode, seeded in itertools.cycle(list(rounds)):
        if time.monotonic() > deadline:
            break
        if seeded or operation.path_parameters:
            batch(operation, role, mode, seeded)
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--examples", type=int, default=25, help="cases per batch")
    parser.add_argument(
        "--database-url",
        default="",
        help="an empty database to run on instead of SQLite (e.g. a PostgreSQL one)",
    )
    parser.add_argument(
        "--checks",
        default=",".join(CHECKS),
        help="comma-separated subset of the checks (all by default), e.g. not_a_server_error",
    )
    args = parser.parse_args()
    # Quiet: OpenCV on each generated "video", python-multipart on each broken header.
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="refundlens-fuzz-api-") as data_dir:
        target = start_server(Path(data_dir), args.database_url)
        started = time.monotonic()
        try:
            only = tuple(args.checks.split(","))
            tally = fuzz(target, args.seconds, HERE / "crashes", args.examples, only)
        finally:
            target.stop()
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(tally.statuses.items()))
    print(
        f"fuzz.api: {tally.cases} requests in {time.monotonic() - started:.0f} s "
        f"({statuses}); {len(tally.reached)} of {tally.routes * len(ROLES)} route x role "
        f"pairs called; {len(tally.failures)} distinct failures",
        flush=True,
    )
    for report in tally.failures.values():
        print(report.splitlines()[0])
    sys.exit(1 if tally.failures else 0)


if __name__ == "__main__":
    main()
