"""`make bench`: every benchmark (about 35 minutes on 2 cores, bench/README.md), then calibration."""

from __future__ import annotations

from . import (
    calibrate,
    run_capture,
    run_capture_replay,
    run_capture_rule,
    run_capture_same_item,
    run_features,
    run_forensics,
    run_provenance,
    run_reference,
    run_reference_real,
    run_reuse,
    run_service,
    run_web,
)

if __name__ == "__main__":
    run_provenance.main()
    run_reference.main()
    run_reference_real.main()
    run_capture_rule.main()
    run_capture_replay.main()
    run_forensics.main()
    calibrate.main()
    run_features.main()
    run_service.main()
    run_reuse.main()
    run_web.main()
    run_capture.main()
    run_capture_same_item.main()
