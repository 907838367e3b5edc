"""Packing videos: bounded decoding, key frames as order references, and a claim made from a frame."""

from __future__ import annotations

import io
from importlib import resources
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

from refundlens import synth
from refundlens.config import Settings
from refundlens.detectors._examples import _product
from refundlens.detectors._pixels_examples import camera_photo, encode
from refundlens.errors import MediaError
from refundlens.media.video import key_frames, read_video, video_fingerprint, video_match

from .service_support import Server, assessed, running_server


def packing_video(path: Path, seconds: float = 4.0, fps: int = 10) -> np.ndarray:
    """A product sliding slowly across a table, written with OpenCV's mp4v encoder. Returns the
    frame at 2 s (what a forger would grab)."""
    product = _product(44)
    rows, cols = product.shape[:2]
    canvas_size = (cols + 80, rows + 40)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, canvas_size)
    grabbed = None
    for i in range(int(seconds * fps)):
        canvas = np.full((canvas_size[1], canvas_size[0], 3), 235, np.uint8)
        x = 10 + i * 60 // int(seconds * fps)
        canvas[20 : 20 + rows, x : x + cols] = product
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        if i == 2 * fps:
            grabbed = canvas
    writer.release()
    assert grabbed is not None
    return grabbed


def _shop_with_order(server: Server, listing: bytes) -> tuple[str, str]:
    """A merchant with one SKU (``listing`` as its photo) and one order for buyer ``b``."""
    with server.client(server.admin) as admin:
        admin.post("/v1/tenants", json={"id": "shop", "kind": "merchant", "name": "shop"})
    merchant_key = server.key("merchant", "shop")
    with server.client(merchant_key) as merchant:
        sku = merchant.post(
            "/v1/skus",
            data={"external_id": "box"},
            files=[("photos", ("listing.jpg", listing, "image/jpeg"))],
        ).json()["id"]
        order = merchant.post(
            "/v1/orders", json={"external_id": "o", "sku_id": sku, "buyer_id": "b", "amount": 100}
        ).json()["id"]
    return merchant_key, order


def _wait_packing_video_done(server: Server, video_id: str, timeout: float = 120.0) -> list[str]:
    """The frames kept from a packing video once the task runner has processed it."""
    import time

    from refundlens.store import Database
    from refundlens.store.sql.models import PackingVideo

    deadline = time.time() + timeout
    while time.time() < deadline:
        database = Database(server.settings)
        with database.session() as session:
            row = session.get(PackingVideo, video_id)
            status, kept = (row.status, row.frames_kept) if row else ("missing", None)
        database.dispose()
        if status != "pending":
            assert status == "done" and kept, status
            return list(kept)
        time.sleep(0.1)
    raise AssertionError(f"packing video {video_id} was not processed within {timeout} s")


def test_a_generated_video_decodes_into_sampled_frames_with_sharpness(tmp_path: Path) -> None:
    packing_video(tmp_path / "v.mp4")
    video = read_video((tmp_path / "v.mp4").read_bytes(), Settings(video_sample_seconds=0.5))
    assert 7 <= len(video.frames) <= 9
    assert video.duration_s == pytest.approx(4.0, abs=0.2)
    assert all(f.sharpness > 0 for f in video.frames)
    kept = key_frames(video, keep=3, min_distance=10)
    assert 1 <= len(kept) <= 3


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "media.empty"),
        (b"\x00\x00\x00\x18ftypmp42 not a real video", "media.video_unreadable"),
        (b"RIFF....AVI garbage" * 10, "media.video_unreadable"),
    ],
)
def test_bad_videos_get_a_clear_error(data: bytes, code: str) -> None:
    with pytest.raises(MediaError) as caught:
        read_video(data)
    assert caught.value.code == code


def test_only_video_containers_are_opened_never_a_script_that_reads_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FFmpeg left to probe opens an ``ffconcat`` script as a video and reads the files it
    names from the server's disk (an attacker's probe brought back another shop's stored photo
    as frames of a live capture), and opens playlists and still images too. Only mp4/mov,
    mkv/webm and avi are opened, each by its own demuxer; the rest is refused unread."""
    from refundlens.media.video import container_of, probe_video, read_clip

    secret = tmp_path / "blobs" / "ab" / "secret"
    secret.parent.mkdir(parents=True)
    packing_video(tmp_path / "secret.mp4", seconds=3.0)
    secret.write_bytes((tmp_path / "secret.mp4").read_bytes())
    photo = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(photo, "JPEG")
    monkeypatch.chdir(tmp_path)
    hostile = {
        "ffconcat": b"ffconcat version 1.0\n" + b"file 'blobs/ab/secret'\nduration 0.9\n" * 5,
        "a still photo": photo.getvalue(),
        "a playlist": b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nblobs/ab/secret\n",
        "an image list": b"file 'blobs/ab/secret'\n",
        "a HEIF photo": b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        "an AVIF photo": b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(64),
    }
    for name, data in hostile.items():
        assert container_of(data) is None, name
        for read in (
            read_video,
            lambda d: probe_video(d, Settings()),
            lambda d: read_clip(d, Settings(), max_seconds=6.0, keep=3),
        ):
            with pytest.raises(MediaError) as caught:
                read(data)
            assert caught.value.code == "media.video_unreadable", name
            assert "mp4, mov, avi, mkv or webm" in caught.value.message
    # What the product does read, each by its own demuxer.
    assert container_of(secret.read_bytes()) == "mov"
    assert container_of(_webm(1.0)) == "matroska"
    assert read_video(secret.read_bytes()).decoded > 0


def test_a_video_over_the_limits_is_refused_before_decoding(tmp_path: Path) -> None:
    packing_video(tmp_path / "v.mp4")
    data = (tmp_path / "v.mp4").read_bytes()
    with pytest.raises(MediaError) as too_long:
        read_video(data, Settings(video_max_seconds=2))
    assert too_long.value.code == "media.video_too_long"
    with pytest.raises(MediaError) as too_big:
        read_video(data, Settings(video_max_bytes=1000))
    assert too_big.value.code == "media.too_large"


def _flat_video(path: Path, side: tuple[int, int], frames: int, fps: int = 10) -> None:
    """A still disc on a flat background, numbered frames: compresses to almost nothing."""
    cols, rows = side
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (cols, rows))
    base = np.full((rows, cols, 3), 200, np.uint8)
    cv2.circle(base, (cols // 2, rows // 2), min(rows, cols) // 4, (30, 60, 90), -1)
    for i in range(frames):
        frame = base.copy()
        cv2.putText(
            frame, str(i), (cols // 3, rows // 3), cv2.FONT_HERSHEY_SIMPLEX, 8, (0, 0, 0), 16
        )
        writer.write(frame)
    writer.release()


_RSS_PROBE = """
import resource, sys
from refundlens.media.video import read_video
from refundlens.errors import MediaError
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    video = read_video(data)
    outcome = f"decoded:{len(video.frames)}"
except MediaError as exc:
    outcome = exc.code
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(outcome, round(grown))
"""


def test_a_video_bomb_is_refused_from_its_header_before_a_frame_is_decoded(tmp_path: Path) -> None:
    """The issue's bomb: 20 frames of 4096x4096 in about 700 KB. Before the header check, one
    decode of such a video grew the process by 97 to 590 MiB (two full-resolution frames kept,
    and the decoder's buffers); now it is refused from the header, and the process grows by
    what opening the container costs (about 20 MiB)."""
    import subprocess
    import sys

    _flat_video(tmp_path / "bomb.mp4", (4096, 4096), 20)
    assert (tmp_path / "bomb.mp4").stat().st_size < 2_000_000
    probe = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(tmp_path / "bomb.mp4")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    outcome, grown_mib = probe.stdout.split()
    assert outcome == "media.too_many_pixels", probe.stdout
    assert int(grown_mib) < 50, f"the process grew by {grown_mib} MiB"


def test_a_video_of_too_many_frames_for_its_size_is_a_bomb_refused_from_its_header(
    tmp_path: Path,
) -> None:
    _flat_video(tmp_path / "v.mp4", (320, 240), 30)
    data = (tmp_path / "v.mp4").read_bytes()
    with pytest.raises(MediaError) as bomb:
        read_video(data, Settings(video_max_total_pixels=320 * 240 * 20))
    assert bomb.value.code == "media.decompression_bomb"
    assert "video_max_total_pixels" in str(bomb.value)
    assert len(read_video(data, Settings(video_max_total_pixels=320 * 240 * 30)).frames) == 3


def _h264(side: int, frames: int, seed: int) -> bytes:
    """A raw H.264 stream of ``frames`` frames ``side`` px square (libx264 through PyAV)."""
    import fractions

    import av

    encoder = av.CodecContext.create("libx264", "w")
    encoder.width = encoder.height = side
    encoder.pix_fmt, encoder.time_base = "yuv420p", fractions.Fraction(1, 25)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    rng = np.random.default_rng(seed)
    out = b""
    for i in range(frames):
        image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += b"".join(bytes(p) for p in encoder.encode(frame))
    return out + b"".join(bytes(p) for p in encoder.encode(None))


def _in_mkv(raw: bytes) -> bytes:
    """Raw H.264 put in a Matroska container as it is (packets copied, 25 frames a second):
    frames of another size than the first keep their own sizes."""
    import fractions

    import av

    source = av.open(io.BytesIO(raw), format="h264")
    out = io.BytesIO()
    with av.open(out, "w", format="matroska") as container:
        stream = container.add_stream_from_template(source.streams.video[0])
        for i, packet in enumerate(p for p in source.demux(source.streams.video[0]) if p.size):
            packet.stream = stream
            packet.time_base = fractions.Fraction(1, 25)
            packet.pts = packet.dts = i
            packet.duration = 1
            container.mux(packet)
    return out.getvalue()


def test_frames_larger_than_the_header_says_are_never_decoded() -> None:
    """A header may state 64x64 and later frames be far larger: the size limit holds for every
    frame by its own size, and the decoder refuses such a frame before allocating it (OpenCV,
    used before, checked the header only and took a 14 MB clip of 8192x8192 frames)."""
    from refundlens.media.video import read_clip

    settings = Settings(video_max_frame_pixels=100_000)
    data = _in_mkv(_h264(64, 10, 1) + _h264(512, 6, 2) + _h264(64, 10, 3))
    clip = read_clip(data, settings, max_seconds=6.0, keep=3)
    assert clip.decoded == 10 and not clip.complete  # stopped at the first large frame
    assert all(f.rgb.shape == (64, 64, 3) for f in clip.frames)
    video = read_video(data, settings)
    assert video.decoded == 10 and not video.complete
    assert read_video(_in_mkv(_h264(64, 10, 4)), settings).complete


def _webm(seconds: float, start: float = 0.0, fps: int = 10) -> bytes:
    """A VP8 webm (PyAV) of random frames whose first frame is at ``start`` seconds."""
    import fractions

    import av

    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(5)
        for i in range(round(seconds * fps)):
            image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = (
                round((start + i / fps) * 1000),
                fractions.Fraction(1, 1000),
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def test_a_webm_states_its_duration_and_a_clip_is_timed_from_its_first_frame() -> None:
    """webm and mkv state no frame count: their stated duration is checked from the header; a
    clip whose timestamps start at 10 s lasts its 3 s, not 13."""
    from refundlens.media.video import probe_video, read_clip

    settings = Settings(video_max_seconds=10)
    assert probe_video(_webm(3), settings).duration_s == pytest.approx(3.0, abs=0.2)
    with pytest.raises(MediaError) as long:
        probe_video(_webm(30), settings)
    assert long.value.code == "media.video_too_long"
    clip = read_clip(_webm(3, start=10), settings, max_seconds=6, keep=3)
    assert clip.duration_s == pytest.approx(3.0, abs=0.2)
    assert all(0 <= f.seconds <= 3.0 for f in clip.frames)


def test_a_phone_video_filmed_upright_is_read_upright(tmp_path: Path) -> None:
    """Phones store a portrait video landscape with a display rotation (mp4 track matrix)."""
    path = tmp_path / "portrait.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 32))
    for _ in range(5):
        frame = np.zeros((32, 64, 3), np.uint8)
        frame[:, :8] = 255  # a white band along the stored frame's left edge
        writer.write(frame)
    writer.release()
    data = bytearray(path.read_bytes())
    identity = bytes.fromhex("00010000" + "00000000" * 3 + "00010000" + "00000000" * 3 + "40000000")
    turned = bytes.fromhex("000000000001000000000000ffff0000" + "00000000" * 4 + "40000000")
    at = data.index(identity, data.index(b"tkhd"))
    data[at : at + 36] = turned  # 90 degrees clockwise, as an iPhone held upright writes it
    frame = read_video(bytes(data)).frames[0].rgb
    assert frame.shape == (64, 32, 3)  # upright: taller than wide
    assert frame[:8].mean() > 200 and frame[16:].mean() < 30  # the band is now along the top


def test_video_frames_are_kept_shrunk_to_the_frame_side_as_soon_as_decoded(tmp_path: Path) -> None:
    _flat_video(tmp_path / "v.mp4", (1600, 1200), 20)
    video = read_video((tmp_path / "v.mp4").read_bytes(), Settings(video_frame_side=400))
    assert (video.width, video.height) == (1600, 1200)  # the stream's size, from its header
    assert {f.rgb.shape for f in video.frames} == {(300, 400, 3)}
    assert all(f.sharpness > 0 for f in video.frames)


def test_a_claim_made_from_a_packing_frame_is_caught_like_one_made_from_a_listing_photo(
    tmp_path: Path,
) -> None:
    frame = packing_video(tmp_path / "packing.mp4")
    obj = frame.min(axis=2) < 225
    damaged, _ = synth.paint_damage(frame, obj, "crack", 0.03, seed=3)
    claim = io.BytesIO()
    Image.fromarray(damaged).save(claim, "JPEG", quality=88)
    listing = resources.files("refundlens").joinpath("samples/claim_unrelated.jpg").read_bytes()
    with running_server(tmp_path / "data") as server:
        merchant_key, order = _shop_with_order(server, listing)
        with server.client(merchant_key) as merchant:
            r = merchant.post(
                f"/v1/orders/{order}/packing-video",
                files=[
                    ("video", ("packing.mp4", (tmp_path / "packing.mp4").read_bytes(), "video/mp4"))
                ],
            )
            # Accepted: checked from its header and stored; the task runner keeps its frames.
            assert r.status_code == 202, r.text
            assert r.json()["status"] == "pending"
            kept = _wait_packing_video_done(server, r.json()["video_id"])
            # A shop without a webhook reads what became of it from the order.
            read = merchant.get(f"/v1/orders/{order}").json()
            (video,) = read["packing_videos"]
            assert video["video_id"] == r.json()["video_id"] and video["status"] == "done"
            assert video["frames_kept"] == len(kept) and video["error"] == ""
            bad = merchant.post(
                f"/v1/orders/{order}/packing-video",
                files=[("video", ("x.mp4", b"garbage", "video/mp4"))],
            )
            assert (
                bad.status_code == 422 and bad.json()["error"]["code"] == "media.video_unreadable"
            )
        buyer = server.key("buyer", subject="b")
        with server.client(server.admin) as admin:
            admin.post("/v1/tenants", json={"id": "shop-b", "kind": "merchant", "name": "b"})
        with server.client(server.key("merchant", "shop-b")) as other:
            assert other.get(f"/v1/orders/{order}").status_code == 404  # another shop's
        with server.client(buyer) as client:
            assert client.get(f"/v1/orders/{order}").status_code == 403
        with server.client(buyer) as client:
            created = client.post(
                "/v1/claims",
                data={"order_id": order, "type": "refund_only", "amount": "50"},
                files=[("photos", ("c.jpg", claim.getvalue(), "image/jpeg"))],
            ).json()
            analysed = assessed(server, created["id"])
    derived = next(
        f
        for f in analysed["assessment"]["images"][0]["findings"]
        if f["code"] == "reference.derived"
    )
    assert "packing.mp4@" in derived["facts"]["reference"]
    assert analysed["action"] == "escalate"


def _video_of(path: Path, photo: bytes, seconds: float = 3.0, fps: int = 10) -> None:
    """A clip of one photo panned slowly (a phone filming a carton), mp4v."""
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    rows, cols = (rgb.shape[0] - 40) // 2 * 2, (rgb.shape[1] - 40) // 2 * 2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (cols, rows))
    for i in range(int(seconds * fps)):
        x = i * 40 // int(seconds * fps)
        writer.write(
            cv2.cvtColor(np.ascontiguousarray(rgb[20 : 20 + rows, x : x + cols]), cv2.COLOR_RGB2BGR)
        )
    writer.release()


def test_an_unboxing_video_sent_with_the_claim_that_shows_the_photos_scene_supports_the_buyer(
    tmp_path: Path,
) -> None:
    """A video that films the carton the photo shows supports the buyer; a "video" made of the
    claim photo itself supports nothing (it took a forged photo to approve: a security review)."""
    samples = resources.files("refundlens").joinpath("samples")
    photo = samples.joinpath("claim_genuine.jpg").read_bytes()
    _video_of(tmp_path / "unboxing.mp4", samples.joinpath("listing.jpg").read_bytes())
    _video_of(tmp_path / "of_the_photo.mp4", photo)
    listing = samples.joinpath("claim_unrelated.jpg").read_bytes()
    findings = {}
    with running_server(tmp_path / "data", max_open_claims_per_order=2) as server:
        _, order = _shop_with_order(server, listing)
        with server.client(server.key("buyer", subject="b")) as buyer:
            bad = buyer.post(
                "/v1/claims",
                data={"order_id": order, "type": "refund_only", "amount": "50"},
                files=[
                    ("photos", ("c.jpg", photo, "image/jpeg")),
                    ("videos", ("v.mp4", b"not a video", "video/mp4")),
                ],
            )
            assert (
                bad.status_code == 422 and bad.json()["error"]["code"] == "media.video_unreadable"
            )
            for video in ("unboxing.mp4", "of_the_photo.mp4"):
                created = buyer.post(
                    "/v1/claims",
                    data={"order_id": order, "type": "refund_only", "amount": "50"},
                    files=[
                        ("photos", ("c.jpg", photo, "image/jpeg")),
                        ("videos", (video, (tmp_path / video).read_bytes(), "video/mp4")),
                    ],
                )
                assert created.status_code == 201, created.text
                analysed = assessed(server, created.json()["id"])
                findings[video] = {
                    f["code"]: f for f in analysed["assessment"]["images"][0]["findings"]
                }
    codes = findings["unboxing.mp4"]
    assert "unboxing.same_scene" in codes, sorted(codes)
    assert "unboxing.mp4@" in codes["unboxing.same_scene"]["facts"]["frame"]
    assert "unboxing.same_scene" not in findings["of_the_photo.mp4"], sorted(
        findings["of_the_photo.mp4"]
    )


def scenes_video(
    path: Path, seeds: list[int], fps: int = 5, scale: float = 1.0
) -> list[np.ndarray]:
    """A video that cuts to a new scene every second (one camera-like picture per seed), written
    with OpenCV's mp4v encoder; ``scale`` resizes every frame (a re-encoded copy). Returns the
    scenes as written."""
    scenes = [camera_photo(seed, size=(240, 320)) for seed in seeds]
    size = (round(320 * scale), round(240 * scale))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for scene in scenes:
        frame = cv2.resize(scene, size, interpolation=cv2.INTER_AREA)
        for _ in range(fps):
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return scenes


def test_a_trimmed_and_resized_copy_of_a_video_matches_it_frame_by_frame_and_another_does_not(
    tmp_path: Path,
) -> None:
    scenes_video(tmp_path / "a.mp4", list(range(20, 28)))
    # The forger's copy: the first two seconds cut, shrunk to 75%, encoded again.
    scenes_video(tmp_path / "copy.mp4", list(range(22, 28)), scale=0.75)
    scenes_video(tmp_path / "other.mp4", list(range(40, 48)))
    prints = {
        name: [f.code for f in video_fingerprint(read_video((tmp_path / name).read_bytes()))]
        for name in ("a.mp4", "copy.mp4", "other.mp4")
    }
    assert len(prints["a.mp4"]) == 8  # one per scene: the repeated frames of a scene are dropped
    query, earlier = video_match(prints["copy.mp4"], prints["a.mp4"])
    assert query == 100.0 and earlier == 75.0
    assert video_match(prints["other.mp4"], prints["a.mp4"]) == (0.0, 0.0)


def test_a_video_sent_again_with_another_buyers_claim_is_found_and_so_is_a_photo_taken_from_it(
    tmp_path: Path,
) -> None:
    listing = resources.files("refundlens").joinpath("samples/claim_unrelated.jpg").read_bytes()
    scenes = scenes_video(tmp_path / "first.mp4", list(range(60, 68)))
    scenes_video(tmp_path / "again.mp4", list(range(61, 68)), scale=0.75)
    photo = io.BytesIO()
    Image.fromarray(scenes[3]).save(photo, "JPEG", quality=85)
    with running_server(tmp_path / "data") as server:
        merchant_key, first_order = _shop_with_order(server, listing)
        with server.client(merchant_key) as merchant:
            sku_id = merchant.post(
                "/v1/skus",
                data={"external_id": "box2"},
                files=[("photos", ("listing.jpg", listing, "image/jpeg"))],
            ).json()["id"]
            orders = [
                merchant.post(
                    "/v1/orders",
                    json={
                        "external_id": f"o{n}",
                        "sku_id": sku_id,
                        "buyer_id": buyer,
                        "amount": 100,
                    },
                ).json()["id"]
                for n, buyer in ((2, "c"), (3, "d"))
            ]
        ids = []
        for order, buyer_id, files in (
            (
                first_order,
                "b",
                [
                    ("videos", ("first.mp4", (tmp_path / "first.mp4").read_bytes(), "video/mp4")),
                    ("photos", ("p.jpg", encode(camera_photo(90, size=(240, 320))), "image/jpeg")),
                ],
            ),
            (
                orders[0],
                "c",
                [
                    ("videos", ("again.mp4", (tmp_path / "again.mp4").read_bytes(), "video/mp4")),
                    ("photos", ("p.jpg", encode(camera_photo(91, size=(240, 320))), "image/jpeg")),
                ],
            ),
            (orders[1], "d", [("photos", ("frame.jpg", photo.getvalue(), "image/jpeg"))]),
        ):
            with server.client(server.key("buyer", subject=buyer_id)) as buyer:
                created = buyer.post(
                    "/v1/claims",
                    data={"order_id": order, "type": "refund_only", "amount": "50"},
                    files=files,
                )
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
                analysed = assessed(server, ids[-1])
                codes = {f["code"]: f for f in analysed["assessment"]["images"][0]["findings"]}
            if buyer_id == "b":
                assert "reuse.video_seen_before" not in codes and "reuse.seen_before" not in codes
            elif buyer_id == "c":
                found = codes["reuse.video_seen_before"]
                assert found["facts"]["matches"][0]["claim"] == ids[0]
                assert found["facts"]["query_match_percent"] == 100.0
                assert "reuse.seen_before" not in codes
            else:
                found = codes["reuse.seen_before"]
                assert found["facts"]["matches"][0]["matched_by"] == "video_frame"
                assert found["facts"]["matches"][0]["claim"] in ids[:2]
                assert "frame" in found["reason"]["en"]
        # A live capture's lookup finds a frame of another claim's video as well (a clip cut
        # from it, or a frame sent as a photo): recorded, the claim sent to a person.
        from refundlens.media import media_from_bytes
        from refundlens.reuse.history import repeats_on_file
        from refundlens.store.sql.models import Order

        runtime = server.app.state.runtime
        with runtime.db.session() as session:
            order = session.get(Order, orders[1])
            session.expunge(order)
        history = runtime.history("clm_a_capture_of_this_order", order)
        repeats = repeats_on_file(history, media_from_bytes(photo.getvalue(), "live.jpg"), 0)
        assert repeats is not None and repeats["how"] == "video_frame", repeats
        assert repeats["other_claim"] in ids[:2] and repeats["same_buyer"] is False


def test_a_packing_videos_file_name_is_cut_and_cleaned_like_every_uploaded_name(
    tmp_path: Path,
) -> None:
    from refundlens.service.fields import MAX_FILE_NAME
    from refundlens.store import Database
    from refundlens.store.sql.models import PackingVideo

    _flat_video(tmp_path / "v.mp4", (160, 120), 10)
    listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
    with running_server(tmp_path / "data") as server:
        merchant_key, order = _shop_with_order(server, listing)
        with server.client(merchant_key) as merchant:
            r = merchant.post(
                f"/v1/orders/{order}/packing-video",
                files=[("video", ("p" * 900 + ".mp4", (tmp_path / "v.mp4").read_bytes()))],
            )
            assert r.status_code == 202, r.text
        database = Database(server.settings)
        with database.session() as session:
            name = session.get(PackingVideo, r.json()["video_id"]).name  # type: ignore[union-attr]
        database.dispose()
    assert len(name) == MAX_FILE_NAME and name.startswith("ppp")


def test_an_orders_packing_videos_are_bounded_and_one_sent_again_is_decoded_once(
    tmp_path: Path,
) -> None:
    # One shop posted the same small video 30 times to one order: each was decoded again by
    # the task runner every shop shares, and a claim filed next waited 110 s (found by a probe).
    listing = resources.files("refundlens").joinpath("samples/listing.jpg").read_bytes()
    for frames in (10, 12, 14):
        _flat_video(tmp_path / f"v{frames}.mp4", (160, 120), frames)

    def send(merchant: httpx.Client, order: str, frames: int) -> httpx.Response:
        data = (tmp_path / f"v{frames}.mp4").read_bytes()
        return merchant.post(
            f"/v1/orders/{order}/packing-video", files=[("video", ("v.mp4", data, "video/mp4"))]
        )

    with running_server(tmp_path / "data", max_packing_videos_per_order=2) as server:
        merchant_key, order = _shop_with_order(server, listing)
        with server.client(merchant_key) as merchant:
            first = send(merchant, order, 10)
            assert first.status_code == 202, first.text
            _wait_packing_video_done(server, first.json()["video_id"])
            again = send(merchant, order, 10)
            assert again.status_code == 202, again.text
            assert again.json() == first.json() | {"status": "done"}
            assert send(merchant, order, 12).status_code == 202
            over = send(merchant, order, 14)
            assert over.status_code == 409, over.text
            assert over.json()["error"]["code"] == "order.too_many_videos"
            videos = merchant.get(f"/v1/orders/{order}").json()["packing_videos"]
        assert len(videos) == 2


def test_a_shop_has_at_most_max_pending_packing_videos_waiting_at_once(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from refundlens import cases
    from refundlens.errors import RefundlensError
    from refundlens.store.sql.models import Order
    from refundlens.store.sql.repositories import SqlStore

    from .test_cases import _claim_awaiting_capture

    settings = Settings(data_dir=str(tmp_path), max_pending_packing_videos_per_shop=2)
    runtime, _ = _claim_awaiting_capture(settings)
    header = SimpleNamespace(duration_s=1.0, width=16, height=16)
    with runtime.db.session() as session:
        store = SqlStore(session)
        order = session.query(Order).one()
        for i in range(2):
            cases.register_packing_video(
                store, cases.SYSTEM, order, "v.mp4", f"{i:064x}", header, settings
            )
        session.flush()
        assert store.catalogue.pending_packing_videos_of_shop("shop") == 2
        with pytest.raises(RefundlensError) as refused:
            cases.packing_video_room(store, order, "f" * 64, settings)
        assert refused.value.code == "order.videos_pending"
        # The same bytes again are answered as they are, waiting or not.
        same = cases.packing_video_room(store, order, f"{0:064x}", settings)
        assert same is not None and same.status == "pending"
        # A video that failed counts for nothing and may be sent again.
        same.status = "failed"
        session.flush()
        assert cases.packing_video_room(store, order, f"{0:064x}", settings) is None


def test_a_copy_of_a_video_analysed_before_the_claim_it_copies_still_finds_it(
    tmp_path: Path,
) -> None:
    # A security review: two claims filed with copies of one unboxing video and analysed at
    # once by two workers did not see each other's video, each claim's fingerprints being
    # written by its own analysis. The later claim's analysis now fingerprints the earlier
    # claim's video itself when that claim has not been analysed yet.
    from refundlens import cases
    from refundlens.runtime import Runtime
    from refundlens.store.sql.models import Tenant
    from refundlens.store.sql.repositories import SqlStore
    from refundlens.workers.tasks import _analyse

    scenes_video(tmp_path / "first.mp4", list(range(70, 78)))
    scenes_video(tmp_path / "again.mp4", list(range(71, 78)), scale=0.75)
    settings = Settings(data_dir=str(tmp_path / "data"), ocr_enabled=False)
    runtime = Runtime(settings)
    runtime.db.upgrade()
    buyer = cases.Actor("key-b", "buyer")
    ids = []
    with runtime.db.session() as session:
        session.add(Tenant(id="shop", kind="merchant", name="shop"))
        session.flush()
        store = SqlStore(session)
        listing = [("l.jpg", encode(camera_photo(1, size=(240, 320))))]
        sku = cases.create_sku(
            store, runtime.blobs, settings, cases.SYSTEM, "shop", "s", "", listing
        )
        for n, (buyer_id, video) in enumerate((("b1", "first.mp4"), ("b2", "again.mp4"))):
            order = cases.create_order(
                store, cases.SYSTEM, "shop", f"o{n}", sku.id, buyer_id, 50.0, "CNY", None, None, None
            )  # fmt: skip
            claim = cases.create_claim(
                store, runtime.blobs, settings, buyer, order, "refund_only", "", 20.0,
                [("p.jpg", encode(camera_photo(80 + n, size=(240, 320))))],
                videos=[(video, (tmp_path / video).read_bytes())],
            )  # fmt: skip
            ids.append(claim.id)
    first, again = ids
    with runtime.db.session() as session:
        store = SqlStore(session)
        cases.mark_queued(store, [again])
        attempt = cases.start_analysis(store, again, settings)
    _analyse(runtime, again, attempt)  # the first claim still waits for its worker
    with runtime.db.session() as session:
        store = SqlStore(session)
        report = store.assessments.latest(again)
        assert report is not None
        codes = {f["code"]: f for f in report.report["images"][0]["findings"]}
        assert codes["reuse.video_seen_before"]["facts"]["matches"][0]["claim"] == first
        assert store.fingerprints.printed_videos(first)  # written once, for the first claim
        assert store.claims.get(first).state == "submitted"  # type: ignore[union-attr]
    runtime.db.dispose()
