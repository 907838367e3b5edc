"""Shared fixtures: small images generated on the fly; nothing is downloaded."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refundlens.detectors._examples import _product


def encode(rgb: np.ndarray, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def product() -> np.ndarray:
    return _product(11)


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``refundlens *args`` in a new process; ``env`` adds to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "refundlens", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, **env} if env else None,
    )
