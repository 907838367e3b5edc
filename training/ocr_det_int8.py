"""The OCR text detector with 8-bit weights: the PP-OCRv6 small detection net that rapidocr's wheel
ships, its weights quantized to unsigned 8 bits by ONNX Runtime's dynamic quantization (weights
once, activations per call), for the visible-marks detector (detectors/provenance/visible.py).

    pip install -e '.[ocr,train]'
    python -m training.ocr_det_int8            # writes src/refundlens/detectors/provenance/models/

Nothing is trained and nothing is downloaded: the source is the installed wheel's own file, and
``ocr_det_int8.json`` records its sha256 (tests/test_visible_marks.py fails when the installed
wheel ships another net, so that the quantized one is made again and measured again:
bench/results/visible_marks_passes.md). Measured against the original on the visible-marks bench
(both splits, 360 marked cases each, 60 unmarked photos): the same labels read or one more, no
false label; 0.54 of the time on one CPU and 1.43 times on an AVX2 CPU without VNNI, so
``ocr_text_detector: auto`` runs it only where the CPU has VNNI or AMX.

The PaddleOCR models are Apache-2.0 (NOTICE).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

OUT = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "refundlens"
    / "detectors"
    / "provenance"
    / "models"
)
NAME = "PP-OCRv6_det_small.onnx"


def installed_source() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("rapidocr")
    if spec is None or spec.origin is None:
        raise SystemExit("rapidocr is not installed: pip install -e '.[ocr,train]'")
    return Path(spec.origin).parent / "models" / NAME


def main() -> None:
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None, help=f"the wheel's {NAME}")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    source = args.source or installed_source()
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / "ocr_det_int8.onnx"
    quantize_dynamic(source, target, weight_type=QuantType.QUInt8)
    model = onnx.load(target)
    record = {
        "source": NAME,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "weight_type": "QUInt8 (onnxruntime.quantization.quantize_dynamic)",
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "ir_version": model.ir_version,
        "command": "python -m training.ocr_det_int8",
    }
    (args.out / "ocr_det_int8.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
