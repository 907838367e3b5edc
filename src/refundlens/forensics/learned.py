"""A small learned map: where a patch was painted, inpainted or re-grained.

The training-free maps of this package look for a region whose statistics differ from the rest of
the photo. This one was taught what a generated or smoothed patch looks like: a 113k-weight
fully convolutional net (``training/pixels_net/train.py``) gives one probability per 8x8 cell,
judging each cell against the mean features of the whole image. It was trained on forgeries made
from the MIT-licensed photos of the Grocery Store Dataset [1]_ and from the 23 camera JPEGs of
the forensics benchmark's dev split; the test split stays unseen. Held out during training it
found inpainted, smoothed-and-regrained and diffusion-like patches (image AUC 0.75 to 0.95) and
not splices or copy-moves (AUC 0.44 and 0.47): a piece of another photo has camera texture, and
copy-move is the business of :mod:`.copy_move`. On camera photos it also marks smooth, honest
surfaces, so the product judges its map by the region it outlines against the rest of the photo,
with a threshold set on the benchmark's dev split (bench/results/forensics.md).

The convolutional body runs from the ONNX file in the wheel, the head in NumPy; nothing is
downloaded and PyTorch is not needed. Where ONNX Runtime is installed (the ``ocr`` extra brings
it) it runs the body on one thread, 4x faster than OpenCV's dnn module on a 1 MP photo (30 ms
against 125 ms, features equal within 2e-5); OpenCV runs it otherwise. ``models/residual_net.json``
says how the weights were made.

References
----------
.. [1] M. Klasson, C. Zhang, H. Kjellström, "A hierarchical grocery store image dataset with
       visual and semantic labels", IEEE Winter Conference on Applications of Computer Vision
       (WACV), 2019. https://github.com/marcusklasson/GroceryStoreDataset (MIT).
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["CELL", "model_card", "painted_patch_map", "runtime"]

CELL = 8
# The training script's input scaling: (x - MEAN) / SCALE.
_MEAN, _SCALE = 127.5, 64.0
_MODEL = "residual_net.onnx"
_HEAD = "residual_net_head.npz"


@functools.cache
def _net() -> Any:
    data = (resources.files("refundlens.forensics") / "models" / _MODEL).read_bytes()
    return cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))


@functools.cache
def _session() -> Any:
    """An ONNX Runtime session on one thread (a process per core runs the analyses), or None
    where ONNX Runtime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    data = (resources.files("refundlens.forensics") / "models" / _MODEL).read_bytes()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def runtime() -> str:
    """Which library runs the net's body here: ``"onnxruntime"`` or ``"opencv"``."""
    return "onnxruntime" if _session() is not None else "opencv"


def _body(
    blob: npt.NDArray[np.float32], *, use_onnxruntime: bool = True
) -> npt.NDArray[np.float32]:
    """The body's 64 features per cell, (64, rows // 8, cols // 8), for an NCHW ``blob``."""
    session = _session() if use_onnxruntime else None
    if session is not None:
        out = session.run(None, {session.get_inputs()[0].name: blob})[0]
        return np.asarray(out[0], dtype=np.float32)
    net = _net()
    net.setInput(blob)
    return np.asarray(net.forward()[0], dtype=np.float32)


@functools.cache
def _head() -> dict[str, npt.NDArray[np.float32]]:
    with (resources.files("refundlens.forensics") / "models" / _HEAD).open("rb") as f:
        stored = np.load(f)
        return {k: (v[..., 0, 0] if v.ndim == 4 else v) for k, v in stored.items()}


@functools.cache
def model_card() -> dict[str, Any]:
    """What the shipped net was trained on, how long, and its held-out figures."""
    text = (resources.files("refundlens.forensics") / "models" / "residual_net.json").read_text()
    card: dict[str, Any] = json.loads(text)
    return card


def painted_patch_map(
    rgb: npt.ArrayLike, *, use_onnxruntime: bool = True
) -> npt.NDArray[np.float32]:
    """Probability in [0, 1] that each 8x8 cell of ``rgb`` was painted, inpainted or re-grained.

    ``rgb`` is RGB uint8 of at least 8x8 pixels; the result has ``rows // 8`` by ``cols // 8``
    cells (the last partial cell row and column are dropped). The net sees pixels, so the caller
    chooses the resolution; the product passes the analysis copy of at most
    ``pixels_side`` pixels, the resolution the net was trained at. ``use_onnxruntime=False``
    runs the body with OpenCV even where ONNX Runtime is installed (the two are compared in the
    tests).
    """
    image = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < CELL:
        raise ValueError("painted_patch_map needs an RGB image of at least 8x8 pixels")
    rows, cols = image.shape[0] // CELL * CELL, image.shape[1] // CELL * CELL
    blob = cv2.dnn.blobFromImage(image[:rows, :cols], 1.0 / _SCALE, mean=(_MEAN, _MEAN, _MEAN))
    features = _body(blob, use_onnxruntime=use_onnxruntime)
    channels, cell_rows, cell_cols = features.shape
    flat = features.reshape(channels, -1)
    w = _head()
    # Each cell is weighed against the mean of the whole image: context a 320-pixel crop taught.
    hidden = w["local_weight"] @ flat + w["local_bias"][:, None]
    hidden += (w["context_weight"] @ flat.mean(axis=1))[:, None]
    logits = (w["out_weight"] @ np.maximum(hidden, 0.0) + w["out_bias"][:, None]).reshape(
        cell_rows, cell_cols
    )
    return (1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))).astype(np.float32)
