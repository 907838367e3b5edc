"""One analysis per core: the native libraries' own thread pools kept to one thread.

Workers, ``check --batch`` and the benchmarks run one analysis per process and one process per
core. OpenCV, and the OpenBLAS copies that NumPy and SciPy each ship, would otherwise start a
thread per core in every process, and OpenBLAS threads spin while they wait for work: two
worker processes on two cores then fight over four busy threads. Measured on the 2-core machine
(bench/results/forensics.md, "Threads"): pixel forensics of one 1 MP photo in two processes at
once took 0.92 s per photo with the libraries' default pools and 0.43 s with one thread each;
the contention is erratic, and runs of the same probe outside the bench measured 3.1 s against
0.44 s.
"""

from __future__ import annotations

import os

__all__ = ["one_thread_per_process"]

_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_thread_per_process() -> None:
    """Limit OpenCV, BLAS and OpenMP to one thread in this process.

    Pools already loaded are limited now (threadpoolctl); the environment variables set here
    limit the libraries loaded later (FAISS's OpenMP on the first reuse search) and any child
    process. Call it once at the start of a process that runs one analysis at a time.
    """
    for name in _ENV:
        os.environ[name] = "1"
    import cv2
    import numpy  # noqa: F401  (its OpenBLAS must be loaded to be limited)
    import scipy.linalg  # noqa: F401  (SciPy ships a second OpenBLAS)
    from threadpoolctl import threadpool_limits

    cv2.setNumThreads(1)
    threadpool_limits(limits=1)
