"""The dwtDct mark embedder, shared with the detectors' examples."""

from refundlens.detectors.provenance._watermark_examples import embed

__all__ = ["embed"]
