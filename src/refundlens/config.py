"""Typed settings: every limit and threshold of refundlens has a name, a default and a unit.

Settings come from, in increasing precedence: the defaults below, a YAML file named by the
``REFUNDLENS_CONFIG`` environment variable, and ``REFUNDLENS_<FIELD>`` environment variables
(e.g. ``REFUNDLENS_MAX_PIXELS=50000000``). Every field is documented in ``docs/settings.md``; a
test fails when one is not.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Settings", "SettingsError", "load_settings", "service_settings"]

ENV_PREFIX = "REFUNDLENS_"


OCR_TEXT_DETECTORS = ("auto", "float", "int8")
"""The values ``ocr_text_detector`` takes."""


class SettingsError(ValueError):
    """A setting has a value of the wrong type or outside its range."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    # --- media limits, checked from the header before any pixel is decoded ---
    max_file_bytes: int = 50 * 1024 * 1024
    """Largest accepted file, in bytes."""
    max_pixels: int = 64_000_000
    """Largest accepted image area, in pixels (width x height)."""
    max_side: int = 16_384
    """Largest accepted width or height, in pixels."""
    bomb_pixels_per_byte: float = 2_000.0
    """An image over ``max_pixels`` whose pixels-per-byte ratio exceeds this is a decompression bomb."""
    max_jpeg_scans: int = 64
    """Most scans a JPEG may hold (counted in its bytes before any is decoded): each scan of a
    progressive JPEG is a pass over every block, so a 220 KB file of 1,000 empty scans took 20 s
    to decode at 8000 x 8000. Cameras write 1, progressive encoders about 10 (the most among
    the 1,144 JPEGs in ../shared/data)."""
    claim_photo_min_side: int = 200
    """Shortest side, in pixels, of a claim photo or a live capture; a smaller one is refused
    (``media.too_small``): it shows a person no damage, and no check can judge it (the reference
    check leaves a 198 px copy of the listing photo unresolved, pixel forensics and the OCR of
    the corners need more). Listing photos and evidence are not bound by it."""
    analysis_side: int = 1024
    """Longest side, in pixels, of the reduced copy that matching and residuals work on."""

    video_max_bytes: int = 500 * 1024 * 1024
    """Largest accepted packing or unboxing video, in bytes."""
    video_max_seconds: float = 600.0
    """Longest accepted video, in seconds (read from the header before decoding)."""
    video_sample_seconds: float = 1.0
    """One frame is decoded per this many seconds of video."""
    video_max_frames: int = 120
    """Most frames decoded from one video."""
    video_max_decode_seconds: float = 60.0
    """Wall-clock budget for decoding one video; decoding stops there with the frames so far."""
    video_max_frame_pixels: int = 4096 * 2160
    """Largest accepted video frame, in pixels (width x height, read from the container header
    before decoding; DCI 4K by default)."""
    video_max_total_pixels: int = 40_000_000_000
    """Largest accepted video, in pixels to decode (frame width x height x the header's frame
    count; ten minutes of 1080p at 30 frames/s). Over it, the video is a bomb."""
    video_frame_side: int = 1024
    """Longest side, in pixels, of the decoded frames kept in memory: each frame is shrunk as
    soon as it is decoded (key frames are stored at this size)."""
    video_key_frames: int = 6
    """Sharp, distinct frames of a packing video kept as references for its order."""

    # --- reference detector ---
    reference_min_inliers: int = 12
    """Fewest RANSAC inliers that confirm a claim/reference match."""
    reference_min_inlier_ratio: float = 0.08
    """Smallest share of tentative matches that must be inliers."""
    reference_pdq_match_distance: int = 31
    """PDQ Hamming distance (of 256 bits) at or below which two images are near-duplicates."""
    reference_agreement_derived: float = 0.60
    """Share of the overlapping object that must agree within ``reference_tolerance`` to call a
    claim derived (the rest may be the edit)."""
    reference_max_edit_share: float = 0.35
    """Largest share of the object that may disagree in a derived image: added damage is local,
    while disagreement over more of the object means another exposure (light, angle)."""
    reference_min_edit_share: float = 0.002
    """Smallest edited area, as a share of the object, reported as an edit (below: identical)."""
    reference_tolerance: float = 10.0
    """Grey levels (0-255) by which a claim pixel may depart from the aligned, normalised
    reference (outside its 3x3 min-max envelope) and still count as agreeing."""
    reference_max_envelope: float = 2.75
    """Largest median envelope residual (grey levels) of a derived image: re-encoding and filters
    stay below it, a new exposure (light, parallax, sensor noise) does not. Tuned on the dev split."""
    reference_near_copy_agreement: float = 0.92
    """A second way to be derived: at least this share agrees within tolerance while the median
    envelope residual stays under ``reference_near_copy_max_envelope``. Heavy recompression or a
    colour shift lifts a copy's envelope a little above ``reference_max_envelope`` without
    lowering its agreement; a new exposure that agrees this well was not seen (dev split: at
    most 0.87). Tuned on the dev split."""
    reference_near_copy_max_envelope: float = 3.25
    """Largest median envelope residual (grey levels) under ``reference_near_copy_agreement``."""
    reference_low_room_pixels: int = 250_000
    """Compared product pixels (analysis resolution) under which a claim leaves little room to
    tell a copy from a new exposure of a static scene: at low resolution and heavy compression
    both agree with the reference at noise level. See ``reference_low_room_min_detail``."""
    reference_low_room_quality: int = 60
    """Claim JPEG quality under which the same holds, whatever the resolution."""
    reference_low_room_min_detail: float = 0.88
    """Where room is low, a copy-like claim is called derived or identical only if its fine
    detail correlates with the reference's at least this much (a copy keeps the reference's
    texture and noise; a new exposure a few seconds apart does not); otherwise it is
    ``near_copy_unresolved`` (ask for a live photo), never escalated on agreement alone."""
    reference_low_room_max_envelope: float = 1.0
    """... or if its envelope residual, scaled for the claim's JPEG quality (``copy_score``'s
    ``envelope_for_quality``), is at most this: a copy departs from the reference well inside
    the compression noise. New photos of a static scene at 348-640 px came at 1.3-1.7 (dev)."""
    reference_moved_min_edit_share: float = 0.15
    """A ``derived`` verdict over at least this share of the product is tested for moved
    content (``reference.moved_content``): two photos of a shelf seconds apart, the item moved
    in the hand, were called derived with 26-34% of the product "edited" (a new user's
    walkthrough); painted damage on the benches changed at most 10%."""
    reference_moved_min_shift_px: float = 5.0
    """... and is ``near_copy_unresolved`` when the changed regions' median optical-flow shift
    (analysis pixels) is at least this ..."""
    reference_moved_max_residual_left: float = 0.7
    """... and following that flow leaves at most this share of their difference."""
    reference_unresolved_agreement: float = 0.70
    """Agreement (share of the product within noise) from which a confirmed match that is not a
    copy is reported as ``near_copy_unresolved`` rather than as a new photo that supports the
    buyer. Set on the dev split: above 0.70, 21 forgeries and 4 honest photos; below, 0 and 192."""
    reference_frame_edge_support: float = 0.6
    """Share of points along a side of the reference's frame, mapped into the claim, at which the
    claim shows a straight edge exactly there, from which that side counts as seen. A photo of the
    merchant's photo on a screen or a print shows its borders; a new photo of the product does
    not. Dev split: 35 of the 41 recaptures that matched had three sides at or above it; of 332
    honest photos, none had a third side above 0.33."""
    reference_frame_min_sides: int = 3
    """Sides of the reference's frame that must be seen (``reference_frame_edge_support``) for a
    confirmed match that is no copy to be reported as ``reference.recaptured``."""
    reference_damage_smooth_ratio: float = 0.5
    """A derived claim's changed area whose high-frequency level is at most this share of the
    photo's around it is described as painted on (smoother than a photographed surface). A
    judgement threshold for a sentence; the ratio itself is always in the facts."""
    reference_damage_repeat_ncc: float = 0.95
    """Normalised cross-correlation from which a derived claim's changed area is described as
    stamped from elsewhere in the same photo (clone tool). A judgement threshold for a sentence."""

    # --- provenance detector ---
    provenance_generators_path: str = ""
    """YAML file of extra generator traces, added to the bundled ``generators.yaml``; empty = none."""

    provenance_producers_path: str = ""
    """YAML file of extra producers (service, names, codes, source), added to the bundled
    ``producers.yaml``: the service a label's ContentProducer names; empty = none."""

    c2pa_trust_anchors_path: str = ""
    """PEM bundle of C2PA trust anchors; empty = no signer is trusted (manifests still count)."""

    provenance_watermark_max_pixels: int = 16_000_000
    """Largest image (pixels) decoded at full resolution for invisible-watermark checks."""

    ocr_enabled: bool = True
    """Read visible AI marks in the corners by OCR (needs the extra refundlens[ocr])."""
    ocr_text_detector: str = "auto"
    """Which weights of the OCR's text detector run: ``float`` (the wheel's own net), ``int8``
    (the same net with 8-bit weights, ``models/ocr_det_int8.onnx``) or ``auto``: int8 where the
    CPU has an 8-bit dot-product instruction ONNX Runtime uses (x86-64 VNNI or AMX), float
    elsewhere. Both read the same labels within one on the visible-marks bench; int8 took 0.54 of
    float's time on one machine and 1.43 times float's time on an AVX2 machine without VNNI
    (bench/results/ocr_det_int8.md, bench/results/visible_marks_passes.md)."""

    # --- capture detector ---
    capture_clock_tolerance_hours: float = 12.0
    """Camera clocks drift and time zones get lost: capture times within this many hours of an
    order event are not held against the buyer."""
    capture_clock_unset_before_year: int = 2001
    """A capture time before 1 January of this year is a camera clock never set (cameras start at
    1970, 1980 or 2000), not a photo of that age: it says nothing about the order
    (``capture.clock_not_set``) and is not drawn on the timeline (a buyer's photo dated year 1
    broke the staff's claim page: a security review)."""
    capture_default_utc_offset: str = "+08:00"
    """UTC offset assumed for an EXIF capture time without OffsetTimeOriginal (China Standard Time)."""
    capture_thumbnail_min_correlation: float = 0.5
    """Below this correlation (-1 to 1) the EXIF thumbnail shows another picture than the image."""

    capture_double_jpeg_min_strength: float = 0.2
    """Coefficient-histogram periodicity (0-1) from which a JPEG counts as compressed twice; camera
    originals in the benchmark stay at or below 0.05."""

    # --- pixels detector (forensics without a reference) ---
    pixels_enabled: bool = True
    """Run pixel forensics (noise, double JPEG, copy-move, recapture, upsampling)."""
    pixels_side: int = 1536
    """Longest side, in pixels, of the copy the noise-residual maps work on (speed against detail)."""
    pixels_moire_side: int = 1024
    """Side, in pixels, of the full-resolution centre square searched for a screen's moire."""
    pixels_anomaly_threshold: float = 0.5
    """Noise-residual anomaly score (0-1) from which ``pixels.noise_inconsistency`` is reported.
    Set on the dev split for at most 1% false positives on authentic photos: the residual map
    separates poorly at image level, so it fires only when extreme (bench/results/forensics.md)."""
    pixels_double_jpeg_threshold: float = 0.5
    """Double-JPEG anomaly score (0-1) from which ``pixels.double_jpeg_inconsistency`` is reported;
    no authentic photo of the benchmark scored above 0."""
    pixels_moire_threshold: float = 4.4
    """Spectral peak height (log units) from which a photo reads as recaptured from a screen."""
    pixels_cfa_block: int = 32
    """Side, in pixels of the file, of the blocks the demosaicing (CFA) pattern is measured on."""
    pixels_cfa_min_strength: float = 0.3
    """Median log energy ratio between the green lattices from which a photo counts as carrying a
    demosaicing pattern at all. Phone photos and every JPEG of the benchmark stay near 0 (the
    camera's processing and the compression erase it; a raw-converted Sony TIFF reaches 0.15);
    below this the CFA map is not computed into evidence."""
    pixels_cfa_min_separation: float = 3.0
    """How many robust standard deviations of the block-to-block variation the pattern's strength
    must reach: only then does a block without it stand out. A Nokia 8.3 HEIF photo carries a weak
    pattern (strength 0.33, spread about 0.2) whose map outlined an honest out-of-focus area."""
    pixels_cfa_threshold: float = 0.5
    """CFA anomaly score (0-1: the region's lack of the pattern against the rest) from which
    ``pixels.cfa_inconsistency`` is reported."""
    pixels_copy_move_min_inliers: int = 34
    """Keypoint pairs that must agree on one transform before a region counts as cloned."""
    pixels_copy_move_side: int = 768
    """Longest side, in pixels, of the copy searched for cloned regions (same clones found at
    1024, 768 and 640 on the dev split; smaller is faster)."""
    pixels_painted_enabled: bool = True
    """Run the small learned net that marks painted, inpainted or re-grained patches
    (refundlens/forensics/learned.py; its weights ship in the wheel)."""
    pixels_painted_threshold: float = 0.92
    """Painted-patch score (0-1: the region's mean probability against the rest of the photo) from
    which ``pixels.painted_patch`` is reported. Set for at most 1% false positives on the dev
    photos of the forensics benchmark that the net never saw (0.917); honest photos reach 0.8
    (smooth and out-of-focus surfaces), so the net's map mostly serves to localise."""

    pixels_residual_enabled: bool = False
    """Run the noise-residual co-occurrence map (``pixels.noise_inconsistency``). Off by default:
    left out in turn on the forensics benchmark's real sets it raised no finding on a real
    forgery, four on authentic photos, and leaving it out raised the image AUC on nine of ten
    real sets (bench/results/forensics.md, "Which maps earn their cost"); a fifth of the cost of
    every map. On for a reviewer who wants its heatmap."""
    pixels_copy_move_enabled: bool = False
    """Search the photo for cloned regions (``pixels.copy_move``). Off by default: on the real
    sets it found one forgery and accused one authentic photo, and costs over half of pixel
    forensics with every map on (same benchmark section)."""
    pixels_cfa_enabled: bool = False
    """Look for the camera's demosaicing pattern (``pixels.cfa_inconsistency``). Off by default:
    no photo of the benchmark's real sets keeps a pattern clear enough to use (phone JPEGs and
    chat copies erase it), so it never changed an answer there."""
    pixels_generator_enabled: bool = False
    """Run the learned generator-trace net (refundlens/forensics/generator_traces.py; its weights
    ship in the wheel) on the working copy. Off by default: the shipped net (trained on a CPU) does
    not beat error-level analysis on the benchmark's test generators (docs/detectors/pixels.md);
    the forensics benchmark runs it on."""
    pixels_generator_threshold: float = 0.996
    """Generator-trace image score (0-1) from which ``pixels.generator_traces`` is reported. Set
    for at most 1% false positives on the dev photos of the forensics benchmark that the net
    never saw (bench/results/forensics.md)."""

    # --- fusion ---
    policy_path: str = ""
    """YAML policy overriding the bundled default (weights, prior, action thresholds); empty = bundled."""

    # --- batch ---
    workers: int = 0
    """Processes used by ``check --batch``; 0 = one per CPU core."""

    # --- claims service ---
    data_dir: str = "refundlens-data"
    """Folder of the embedded default: the SQLite file, the content-addressed blobs, the PII key."""
    database_url: str = ""
    """SQLAlchemy URL (e.g. postgresql+psycopg://user@host/db); empty = SQLite in ``data_dir``."""
    broker_url: str = ""
    """Celery broker (redis://... or amqp://...); empty = analyses run in-process."""
    pii_key: str = ""
    """Fernet key (urlsafe base64, 32 bytes) encrypting buyers' personal data at rest; empty =
    a key file created once in ``data_dir`` (embedded default only; set it in production)."""
    pii_key_file_allowed: bool = False
    """With a database server (``database_url``) and no ``pii_key``, let ``serve`` and
    ``worker`` seal personal data with the key file in ``data_dir`` (a trial). Otherwise they
    refuse to start: that file sits with the blobs every host mounts and goes into their
    backups, beside the data it seals."""
    audit_checkpoint_path: str = ""
    """A file outside the database where the scheduler's tick appends the audit log's head
    (``seq hash time``) whenever it moved, and which ``audit verify`` checks the chain against:
    whoever can write to the database can recompute the whole chain, but not this file. Put it
    where the database's writers cannot (another host's mount, append-only storage); empty = no
    checkpoints, and only edits that leave the chain broken are found."""
    merchant_response_hours: float = 48.0
    """Hours the merchant has to answer a claim with evidence before it goes to a reviewer."""
    capture_window_hours: float = 24.0
    """Hours a buyer has to upload a requested live capture; the case clock pauses meanwhile."""
    review_sla_hours: float = 24.0
    """Hours within which a reviewer should decide; the queue sorts by this deadline."""
    capture_token_max_age_minutes: float = 30.0
    """A live capture must be taken at most this many minutes before its upload."""
    capture_max_live_tokens: int = 3
    """Capture tokens (links) one claim may hold unused and unexpired at once; another request
    is refused (``capture.too_many_tokens``) until one is used or expires."""
    capture_max_links_per_claim: int = 10
    """Capture tokens (links) one claim may be issued in all, used, spent or expired ones
    included; another request is refused (``capture.too_many_links``). With
    ``capture_max_refusals`` this bounds what refused captures one claim can make the API
    process decode and store (10 x 5); an honest buyer needs one or two links."""
    capture_max_photos: int = 3
    """Photos one live capture may send from the capture page (the app sends one per token)."""
    capture_decode_slots: int = 2
    """Live captures (page or API) decoded and checked at once in one API process; another is
    answered 503 ``service.busy`` with ``Retry-After`` before its body is decoded, and a second
    upload on a link whose first is still being checked 409 ``capture.in_progress``. Neither
    counts as a refused capture. Each capture may decode ``capture_max_photos`` pictures of up to
    ``max_pixels``: this bounds the memory anonymous capture links can make the API use."""
    capture_preview_cache_entries: int = 64
    """Filed photos the capture page keeps re-encoded for the buyer to box the damage on (about
    0.1 MB each), so that reloading the page decodes no photo again. 0 keeps none."""
    damage_box_min_side: float = 0.01
    """Smallest width and height, as a fraction of the photo, of the buyer's box around the
    damage (``damage_boxes``; the capture page asks the same): a tap is no box."""
    capture_clip_seconds: float = 5.0
    """Length of the short clip the capture page records beside the photos where the browser has
    MediaRecorder (it stops by itself then); the server refuses a clip more than a second longer.
    0 = the page offers no clip and a clip sent anyway is refused."""
    capture_clip_max_bytes: int = 16 * 1024 * 1024
    """Largest clip one live capture may send, in bytes (never more than this + 1 are read)."""
    capture_clip_check_frames: int = 3
    """Frames of a clip, spread over it, checked like photos for a replay of the claim's photos
    or the shop's (each costs the reference check's time, about that of a photo)."""
    capture_clip_views: int = 2
    """Of those frames, the sharpest this many are compared with the claim's filed photos as
    further live views of the item (the damage seen from more sides); each costs one comparison
    of the consistency check per filed photo (about 0.35-0.7 s of a core). 0 = none."""
    capture_max_refusals: int = 5
    """Captures refused on one capture link (a replayed photo, a photo too old, a clip that
    cannot be used) before the link is spent and the buyer must ask for a new one. Each refusal
    stores what was sent and costs decoding and the replay check in the API process; an honest
    buyer who picked the wrong picture still has several tries. 0 = no limit."""
    capture_max_replay_refusals: int = 3
    """Captures refused on one claim (for any reason), across all its links, after which a capture that repeats
    the claim's own photo is taken instead of refused: recorded as repeating a picture on file,
    and a person decides. Each refusal told the sender that the replay check caught that copy;
    ten links of five refusals let a forger try fifty variants until one passed (a security
    review). A capture that repeats the shop's product photo is never refused for it (below)."""
    capture_blank_max_std: float = 2.0
    """A live photo whose pixels' standard deviation (0-255) is below this shows nothing (a
    covered lens, a camera's first black frame): refused (``capture.blank``), the link kept."""
    capture_clock_skew_seconds: float = 60.0
    """How far apart the clocks of the API processes may be. A live capture's last look for
    replays asks for the photos put on file since its first check began, less this."""
    capture_hmac_key: str = ""
    """Key with which the platform's capture app signs its photos: HMAC-SHA256 of
    ``{token id}.{the file's sha256 in hex}``, hex, header ``X-Capture-Signature`` (the token id
    is the capture token's part before the dot); empty = only the capture time is checked."""
    capture_hmac_unbound_allowed: bool = False
    """Also accept the older app signature over the file's sha256 alone. Such a photo is bound
    to no capture token: one the app signed and the buyer kept unsent can be sent within any
    later capture window. For the time it takes to update the app, not for good."""
    reference_feature_dir: str = ""
    """Where reference features are kept on disk (computed once per reference photo); empty =
    in memory only. The service uses ``<data_dir>/features`` when this is empty."""
    capture_c2pa_trust_anchors_path: str = ""
    """PEM bundle of the CA(s) that sign the platform capture app's C2PA manifests: a live
    capture must carry a manifest trusted under them that declares a camera capture; empty = no
    C2PA check."""
    analysis_stale_minutes: float = 15.0
    """Backstop of the reaper: a claim ``analysing`` this long with neither a heartbeat nor a
    hand-off to the queue on record is re-queued."""
    analysis_heartbeat_seconds: float = 5.0
    """A running analysis records a sign of life (``claims.heartbeat_at``) this often, from a
    thread of its own."""
    analysis_heartbeat_timeout_seconds: float = 45.0
    """An analysis whose last heartbeat is older than this is dead (its worker was killed): the
    tick (every 10 s) re-queues the claim, and the dead attempt counts as a failed one."""
    analysis_requeue_seconds: float = 600.0
    """A claim handed to the queue this long ago and still not started is handed over again (its
    message was lost with the broker); keep it above the longest wait in the queue."""
    readyz_timeout_seconds: float = 2.0
    """How long ``/readyz`` waits for the broker before reporting it unreachable."""
    analysis_early_stop: bool = True
    """Skip the pixel forensics, which can only raise the risk, once cheaper findings already
    escalate a photo (a label, a derived copy, a bank match); False runs every detector on every
    photo (every map for the reviewer's pictures, at their cost in time)."""
    log_format: str = "json"
    """``json`` (one JSON object per line: docs/operations.md lists the fields) or ``plain``,
    for ``serve`` and ``worker``."""
    log_level: str = "info"
    """The lowest level logged by ``serve`` and ``worker``: debug, info, warning, error."""
    api_doc_pages: bool = False
    """Serve FastAPI's Swagger UI and ReDoc pages (``/docs``, ``/redoc``). Off by default: they
    load their script from a CDN, at a floating version, with no integrity check, on the origin
    of the web pages, where a reviewer's session is (a security review). The OpenAPI document
    is served at ``/openapi.json`` either way, and checked in as docs/openapi.json."""
    metrics_dir: str = ""
    """Where every process of a deployment writes its Prometheus samples (prometheus-client's
    multiprocess mode); empty = ``data_dir/metrics``. Shared by the API and the workers."""
    metrics_port: int = 0
    """A port of its own for ``/metrics`` with no key (for the scraper, on ``metrics_host``);
    0 = none: ``/metrics`` is served on the API's port to an admin key only."""
    metrics_host: str = "127.0.0.1"
    """The address the ``metrics_port`` listener binds (keep it off the public network)."""
    sqlite_busy_timeout_seconds: float = 5.0
    """SQLite: how long a request waits for the write lock before it is answered 503
    ``service.busy`` (with ``Retry-After``)."""
    busy_retry_after_seconds: int = 2
    """The ``Retry-After`` (seconds) of a 503 ``service.busy`` answer."""
    requests_per_minute: int = 1200
    """Requests one credential (an API key, a reviewer's or buyer's web session, a capture
    link) may make in a minute, sustained; more are answered 429 ``request.rate_limited``
    with ``Retry-After``, before the body is read. 0: no limit. Static files (``/web/static``)
    and the health, readiness and metrics routes are not counted. Each API process counts on its own unless
    ``rate_limit_redis_url`` is set."""
    request_burst: int = 300
    """Requests one credential may make at once, above ``requests_per_minute``. A claim's page
    loads fifty-odd pictures, each a request of the reviewer's session."""
    anonymous_requests_per_minute: int = 120
    """Requests one client address may make in a minute, sustained, that present no credential
    (the sign-in page, a sign-in link, a request without a key, an unknown path) or whose
    credential is refused (an unknown or revoked key, an expired session or link); more are
    answered 429 ``request.rate_limited``. While an address is past it, credentials it presents
    that this process has not seen accepted are answered 429 without a lookup; those seen
    accepted go on. 0: no limit. Behind a reverse proxy the address is the proxy's unless it is
    named in uvicorn's ``FORWARDED_ALLOW_IPS``."""
    anonymous_request_burst: int = 60
    """Requests one client address may make at once above ``anonymous_requests_per_minute``."""
    rate_limit_redis_url: str = ""
    """Redis (``redis://host:6379/2``) that every API process counts requests in, so that a
    credential's limit holds across them; empty: each process counts its own (N processes let
    a credential make N times ``requests_per_minute``). A Redis that does not answer lets
    requests through (logged once a minute) and is asked again ten seconds later."""
    upload_memory_bytes: int = 1024 * 1024 * 1024
    """Bytes of uploaded files one API process holds in memory at once, over every request
    (a claim's photos and videos, an SKU's photos, evidence, a packing video, the check page's
    photo): before it reads its first file a request reserves its whole body (at most the whole
    budget) and gives it back once answered; requests wait in the order they asked, up to
    ``upload_slot_wait_seconds``, then are answered 503 ``service.busy`` with ``Retry-After``,
    nothing read or stored. 0: no bound. Without it, eight concurrent claims of ten 50 MB
    files held 4 GB before any of them was decoded."""
    upload_decode_slots: int = 2
    """API uploads whose files are decoded and stored at once in one API process (a claim, an
    SKU's photos, evidence, a packing video's header, the claim page's evidence form). Another
    waits up to ``upload_slot_wait_seconds`` for a slot, then is answered 503 ``service.busy``
    with ``Retry-After`` before its files are decoded. A small PNG can hold ``max_pixels`` of
    one colour: each decode may take several hundred MB, so this bounds what concurrent uploads
    can make the API hold."""
    upload_slot_wait_seconds: float = 3.0
    """How long an upload waits for one of the ``upload_decode_slots``."""
    web_heavy_work_slots: int = 2
    """Page requests that run an analysis (the merchant's photo check) or Chromium (the evidence
    report as PDF) at once in one API process; another is answered 503 ``service.busy`` with
    ``Retry-After`` at once, so a logged-in user's loop cannot take every core of the API."""
    embedded_analysis_processes: int = 1
    """Embedded default (no broker): analyses run in this many processes beside the server;
    0 runs them on a thread of the server process itself."""
    analysis_max_attempts: int = 3
    """Analyses of one claim that may fail or die in a row before a person takes the claim
    over without one (never an automatic approval or rejection)."""
    worker_reference_cache_size: int = 32
    task_visibility_timeout_seconds: float = 900.0
    """Redis broker: an analysis not acknowledged within this many seconds (its worker died) is
    handed to another worker. Keep it above the longest analysis."""
    notification_channel: str = "log"
    """Where events go for tenants without a webhook URL: ``log`` or ``package.module:Class``
    (an SMS or e-mail gateway with ``send(event)``; see workers/channels.py)."""
    webhook_max_attempts: int = 36
    """Deliveries tried per webhook event before it is marked failed: the wait doubles from 2 s
    and is capped at 1 h, so 36 attempts span about a day (8, the earlier default, about 8
    minutes: an endpoint down for a few minutes lost its events). ``refundlens webhooks retry``
    sends failed events again."""
    webhook_timeout_seconds: float = 10.0
    """The most one webhook post may take in all, from connecting to the answer's status line:
    an endpoint that drips its answer a byte at a time is given up on then (and not tried again
    that round), so it cannot hold up the tick. Its answer's body is never read."""
    webhook_lease_seconds: float = 300.0
    """How long a deliverer holds the due events it took, in seconds: another deliverer (or this
    one after a crash) sends them again only once the lease has run out (at least once)."""
    tick_lease_seconds: float = 60.0
    """The longest one tick may hold the queueing of claims and videos, in seconds: workers that
    all run Celery's beat take turns; a tick that died holding it lets go then."""
    max_photos_per_claim: int = 9
    """Photos accepted in one claim upload."""
    max_references_per_sku: int = 20
    """Reference photos one SKU may hold (``sku.too_many_references``, counted before any photo
    is decoded; a photo it already holds is not added again): every claim on the SKU is
    compared with each of them."""
    max_evidence_per_party: int = 30
    """Items of evidence (a statement, a file of at most ``max_file_bytes``) each party (buyer,
    merchant, reviewer) may add to one claim (``evidence.too_many``), counted before the file
    is stored: without a bound one party could fill the disk a request at a time."""
    max_videos_per_claim: int = 2
    """Unboxing videos accepted in one claim upload (``claim.too_many_videos``), counted before
    any is read: each costs the analysis up to ``video_max_decode_seconds`` of decoding."""
    web_queue_page_size: int = 50
    """Claims one page of the web queue (``/web/queue``) shows at most, with a link to the next."""
    appeal_window_days: float = 15.0
    """A claim a person decided that nothing changed for this many days becomes ``final``, and
    the event ``claim.final`` says so; an approved one stays ``approved``. Either way no appeal
    reopens it then (``appeal.window_closed``). 0: appeals never close. Nothing closed them before, and a claim
    approved two years ago could still be reopened (a new user's walkthrough: the documented
    state ``final`` was never reached)."""
    appeal_decided_by_another: bool = True
    """An appeal is decided by a person who has not decided the claim before: a reviewer who did
    gives the appealed claim back on appeal, and no earlier decider, reviewer or admin, may take
    it, be given it, or decide it (``claim.own_decision_appealed``) while the appeal is open. A
    contested decision went back to the person who made it (a review). A platform with one
    reviewer then needs an admin for appeals, or sets this to false."""
    max_appeals_per_claim: int = 2
    """Appeals of a claim by each side (the buyer, the merchant, an admin; ``appeal.limit_reached``
    once that side has appealed this many times): each appeal takes a reviewer's time and sends
    the merchant a webhook, and nothing ever closed a claim's appeals. Per side, so that the
    side a decision favoured cannot spend the other's appeals."""
    claims_within_order_amount: bool = True
    """Hold an order's claims together to its amount (``claim.over_order_amount``): each
    claim's amount while open or approved, the decided part of a partial refund, nothing once
    rejected. Claim by claim alone, a buyer was refunded 4 x 90 on a 300 order."""
    max_packing_videos_per_order: int = 3
    """Packing videos one order takes (a video sent again is answered as it is, not counted);
    another is ``order.too_many_videos``. Each is decoded by the shared task runner (up to
    ``video_max_decode_seconds``) and adds up to ``video_key_frames`` references to every claim
    on the order."""
    max_pending_packing_videos_per_shop: int = 10
    """Packing videos of one shop waiting for the task runner at once; another is answered
    ``order.videos_pending`` (429) until some are done: 30 videos of one shop, each a minute of
    decoding, kept every shop's claims waiting (a probe measured 110 s)."""
    order_time_max_ahead_minutes: float = 10.0
    """How far an order's ``shipped_at`` or ``delivered_at`` may lie ahead of this server's clock
    (clocks apart); later is refused (``order.time_ahead``): a time in the future made honest
    photos read as taken before the goods were shipped."""
    order_time_earliest_year: int = 2000
    """An order's ``shipped_at`` or ``delivered_at`` before January 1 of this year (UTC) is
    refused (``order.time_too_early``): no order of this service shipped then, and a time of the
    year 1 stored at a UTC offset overflowed wherever it was shown in the order's zone (the
    order's page and its claims' pages answered 500; a security review)."""
    refile_after_rejection: bool = False
    """Take a new claim of the same type on an order whose claim was rejected (and the rejection
    stands). Off: refused (``claim.rejected_on_order``); the buyer appeals instead, at most
    ``max_appeals_per_claim`` times. Filing again with other photos after each rejection got a
    forger past the person's decision and the appeal limit."""
    max_open_claims_per_order: int = 1
    """Claims one order may have open (not approved, decided or final) at once; another is
    refused (``claim.already_open``) before its files are stored or analysed. One open
    after-sales claim per order, as marketplaces allow: a rejected buyer appeals that claim."""
    max_body_bytes: int = 1024 * 1024
    """Largest request body that is not multipart (JSON, a web form), in bytes; multipart
    uploads may carry (``max_photos_per_claim`` + 1) x ``max_file_bytes``, and the capture
    page's upload ``capture_max_photos`` x ``max_file_bytes`` + ``capture_clip_max_bytes`` +
    this."""
    reuse_max_distance: int = 31
    """PDQ Hamming distance (of 256 bits, at most 31) within which two claim photos are the same."""
    reuse_min_pdq_quality: int = 50
    """PDQ quality (0-100) below which a hash is not matched: flat images collide."""
    reuse_local_feature_candidates: int = 20
    """Earlier claims on the same SKU compared by local features when PDQ finds nothing (crops),
    and the buyer's earlier claims at any shop or SKU compared by their kept local prints."""
    reuse_video_catch_up: int = 4
    """Unboxing videos of earlier claims whose analysis has not finished that an analysis
    fingerprints itself, the latest first, before it compares its own (two claims filed with
    copies of one video and analysed at once by two workers did not see each other's). Each
    costs a decode of that video, only while such claims wait. 0: never."""
    reuse_video_catch_up_minutes: float = 15.0
    """... of claims filed at most this many minutes before this one: the race is between
    claims filed together, and a video that yields no fingerprint (its sampled frames flat) is
    never marked done, so each later analysis within this window decodes it again."""
    reuse_video_min_match_percent: float = 50.0
    """Share of a new video's sampled frames (%) that must match an earlier claim's video for
    ``reuse.video_seen_before`` (vPDQ's query match percentage)."""
    reuse_print_index_photos: int = 20_000
    """Latest claim photos whose local prints each process holds for finding a cropped copy at
    any shop, for any product, by any buyer (``reuse.SketchIndex``): about 1.3 KB of memory a
    photo (26 MB at the default), and about 3 ms of search a thousand photos on one core.
    It holds between half of this and this many; older photos are still found by PDQ, the
    same-SKU check and the buyer's own kept prints. 0 turns the search off."""
    reuse_index_shards: int = 1
    """Shards of the in-memory reuse index (split by the hash's first byte; every query visits all)."""
    reuse_index_late_commit_seconds: float = 600.0
    """How long the in-memory reuse index keeps asking for a fingerprint id it passed over: on
    PostgreSQL a transaction can commit a lower id after a higher one was read. Keep it above
    the longest transaction that adds prints (a claim's filing, a bank import)."""
    backup_signing_key_path: str = ""
    """Ed25519 private key (PEM, ``refundlens backup keygen``) that ``backup create`` signs each
    backup's manifest with (``manifest.sig``). Keep it apart from the backups."""
    backup_trusted_keys: str = ""
    """Public keys (base64, as ``backup keygen`` prints them; comma-separated, for a rotation)
    whose signature ``backup restore`` requires on a backup's manifest; the public key of
    ``backup_signing_key_path`` is trusted too. Neither set: a backup is restored unsigned, with
    a note (a person who can write where backups are kept can then change a dump and its
    manifest together)."""
    bank_name: str = "local"
    """Name of this platform's bank of confirmed forgeries, as exported."""
    bank_signing_key_path: str = ""
    """Ed25519 private key (PEM) that signs exported banks (``refundlens bank keygen``)."""
    bank_trusted_keys_path: str = ""
    """File of trusted bank signers, one ``name base64-public-key`` per line; imports from any
    other signer are refused."""
    bank_buyer_hmac_key: str = ""
    """Key the participating platforms agree on: buyer ids travel only as HMAC-SHA256 under it.
    The services that analyse claims need it too, to find a buyer's own banked forgeries."""
    jurisdiction: str = "cn"
    """Which rules the evidence report lists (``report/jurisdictions.yaml``; information only)."""
    web_session_hours: float = 12.0
    """Hours a web-page login lasts; logging out ends it at once."""
    web_sign_in_link_minutes: float = 15.0
    """Minutes a buyer's one-time sign-in link (``POST /v1/buyers/{id}/sign-in-link``) may be
    used; it works once."""
    web_origins: str = ""
    """Other origins (``https://review.example.com``, comma-separated) the web page's forms may be
    posted from, beside the one the request names itself (a reverse proxy that rewrites Host)."""
    chromium_path: str = "/usr/bin/chromium"
    """Chromium used to render the evidence report as PDF (Debian's package; ``make system-deps``)."""

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def service_settings(settings: Settings) -> Settings:
    """``settings`` as the claims service runs them: what it keeps goes under ``data_dir``
    unless a setting says otherwise (reference features in ``<data_dir>/features``)."""
    if settings.reference_feature_dir:
        return settings
    return dataclasses.replace(settings, reference_feature_dir=f"{settings.data_dir}/features")


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _coerce(name: str, raw: Any, kind: type) -> Any:
    if kind is bool:
        word = str(raw).strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        # A typo read as "off" switched a safety rule off without a word (a new user's
        # walkthrough: REFUNDLENS_OCR_ENABLED=maybe, and claims_within_order_amount=ture would
        # have let claims above their order's amount through).
        raise SettingsError(
            f"setting {name}: cannot read {raw!r} as true or false (true/false, yes/no, on/off, "
            "1/0)"
        )
    try:
        value = kind(raw)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name}: cannot read {raw!r} as {kind.__name__}") from exc
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise SettingsError(f"setting {name}: must not be negative, got {value}")
    return value


NOT_SETTINGS = frozenset({"CONFIG", "SKIP_SYSTEM_DEPS", "LOGGING_SET_UP"})
"""``REFUNDLENS_*`` variables that name no setting: the settings file, the Makefile's switch, and
the mark a process leaves for its children once logging is set up."""
NOT_SETTINGS_PREFIXES = ("BENCH_", "TEST_")
"""Prefixes of the benches' and the tests' own variables."""
_SERVICE_LINKS = re.compile(
    r"(?:[A-Z0-9_]+_)?(?:SERVICE_(?:HOST|PORT\w*)|PORT(?:_\d+_(?:TCP|UDP|SCTP)(?:_(?:ADDR|PORT|PROTO))?)?)"
)
"""What Kubernetes (and Docker's legacy links) set in every container beside a service named
``refundlens`` or ``refundlens-*``: ``REFUNDLENS_PORT``, ``REFUNDLENS_SERVICE_HOST``,
``REFUNDLENS_WORKER_PORT_8000_TCP_ADDR`` (a review: refusing them would stop every pod)."""


def _refuse_unknown_variables(env: Mapping[str, str], kinds: Mapping[str, type]) -> None:
    """Refuse a ``REFUNDLENS_*`` variable that is a near miss of a setting's name, as the
    settings file refuses an unknown key: ``REFUNDLENS_MAX_PIXLES`` was taken without a word,
    and a mistyped ``REFUNDLENS_BROKER_URL`` would quietly run analyses inside the API (an
    integrator's walkthrough). Any other unknown name (a setting a later release retired, a
    platform's own variable) is logged and left alone; the names a container platform sets
    for a service are not even logged."""
    import difflib

    known = {ENV_PREFIX + name.upper() for name in kinds}
    for variable in sorted(env):
        if not variable.startswith(ENV_PREFIX) or variable in known:
            continue
        rest = variable[len(ENV_PREFIX) :]
        if rest in NOT_SETTINGS or rest.startswith(NOT_SETTINGS_PREFIXES):
            continue
        if _SERVICE_LINKS.fullmatch(rest):
            # First: REFUNDLENS_SERVICE_HOST is as near to metrics_host as a typo would be.
            continue
        near = difflib.get_close_matches(variable, known, n=1, cutoff=0.85)
        if near:
            raise SettingsError(
                f"environment variable {variable}: no setting of that name (did you mean "
                f"{near[0]}?); every setting is in docs/settings.md"
            )
        logging.getLogger(__name__).warning(
            "environment variable %s names no setting of this release: ignored", variable
        )


def load_settings(
    env: Mapping[str, str] | None = None, file: str | os.PathLike[str] | None = None
) -> Settings:
    """Build settings from defaults, an optional YAML file and ``REFUNDLENS_*`` variables."""
    env = os.environ if env is None else env
    kinds = {f.name: type(f.default) for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}
    path = file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path}: expected a mapping of setting names")
        for key, raw in loaded.items():
            if key not in kinds:
                raise SettingsError(f"config file {path}: unknown setting {key!r}")
            values[key] = _coerce(key, raw, kinds[key])
    _refuse_unknown_variables(env, kinds)
    for name, kind in kinds.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, raw, kind)
    offset = values.get("capture_default_utc_offset")
    if offset is not None and not re.fullmatch(r"[+-]\d{2}:\d{2}", str(offset)):
        raise SettingsError(
            f"setting capture_default_utc_offset: expected +HH:MM or -HH:MM, got {offset!r}"
        )
    # Zero would give up on every webhook post at once while its thread still delivers it:
    # the event is then sent again, up to webhook_max_attempts times.
    if values.get("webhook_timeout_seconds", 1.0) <= 0:
        raise SettingsError("setting webhook_timeout_seconds: must be more than 0")
    if values.get("web_sign_in_link_minutes", 1.0) <= 0:
        raise SettingsError("setting web_sign_in_link_minutes: must be more than 0")
    redis_url = str(values.get("rate_limit_redis_url", ""))
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            "setting rate_limit_redis_url: expected redis://host:port/db, rediss://... or "
            f"unix://..., got {redis_url!r}"
        )
    if values.get("requests_per_minute", 1) > 0 and values.get("request_burst", 1) < 1:
        raise SettingsError("setting request_burst: must be at least 1 while requests are limited")
    if (
        values.get("anonymous_requests_per_minute", 1) > 0
        and values.get("anonymous_request_burst", 1) < 1
    ):
        raise SettingsError(
            "setting anonymous_request_burst: must be at least 1 while requests are limited"
        )
    detector = values.get("ocr_text_detector")
    if detector is not None and detector not in OCR_TEXT_DETECTORS:
        raise SettingsError(
            f"setting ocr_text_detector: expected one of {', '.join(OCR_TEXT_DETECTORS)}, "
            f"got {detector!r}"
        )
    return Settings(**values)
