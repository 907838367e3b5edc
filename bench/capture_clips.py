"""A live capture's clip as the capture page records one, for the capture bench.

The page asks the phone's camera for a 1920 px wide stream and records it with MediaRecorder as
VP8 at 2.5 Mbit/s (src/refundlens/service/static/capture.js). :func:`recorded_clip` makes such a
clip of a still photo: the photo enlarged to a 1920 x 1080 frame's pixels (long side at most
1920 px), a hand's shake (a random walk
of the framing) and motion blur on every frame, encoded by libvpx in real-time mode at the page's
bitrate and frame rate (PyAV; OpenCV's video writer sets no bitrate), at a fixed speed so that a
rerun gives the same clip (a browser's encoder adapts its speed to the time each frame takes: two
encodes of one input decoded differently, 4 clips from 4 runs, before the speed was fixed). :func:`clip_frames` then
reads it as the service does: the replay check's frames (``capture_clip``), the sharpest of them
(``sharpest_frames``), so the bench judges the frames the analysis would compare.

The blur and shake are assumptions, not measurements of phones: blur up to ``BLUR_PX`` px
long (a 1/30 s exposure of a hand-held phone), shake of ``SHAKE_PX`` px a frame.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt

from refundlens.media import Media

WIDTH = 1920  # capture.js asks for { width: { ideal: 1920 } }
AREA = 1920 * 1080  # ... and a phone gives 16:9 at that width
BITRATE = 2_500_000  # capture.js: videoBitsPerSecond
FPS = 30
FRAMES = 15  # half a second: past the encoder's first key frame into predicted frames
BLUR_PX = 8.0
SHAKE_PX = 1.5


def _motion_kernel(length: float, angle: float) -> npt.NDArray[np.float32]:
    size = max(1, int(np.ceil(length)) | 1)
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    return kernel / max(float(kernel.sum()), 1e-6)


def recorded_clip(rgb: npt.NDArray[np.uint8], seed: int) -> bytes:
    """A half-second webm (VP8, ``BITRATE``) of ``rgb`` (RGB uint8) filmed by a shaking hand."""
    import av

    rng = np.random.default_rng(seed)
    rows, cols = rgb.shape[:2]
    scale = min(WIDTH / max(rows, cols), (AREA / (rows * cols)) ** 0.5)
    width, height = 2 * round(cols * scale / 2), 2 * round(rows * scale / 2)
    big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = BITRATE
        # Real-time mode as a browser encodes live; but a browser's VP8 (cpu-used >= 0) picks
        # its speed by how long each frame took, which no two runs repeat. A negative cpu-used
        # fixes the speed (8, the fast end a phone's encoder runs at) and one thread fixes the
        # partitioning, so that the same input gives the same clip on any machine.
        stream.options = {"deadline": "realtime", "cpu-used": "-8", "threads": "1"}
        position = np.zeros(2)
        for _ in range(FRAMES):
            position += rng.normal(0.0, SHAKE_PX, 2)
            shift = np.float32([[1, 0, position[0]], [0, 1, position[1]]])
            frame = cv2.warpAffine(big, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
            kernel = _motion_kernel(rng.uniform(0.0, BLUR_PX), rng.uniform(0.0, np.pi))
            frame = cv2.filter2D(frame, -1, kernel)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def clip_frames(jpeg: bytes, seed: int) -> list[Media]:
    """The frames of a clip of the photo ``jpeg`` that the analysis compares with the filed
    photos (``Media``): decoded and sampled by the replay check, the sharpest kept."""
    from refundlens.cases.capture import capture_clip, sharpest_frames
    from refundlens.config import Settings
    from refundlens.media import media_from_bytes

    settings = Settings()
    rgb = media_from_bytes(jpeg, "view.jpg", settings).pixels
    clip = capture_clip("clip.webm", recorded_clip(rgb, seed), settings)
    return list(sharpest_frames([m for _, m in clip.sampled], settings.capture_clip_views))
