"""The soak test's own arithmetic and checks (bench/soak.py), without starting anything."""

from __future__ import annotations

import itertools
import math
from collections import Counter

from bench.soak import (
    ClaimRow,
    check_claims,
    check_webhooks,
    percentile,
    phase_latencies,
    phase_of,
    timeline,
)


def test_the_timeline_puts_each_fault_in_its_own_during_and_after_phase() -> None:
    phases, faults = timeline(300)
    assert [p.label for p in phases] == [
        "before",
        "worker SIGKILL: during",
        "worker SIGKILL: after",
        "Redis restart: during",
        "Redis restart: after",
        "PostgreSQL down: during",
        "PostgreSQL down: after",
        "webhook hangs: during",
        "webhook hangs: after",
    ]
    assert all(a.end == b.start for a, b in itertools.pairwise(phases))
    assert faults["postgres_down_s"] == 20 and phases[-1].end == 300
    assert phase_of(0, phases) == "before"
    assert phase_of(175, phases) == "PostgreSQL down: during"
    assert phase_of(299.9, phases) == "webhook hangs: after"


def test_percentiles_per_phase_match_numpys_linear_interpolation() -> None:
    import numpy as np

    values = [0.5, 3.0, 1.0, 9.0, 2.0, 7.5, 4.0]
    for q in (50, 95, 99):
        assert math.isclose(percentile(values, q), float(np.percentile(values, q)))
    assert math.isnan(percentile([], 50))
    phases, _ = timeline(300)
    rows = phase_latencies([(1.0, 2.0), (2.0, 4.0), (60.0, 30.0)], phases)
    by = {r["phase"]: r for r in rows}
    assert by["before"]["claims"] == 2 and by["before"]["p50"] == 3.0
    assert by["worker SIGKILL: during"]["p99"] == 30.0
    assert by["Redis restart: during"]["claims"] == 0


def test_exactly_once_is_assessed_once_or_handed_to_a_person() -> None:
    accepted = {"k1": "c1", "k2": "c2", "k3": "c3"}
    keyed = dict(accepted)
    rows = [
        ClaimRow("c1", "approved", 1, 1),
        ClaimRow("c2", "awaiting_merchant", 1, 2),
        ClaimRow(
            "c3",
            "under_review",
            0,
            3,
            "the analysis failed 3 times in a row: a person decides without it",
        ),
    ]
    assert check_claims(accepted, rows, keyed) == []


def test_exactly_once_names_lost_twice_assessed_stuck_and_duplicated_claims() -> None:
    accepted = {"k1": "c1", "k2": "c2", "k3": "c3", "k4": "c4", "k5": "c5"}
    rows = [
        ClaimRow("c2", "approved", 2, 2),
        ClaimRow("c3", "analysing", 0, 1),
        ClaimRow("c4", "under_review", 0, 1, "a person decides"),
        ClaimRow("c5", "approved", 1, 1),
        ClaimRow("c6", "approved", 1, 1),
    ]
    problems = check_claims(accepted, rows, dict(accepted) | {"k5": "c6"})
    text = "\n".join(problems)
    assert "lost: claim c1" in text
    assert "assessed 2 times: claim c2" in text
    assert "not assessed: claim c3" in text
    assert "no assessment: claim c4" in text
    assert "key k5: answered c5, recorded c6" in text
    assert "duplicated: 1 claims" in text


def test_webhooks_must_be_delivered_and_received_at_least_once_under_their_id() -> None:
    events = {"e1": "delivered", "e2": "delivered", "e3": "pending"}
    received = Counter({"e1": 2, "e3": 1, "e9": 1})
    problems = "\n".join(check_webhooks(events, received))
    assert "e1" not in problems  # twice is fine: the receiver de-duplicates by id
    assert "webhook e2 was never received" in problems
    assert "webhook e3 is pending" in problems
    assert "unknown event id e9" in problems
