"""The offline C2PA signer, shared with the detectors' examples."""

from refundlens.detectors.provenance._c2pa_examples import (
    IPTC,
    sign_jpeg,
    sign_jpeg_remote,
    signing_chain,
)

__all__ = ["IPTC", "sign_jpeg", "sign_jpeg_remote", "signing_chain"]
