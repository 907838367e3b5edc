"""Finding strengths as likelihood ratios measured on the benchmark.

For a finding code observed in ``k_forged`` of ``n_forged`` forged cases and ``k_genuine`` of
``n_genuine`` genuine ones (dev split only), its strength is the natural log of

    LR = ((k_forged + 0.5) / (n_forged + 1)) / ((k_genuine + 0.5) / (n_genuine + 1))

the Jeffreys-smoothed rate ratio (Krichevsky-Trofimov estimator): a code never seen on a genuine
photo gets a large but finite ratio, bounded by how many genuine photos were measured. Fusion
adds these log ratios to a prior log-odds (naive Bayes); a finding's confidence scales its
contribution. Codes the benchmark cannot measure keep their detector's provisional strength and
are listed as uncalibrated.

References
----------
.. [1] R. Krichevsky and V. Trofimov, "The performance of universal encoding", IEEE Trans.
       Information Theory 27(2), 1981.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from importlib import resources
from typing import Any

import yaml

__all__ = ["calibrated_strengths", "log_likelihood_ratio"]


def log_likelihood_ratio(k_forged: int, n_forged: int, k_genuine: int, n_genuine: int) -> float:
    """ln of the Jeffreys-smoothed ratio of a finding's rate among forged and genuine cases."""
    if (
        n_forged < 0
        or n_genuine < 0
        or not (0 <= k_forged <= n_forged)
        or not (0 <= k_genuine <= n_genuine)
    ):
        raise ValueError("counts must satisfy 0 <= k <= n")
    forged = (k_forged + 0.5) / (n_forged + 1)
    genuine = (k_genuine + 0.5) / (n_genuine + 1)
    return math.log(forged / genuine)


@functools.cache
def _bundled_table() -> dict[str, Any]:
    # Parsed once per process: the YAML parse cost 12 ms of every analysis.
    text = resources.files("refundlens").joinpath("policy/calibration.yaml").read_text("utf-8")
    return yaml.safe_load(text) or {}


def calibrated_strengths(table: Mapping[str, Any] | None = None) -> dict[str, float]:
    """{code: strength} from the bundled ``policy/calibration.yaml`` (or ``table``)."""
    if table is None:
        table = _bundled_table()
    out: dict[str, float] = {}
    for code, row in (table.get("codes") or {}).items():
        out[str(code)] = log_likelihood_ratio(
            int(row["k_forged"]), int(row["n_forged"]), int(row["k_genuine"]), int(row["n_genuine"])
        )
    return out
