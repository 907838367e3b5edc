"""The API's dependencies (service/deps.py): who may call a route is decided before what it sent.

A key of a role the route refuses (403) or naming a claim it may not see (404) is told so before
its fields are checked (422): it learns nothing of the route's field rules, and a claim it may not
see answers exactly as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .service_support import Server, add_tenants, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("deps")) as server:
        add_tenants(server, "shop-a")
        yield server


def test_a_role_the_route_refuses_is_refused_before_its_fields_are_checked(
    server: Server,
) -> None:
    with server.client(server.key("merchant", "shop-a")) as merchant:
        for method, path, body in (
            ("POST", "/v1/tenants", {"json": {"id": "x"}}),
            ("POST", "/v1/claims", {"data": {"amount": "many"}}),
            ("GET", "/v1/audit/verify", {}),
        ):
            answer = merchant.request(method, path, **body)
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["error"]["code"] == "auth.forbidden"


def test_a_claim_out_of_sight_is_not_found_before_the_body_is_checked(server: Server) -> None:
    with server.client(server.key("buyer", subject="buyer-1")) as buyer:
        for action in ("decision", "appeal", "assign"):
            answer = buyer.post(f"/v1/claims/clm_nope/{action}", json={"reason": 5})
            assert answer.status_code == 404, (action, answer.text)
            assert answer.json()["error"]["code"] == "claim.not_found"
