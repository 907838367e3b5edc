"""Uploaded bytes held in memory at once (service/upload_memory.py): a request that finds no
room waits, then is answered busy with nothing read; room is given back once a request is
answered; a file larger than the whole budget is read alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from refundlens.errors import RefundlensError
from refundlens.service.upload_memory import HoldUploadMemory, UploadMemory, reserve

from .service_support import add_tenants, file_claim, listed_sku, order_for, running_server


def _serve(  # type: ignore[no-untyped-def]
    memory: UploadMemory,
    size: int,
    hold: float,
    outcomes: list[str],
    *,
    files: int = 1,
    body: int = 0,
):
    """One request of ``body`` bytes through the middleware, whose route reads ``files`` files
    of ``size`` bytes each (reserving before each), then works for ``hold`` seconds."""

    async def route(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await receive()  # the form is parsed before the route runs
        for _ in range(files):
            try:
                await reserve(size)
            except RefundlensError as exc:
                outcomes.append(exc.code)
                return
            outcomes.append(f"read {size}")
        if files > 1:
            outcomes.append(f"holding {memory.used}")
        await asyncio.sleep(hold)

    async def arrive():  # type: ignore[no-untyped-def]
        return {"type": "http.request", "body": b"x" * body}

    async def ignore(_message) -> None:  # type: ignore[no-untyped-def]
        return None

    return HoldUploadMemory(route, memory=memory)({"type": "http"}, arrive, ignore)


def test_a_request_without_room_waits_then_is_busy_and_room_comes_back() -> None:
    memory = UploadMemory(budget=100, wait_seconds=0.2)
    outcomes: list[str] = []

    async def scenario() -> None:
        first = asyncio.create_task(_serve(memory, 60, 0.5, outcomes))
        await asyncio.sleep(0.05)
        await _serve(memory, 60, 0.0, outcomes)  # no room for 60 more within 0.2 s
        assert memory.used == 60
        await first
        assert memory.used == 0  # given back once answered
        await _serve(memory, 60, 0.0, outcomes)
        # One that waits less than the wait is served once the room is given back.
        first = asyncio.create_task(_serve(memory, 60, 0.1, outcomes))
        await asyncio.sleep(0.02)
        await _serve(memory, 60, 0.0, outcomes)
        await first

    asyncio.run(scenario())
    assert outcomes == ["read 60", "service.busy", "read 60", "read 60", "read 60"]
    assert memory.used == 0


def test_a_file_larger_than_the_whole_budget_is_read_alone() -> None:
    memory = UploadMemory(budget=100, wait_seconds=0.2)
    outcomes: list[str] = []

    async def scenario() -> None:
        await _serve(memory, 500, 0.0, outcomes)
        first = asyncio.create_task(_serve(memory, 10, 0.5, outcomes))
        await asyncio.sleep(0.05)
        await _serve(memory, 500, 0.0, outcomes)  # not while anything else is held
        await first

    asyncio.run(scenario())
    assert outcomes == ["read 500", "read 10", "service.busy"]


def test_a_request_reserves_once_for_all_its_files_and_never_more_than_the_budget() -> None:
    # Files of 60 and 60 under a budget of 100: reserved one by one, the request's own first
    # file left no room for its second, on an idle server, every time (a review).
    memory = UploadMemory(budget=100, wait_seconds=0.2)
    outcomes: list[str] = []
    asyncio.run(_serve(memory, 60, 0.0, outcomes, files=2, body=120))
    assert outcomes == ["read 60", "read 60", "holding 100"]
    assert memory.used == 0


def test_requests_are_served_in_the_order_they_asked() -> None:
    # A large request waiting for room is not passed by small ones that would fit meanwhile.
    memory = UploadMemory(budget=100, wait_seconds=2.0)
    outcomes: list[str] = []

    async def scenario() -> None:
        first = asyncio.create_task(_serve(memory, 60, 0.3, outcomes))
        await asyncio.sleep(0.05)
        large = asyncio.create_task(_serve(memory, 100, 0.1, outcomes))
        await asyncio.sleep(0.05)
        small = asyncio.create_task(_serve(memory, 10, 0.0, outcomes))
        await asyncio.gather(first, large, small)

    asyncio.run(scenario())
    assert outcomes == ["read 60", "read 100", "read 10"]
    assert memory.used == 0


def test_outside_a_request_or_with_no_budget_nothing_is_counted() -> None:
    asyncio.run(reserve(10**12))  # no request: a function called directly
    memory = UploadMemory(budget=0, wait_seconds=0.0)
    outcomes: list[str] = []
    asyncio.run(_serve(memory, 10**12, 0.0, outcomes))
    assert outcomes == [f"read {10**12}"] and memory.used == 0


def test_claims_larger_than_the_budget_are_taken_one_after_another(tmp_path: Path) -> None:
    # Each claim's photo is larger than the whole budget: each is read alone, and the room it
    # took is given back when it is answered, or the second would be refused busy.
    with running_server(
        tmp_path / "data", upload_memory_bytes=1, upload_slot_wait_seconds=0.5
    ) as server:
        add_tenants(server, "shop")
        merchant = server.key("merchant", "shop")
        buyer = server.key("buyer", subject="b1")
        sku = listed_sku(server, merchant)
        for n in range(2):
            order = order_for(server, merchant, sku, "b1", f"o-{n}")
            assert file_claim(server, buyer, order)["state"] in ("submitted", "analysing")


def test_a_form_of_too_many_parts_is_refused_before_any_route_reads_it(tmp_path: Path) -> None:
    # Text fields are never spooled to disk: Starlette's defaults let a form keep 1000 of 1 MB
    # in memory before any route could reserve them (a review).
    with running_server(tmp_path / "data") as server:
        add_tenants(server, "shop")
        merchant = server.key("merchant", "shop")
        photo = [("photos", ("a.jpg", b"x", "image/jpeg"))]
        with server.client(merchant) as client:
            fields = {"external_id": "mug"} | {f"f{i}": "x" for i in range(40)}
            many_fields = client.post("/v1/skus", data=fields, files=photo)
            big_field = client.post(
                "/v1/skus", data={"external_id": "mug", "title": "x" * 70_000}, files=photo
            )
            files = [("photos", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(40)]
            many_files = client.post("/v1/skus", data={"external_id": "mug"}, files=files)
            for answer in (many_fields, big_field, many_files):
                assert answer.status_code == 400, answer.text
                assert answer.json()["error"]["code"] == "request.malformed"
            assert client.get("/v1/skus").json()["items"] == []
