from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_REPORT = """
import json, sys
import cv2, numpy, scipy.linalg
from threadpoolctl import threadpool_info
{setup}
pools = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
print(json.dumps({{"cv2": cv2.getNumThreads(), "pools": pools,
                  "omp": __import__("os").environ.get("OMP_NUM_THREADS")}}))
"""


def _pools_in_fresh_process(setup: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", _REPORT.format(setup=setup)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_worker_process_runs_every_native_thread_pool_on_one_thread() -> None:
    report = _pools_in_fresh_process(
        "from refundlens.threads import one_thread_per_process; one_thread_per_process()"
    )
    assert report["cv2"] == 1
    assert report["pools"], "NumPy's and SciPy's BLAS should be listed"
    assert all(threads == 1 for _api, threads in report["pools"]), report["pools"]
    assert report["omp"] == "1"  # libraries loaded later (FAISS) read it


def test_celery_worker_processes_limit_their_thread_pools_when_they_start() -> None:
    report = _pools_in_fresh_process(
        "from refundlens.workers.celery_app import _one_thread_per_analysis\n"
        "_one_thread_per_analysis()"
    )
    assert report["cv2"] == 1
    assert all(threads == 1 for _api, threads in report["pools"]), report["pools"]


def test_without_the_limit_the_libraries_start_their_own_pools() -> None:
    """The checks above mean something only where a pool would otherwise be larger."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the libraries start one thread anyway")
    report = _pools_in_fresh_process("")
    assert report["cv2"] > 1 or any(threads > 1 for _api, threads in report["pools"])
