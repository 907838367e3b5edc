"""`make bench`: every benchmark, bounded to a few minutes on 2 cores."""

from __future__ import annotations

from . import run_provenance, run_reference

if __name__ == "__main__":
    run_provenance.main()
    run_reference.main()
