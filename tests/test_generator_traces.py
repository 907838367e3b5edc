"""The generator-trace net: the shipped ONNX file gives the training run's scores, it marks a patch
that a learned decoder made and not the camera photo around it, and it needs no download."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refundlens.config import Settings
from refundlens.detectors import Context
from refundlens.detectors._pixels_examples import REGENERATED_BOX, regenerated_shop_photo
from refundlens.detectors.pixels import PixelsDetector
from refundlens.forensics.generator_traces import (
    CELL,
    cell_logits,
    generator_traces,
    model_card,
    runtime,
)
from refundlens.media import media_from_bytes

REFERENCE = Path(__file__).parent / "support" / "generator_traces_reference.npz"


def _rgb(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_shipped_onnx_gives_the_logits_the_torch_model_gave_at_the_end_of_training() -> None:
    """train.py stored an input and the PyTorch model's output on it beside the export."""
    stored = np.load(REFERENCE)
    blob = stored["rgb"].astype(np.float32)
    for use_onnxruntime in (True, False):
        out = cell_logits(blob, use_onnxruntime=use_onnxruntime)
        assert out.shape == stored["logits"].shape
        assert float(np.abs(out - stored["logits"]).max()) < 1e-3


def test_onnx_runtime_and_opencv_give_the_same_cells() -> None:
    pytest.importorskip("onnxruntime", reason="the ocr extra (ONNX Runtime) is not installed")
    assert runtime() == "onnxruntime"
    photo = _rgb(regenerated_shop_photo()[0])
    fast = generator_traces(photo)
    plain = generator_traces(photo, use_onnxruntime=False)
    assert float(np.abs(fast.cells - plain.cells).max()) < 1e-4
    assert abs(fast.score - plain.score) < 1e-4


def test_the_net_marks_a_regenerated_patch_and_not_the_camera_photo_around_it() -> None:
    data, mask = regenerated_shop_photo()
    forged = generator_traces(_rgb(data))
    top, left, rows, cols = REGENERATED_BOX
    inside = forged.cells[
        (top + CELL - 1) // CELL : (top + rows) // CELL,
        (left + CELL - 1) // CELL : (left + cols) // CELL,
    ]
    outside = np.ones(forged.cells.shape, bool)
    outside[
        top // CELL : (top + rows + CELL - 1) // CELL,
        left // CELL : (left + cols + CELL - 1) // CELL,
    ] = False
    assert inside.mean() > forged.cells[outside].mean() + 0.2
    from importlib import resources

    genuine = (resources.files("refundlens.samples") / "claim_genuine.jpg").read_bytes()
    untouched = generator_traces(_rgb(genuine))
    assert forged.score > untouched.score
    assert untouched.score < Settings().pixels_generator_threshold <= forged.score
    assert mask.sum() == rows * cols


def test_the_finding_carries_its_heatmap_facts_and_both_languages() -> None:
    data, _ = regenerated_shop_photo()
    media = media_from_bytes(data, "regenerated.png")
    settings = Settings(pixels_generator_enabled=True)
    findings = PixelsDetector().analyze(media, Context(settings=settings))
    found = next(f for f in findings if f.code == "pixels.generator_traces")
    assert found.region is not None and found.region.kind == "heatmap"
    assert found.region.array.shape == media.analysis.shape[:2]
    assert found.facts["generator_score"] >= found.facts["threshold"]
    assert "generator_traces_heatmap" in found.pictures
    assert "generator" in found.reason.en and "生成" in found.reason.zh
    assert "pixels.none_found" not in {f.code for f in findings}


def test_the_net_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError):
        generator_traces(np.zeros((20, 64, 3), np.uint8))
    with pytest.raises(ValueError):
        generator_traces(np.zeros((64, 64), np.uint8))


def test_the_net_is_off_by_default_and_then_costs_nothing() -> None:
    data, _ = regenerated_shop_photo()
    media = media_from_bytes(data, "regenerated.png")
    findings = PixelsDetector().analyze(media, Context())
    assert "pixels.generator_traces" not in {f.code for f in findings}
    assert all("generator_traces_heatmap" not in f.pictures for f in findings)


def test_the_model_card_says_how_it_was_trained() -> None:
    card = model_card()
    assert card["weights"] < 1_500_000
    assert card["seed"] and card["command"].startswith("python training/generator_traces/train.py")
    assert "dev_history" in card


def test_a_fresh_process_runs_the_net_with_the_network_cut_off() -> None:
    """Weights come from the package; nothing is fetched (the socket module refuses)."""
    script = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise RuntimeError('network access')\n"
        "socket.socket = refuse\n"
        "socket.create_connection = refuse\n"
        "import numpy as np\n"
        "from refundlens.forensics.generator_traces import generator_traces\n"
        "rng = np.random.default_rng(0)\n"
        "print(generator_traces(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)).score)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert 0.0 <= float(result.stdout.strip()) <= 1.0
