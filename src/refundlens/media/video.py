"""Packing and unboxing videos: bounded decoding and the sharp frames worth keeping.

FFmpeg, through PyAV, reads the container (mp4, mov, avi, mkv, webm) from memory. Limits are
checked from the header before frames are decoded (bytes, pixels per frame, pixels of the whole
video, duration), then on every frame by its own size, which the decoder is also told so that it
refuses a larger frame before allocating it (a header can lie: OpenCV, used before, checked only
the header and its frames came back scaled to the header's size). Decoding stops at ``video_max_frames`` sampled frames or ``video_max_decode_seconds`` of wall
time. Each sampled frame is shrunk to ``video_frame_side`` as soon as it is decoded: a video holds
at most ``video_max_frames`` small frames, never its full-resolution ones (a 20-frame 4096x4096
video once took an API process from 475 MiB to 1.9 GiB). Frames are turned upright as a player
shows them (a phone's portrait video carries a display rotation). A file FFmpeg cannot open, or
that yields no frame, is refused with a stable code.

Only those containers are opened, each by its own demuxer named from the file's first bytes:
left to probe, FFmpeg also opens text formats that read other files (an ``ffconcat`` script
names files on the server's disk; found by an attacker's probe, whose "video" brought back
another shop's stored photo as frames of a live capture), playlists and still images.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import time
from collections.abc import Iterator, Sequence

import av
import cv2
import numpy as np
import numpy.typing as npt

from ..config import Settings
from ..errors import MediaError
from .fingerprint import PdqHash, hamming, pdq

__all__ = [
    "Frame",
    "FramePdq",
    "Video",
    "VideoHeader",
    "key_frames",
    "probe_video",
    "read_clip",
    "read_video",
    "video_fingerprint",
    "video_match",
]


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    seconds: float
    rgb: npt.NDArray[np.uint8]
    sharpness: float
    """Variance of the Laplacian (grey levels squared): motion blur and defocus make it small."""


@dataclasses.dataclass(frozen=True, eq=False)
class Video:
    sha256: str
    width: int
    """Of the stream, as its header says (the frames kept are shrunk to ``video_frame_side``)."""
    height: int
    fps: float
    duration_s: float
    frames: tuple[Frame, ...]
    decoded: int = 0
    """Frames decoded: every frame of a clip (:func:`read_clip`); for :func:`read_video`, those up
    to where decoding stopped."""
    complete: bool = True
    """False where decoding stopped at a packet that could not be decoded (a damaged or cut
    file, or a frame larger than the limits that the decoder refused): the frames are those
    before it."""


@dataclasses.dataclass(frozen=True, slots=True)
class VideoHeader:
    """What the container says about its video stream, read without decoding a frame."""

    width: int
    height: int
    fps: float
    frames: int
    """Frame count from the header; 0 when the container does not say."""
    duration_s: float


def probe_video(data: bytes, settings: Settings | None = None) -> VideoHeader:
    """Check a video against every limit its header can answer (bytes, frame size, pixels of
    the whole video, duration) without decoding a frame: what an API does before storing it."""
    settings = settings or Settings()
    with _opened(data, settings) as (_frames, header):
        return header


def read_video(data: bytes, settings: Settings | None = None) -> Video:
    """Decode up to ``video_max_frames`` frames, one every ``video_sample_seconds``."""
    settings = settings or Settings()
    with _opened(data, settings) as (decoded, header):
        width, height, fps = header.width, header.height, header.fps
        step = max(1, round(fps * settings.video_sample_seconds))
        frames: list[Frame] = []
        started = time.monotonic()
        index = pixels = 0
        for frame in decoded:
            if (
                len(frames) >= settings.video_max_frames
                or time.monotonic() - started >= settings.video_max_decode_seconds
            ):
                break
            pixels += frame.width * frame.height
            if pixels > settings.video_max_total_pixels:
                # A header without a frame count (or with a false one) decodes no further.
                raise MediaError(
                    "media.decompression_bomb",
                    f"The video holds more than {index} frames of {width}x{height}; the limit (video_max_total_pixels) is {settings.video_max_total_pixels:.3g} pixels.",
                )
            if index % step == 0:
                frames.append(_frame(index / fps, frame, settings.video_frame_side))
            index += 1
    if not frames:
        raise MediaError("media.video_unreadable", "The video has no frame that can be decoded.")
    return Video(
        hashlib.sha256(data).hexdigest(),
        width,
        height,
        fps,
        max(header.duration_s, index / fps),
        tuple(frames),
        index,
        not decoded.broken,
    )


CLIP_MAX_FPS = 60
"""The most frames per second a clip may hold (a phone camera in a browser gives 30, at most 60)."""


def read_clip(data: bytes, settings: Settings, *, max_seconds: float, keep: int) -> Video:
    """Decode every frame of a short clip recorded in a browser (MediaRecorder's webm states
    neither its duration nor its true frame rate, and its frame rate varies): times are the
    frames' own timestamps, and ``keep`` frames spread evenly over the clip are kept, shrunk to
    ``video_frame_side`` (candidates are taken three times as often while decoding, so that no
    more than ``3 * keep + 1`` small frames are ever held).

    The header's limits are checked first, as for any video (bytes, frame size, frames x size),
    and each frame's own size as it is decoded; decoding then stops and refuses the clip
    (``media.video_too_long``) once a frame lies past ``max_seconds`` or the clip holds more
    frames than ``max_seconds`` at :data:`CLIP_MAX_FPS`, and at ``video_max_decode_seconds`` of
    wall time (``media.video_unreadable``: a clip that short decodes in well under a second)."""
    most = max(1, math.ceil(max_seconds * CLIP_MAX_FPS))
    keep = max(1, keep)
    every = max_seconds / (3 * keep)
    with _opened(data, settings) as (decoded, header):
        width, height = header.width, header.height
        frames: list[Frame] = []
        started = time.monotonic()
        index = pixels = 0
        seconds = 0.0
        origin: float | None = None  # the first frame's time: a clip's own may not start at 0
        for frame in decoded:
            if time.monotonic() - started > settings.video_max_decode_seconds:
                raise MediaError(
                    "media.video_unreadable",
                    f"The clip did not decode within video_max_decode_seconds ({settings.video_max_decode_seconds:g} s).",
                )
            index += 1
            pixels += frame.width * frame.height
            if pixels > settings.video_max_total_pixels:
                raise MediaError(
                    "media.decompression_bomb",
                    f"The clip holds more than {index - 1} frames of {frame.width}x{frame.height}; the limit (video_max_total_pixels) is {settings.video_max_total_pixels:.3g} pixels.",
                )
            stamp = 0.0
            if frame.time is not None:
                origin = float(frame.time) if origin is None else origin
                stamp = float(frame.time) - origin
            seconds = max(seconds, stamp if stamp > 0 else (index - 1) / header.fps)
            if seconds > max_seconds or index > most:
                raise MediaError(
                    "media.video_too_long",
                    f"The clip runs past {max_seconds:g} s ({index} frames, {seconds:.1f} s so far).",
                )
            if len(frames) <= 3 * keep and seconds >= (len(frames) + 0.5) * every:
                frames.append(_frame(seconds, frame, settings.video_frame_side))
    if not frames:
        raise MediaError("media.video_unreadable", "The clip has no frame that can be decoded.")
    # The last frame lasts as long as the others did on average.
    duration = seconds + (seconds / (index - 1) if index > 1 else 0.0)
    if len(frames) > keep:  # evenly spread, the first and the last candidate among them
        frames = [frames[round(i)] for i in np.linspace(0, len(frames) - 1, keep)]
    return Video(
        hashlib.sha256(data).hexdigest(),
        width,
        height,
        index / duration if duration > 0 else header.fps,
        duration,
        tuple(frames),
        index,
        not decoded.broken,
    )


def _frame(seconds: float, frame: av.VideoFrame, side: int) -> Frame:
    """A decoded frame as kept: upright as a player shows it (the container's display
    rotation, a phone's portrait video), shrunk to ``side``, with its sharpness."""
    rgb = _shrink(np.asarray(frame.to_ndarray(format="rgb24"), np.uint8), side)
    turns = round((frame.rotation or 0) / 90) % 4
    if turns:  # the display matrix turns counterclockwise, as np.rot90 does
        rgb = np.rot90(rgb, turns)
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return Frame(seconds, np.ascontiguousarray(rgb), float(cv2.Laplacian(grey, cv2.CV_64F).var()))


# FFmpeg's demuxer for each container it may open, by the file's first bytes. Nothing else is
# opened: no probing (see the module's docstring). In mov/mp4, data references to other files
# ("drefs") stay off, as FFmpeg leaves them by default; said here so that no default can change it.
_DEMUXER_OPTIONS = {"mov": {"enable_drefs": "0"}, "matroska": {}, "avi": {}}
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
# ISO files that are pictures, not videos: HEIF/HEIC and AVIF stills and image sequences (the
# mov demuxer would read one as a one-frame video).
_PICTURE_BRANDS = frozenset(
    {b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"}
)


def container_of(data: bytes) -> str | None:
    """The demuxer for ``data``'s container, from its first bytes: ``mov`` (mp4, mov, 3gp, m4v),
    ``matroska`` (mkv, webm) or ``avi``; None for anything else."""
    if data[4:8] in _ISO_BOXES:
        if data[4:8] == b"ftyp" and data[8:12] in _PICTURE_BRANDS:
            return None
        return "mov"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return "avi"
    return None


@contextlib.contextmanager
def _opened(data: bytes, settings: Settings) -> Iterator[tuple[_Decoded, VideoHeader]]:
    """The video opened by PyAV (FFmpeg) from memory, its header checked, and its frames to
    decode, each checked by its own size (:class:`_Decoded`)."""
    if not data:
        raise MediaError("media.empty", "The video file is empty (0 bytes).")
    if len(data) > settings.video_max_bytes:
        raise MediaError(
            "media.too_large",
            f"The video is {len(data)} bytes; the limit (video_max_bytes) is {settings.video_max_bytes}.",
        )
    unreadable = MediaError(
        "media.video_unreadable",
        "The video cannot be opened: corrupt, or a container or codec refundlens does not read.",
    )
    demuxer = container_of(data)
    if demuxer is None:
        raise MediaError(
            "media.video_unreadable",
            "The file is not a video refundlens reads: send mp4, mov, avi, mkv or webm.",
        )
    try:
        container = av.open(
            io.BytesIO(data), mode="r", format=demuxer, options=_DEMUXER_OPTIONS[demuxer]
        )
    except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError):
        raise unreadable from None
    try:
        if not container.streams.video:
            raise unreadable
        stream = container.streams.video[0]
        context = stream.codec_context
        width, height = int(context.width or 0), int(context.height or 0)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 25.0
        count = max(0, int(stream.frames or 0))
        duration = count / fps if count > 0 else 0.0
        if count == 0:
            # webm and mkv state no frame count: their duration, where they state one (a
            # browser's MediaRecorder does not: its frames' timestamps decide), gives it.
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:  # from its start, which may not be 0
                duration = (container.duration - (container.start_time or 0)) / av.time_base
            count = round(duration * fps)
        _check_frame_size(width, height, settings)
        if count > 0 and width * height * count > settings.video_max_total_pixels:
            raise MediaError(
                "media.decompression_bomb",
                f"The video's header declares {count} frames of {width}x{height}, {width * height * count:.3g} pixels to decode; the limit (video_max_total_pixels) is {settings.video_max_total_pixels:.3g}.",
            )
        if duration > settings.video_max_seconds:
            raise MediaError(
                "media.video_too_long",
                f"The video lasts {duration:.0f} s; the limit (video_max_seconds) is {settings.video_max_seconds:g} s.",
            )
        # The decoder itself refuses a frame over the limit before allocating it: a header may
        # state 64x64 and its later frames be 8192x8192 (a 14 MB clip once took 13 such frames
        # through OpenCV, which checked only the header, and 500 MB of memory). One thread:
        # services already run a process per core.
        context.thread_count = 1
        context.options = {
            "max_pixels": str(min(settings.max_pixels, settings.video_max_frame_pixels))
        }
        yield (
            _Decoded(container, stream, settings),
            VideoHeader(width, height, fps, count, duration),
        )
    finally:
        container.close()


class _Decoded:
    """Every frame of a video stream, each checked against the frame limits by its own size (not
    the header's). Decoding ends at the first packet that cannot be decoded, as at the end of the
    file (a frame the decoder refused for its size is one): ``broken`` then says so."""

    def __init__(
        self,
        container: av.container.InputContainer,
        stream: av.video.stream.VideoStream,
        settings: Settings,
    ) -> None:
        self._container, self._stream, self._settings = container, stream, settings
        self.broken = False

    def __iter__(self) -> Iterator[av.VideoFrame]:
        try:
            for frame in self._container.decode(self._stream):
                _check_frame_size(frame.width, frame.height, self._settings)
                yield frame
        except av.FFmpegError:
            self.broken = True


def _check_frame_size(width: int, height: int, settings: Settings) -> None:
    if (
        width * height > min(settings.max_pixels, settings.video_max_frame_pixels)
        or max(width, height) > settings.max_side
    ):
        raise MediaError(
            "media.too_many_pixels",
            f"The video's frames are {width}x{height}; the limits are video_max_frame_pixels={settings.video_max_frame_pixels}, max_pixels={settings.max_pixels} and max_side={settings.max_side}.",
        )


def _shrink(rgb: npt.NDArray[np.uint8], side: int) -> npt.NDArray[np.uint8]:
    """The frame with its longest side at most ``side`` (area average: no aliasing)."""
    rows, cols = rgb.shape[:2]
    scale = side / max(rows, cols)
    if scale >= 1:
        return rgb
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)  # type: ignore[return-value]


def key_frames(video: Video, keep: int = 6, min_distance: int = 40) -> list[Frame]:
    """The sharpest frames that differ from each other (PDQ distance >= ``min_distance``): the
    views of the product a claim photo could be made from. Blurred frames (below half the median
    sharpness) are never kept."""
    if not video.frames:
        return []
    floor = 0.5 * float(np.median([f.sharpness for f in video.frames]))
    chosen: list[tuple[Frame, object]] = []
    for frame in sorted(video.frames, key=lambda f: -f.sharpness):
        if frame.sharpness < floor or len(chosen) >= keep:
            continue
        code = pdq(frame.rgb)
        if code.quality < 50:
            continue
        if all(hamming(code, other) >= min_distance for _, other in chosen):  # type: ignore[arg-type]
            chosen.append((frame, code))
    return sorted((f for f, _ in chosen), key=lambda f: f.seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class FramePdq:
    """One sampled frame's PDQ hash and where it lies in the video (seconds from the start)."""

    seconds: float
    code: PdqHash


def video_fingerprint(
    video: Video, min_quality: int = 50, dedup_distance: int = 8
) -> list[FramePdq]:
    """Frame-level PDQ of every sampled frame, as vPDQ does it (ThreatExchange's video PDQ:
    one hash per sampled second; consecutive frames within ``dedup_distance`` bits of the last
    kept one are dropped, so a still shot costs one entry; hashes below ``min_quality`` are
    dropped, since flat frames such as black leaders collide).

    Reference: Meta, "vPDQ: video hashing by per-frame PDQ", facebook/ThreatExchange, vpdq/README.
    """
    out: list[FramePdq] = []
    for frame in video.frames:
        code = pdq(frame.rgb)
        if code.quality < min_quality:
            continue
        if out and hamming(out[-1].code, code) <= dedup_distance:
            continue
        out.append(FramePdq(frame.seconds, code))
    return out


def video_match(
    query: Sequence[PdqHash], target: Sequence[PdqHash], max_distance: int = 31
) -> tuple[float, float]:
    """vPDQ's two match percentages: the share of ``query``'s frames that lie within
    ``max_distance`` bits of some frame of ``target``, and the share of ``target``'s frames that
    lie within it of some frame of ``query`` (both in %, 0 for an empty side). A video and a
    trimmed copy of it score (about 100, the kept share); two videos of the same product, shot
    separately, score low because PDQ distances between separate exposures exceed 31 bits."""
    if not query or not target:
        return 0.0, 0.0
    a = np.unpackbits(np.frombuffer(b"".join(q.bits for q in query), np.uint8)).reshape(
        len(query), 256
    )
    b = np.unpackbits(np.frombuffer(b"".join(t.bits for t in target), np.uint8)).reshape(
        len(target), 256
    )
    distances = (a[:, None, :] != b[None, :, :]).sum(axis=2)
    close = distances <= max_distance
    return 100.0 * float(close.any(axis=1).mean()), 100.0 * float(close.any(axis=0).mean())
