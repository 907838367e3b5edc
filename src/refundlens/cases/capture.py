"""Live capture: when a photo cannot be judged alone, the buyer is asked to photograph the
damage now, with a one-time token; the platform's capture app may sign what it takes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

from ..config import Settings
from ..detectors.base import DamageBox
from ..errors import MediaError, RefundlensError
from ..media import Media, media_from_bytes
from ..metrics import metrics
from ..store.blobs import BlobStore
from ..store.interface import (
    NAME_LENGTH,
    CaptureToken,
    Claim,
    ClaimPhoto,
    Evidence,
    Store,
    new_id,
    utcnow,
)
from .actors import Actor, aware
from .intake import add_photo_prints, refuse_repeated_files, refuse_too_small
from .notifications import notify
from .states import ClaimState, transition

__all__ = [
    "CLIP_EVIDENCE_KIND",
    "CLIP_FRAME_EVIDENCE_KIND",
    "CaptureClip",
    "CaptureVia",
    "accept_capture",
    "capture_claim",
    "capture_clip",
    "capture_repeats",
    "capture_signature",
    "capture_tries_left",
    "clip_views",
    "count_refused_capture",
    "filed_photos",
    "frame_name",
    "issue_capture_token",
    "page_captures_allowed",
    "refuse_replayed_capture",
    "retire_capture_links",
    "sharpest_frames",
    "signed_recently",
]


def issue_capture_token(
    store: Store, actor: Actor, claim: Claim, settings: Settings, *, retire_oldest: bool = False
) -> tuple[str, dt.datetime]:
    """A one-time token for a live capture (only while the claim awaits one). Returns (token, expiry).

    Only the hash of a token's secret is kept, so an earlier link cannot be handed out again:
    a buyer who lost one asks for another, up to ``capture_max_live_tokens`` unused and
    unexpired at once (the caller holds the claim's row, so two requests do not both pass).
    ``retire_oldest``: at that bound, the oldest unused link ends instead (the web page's
    button, whose links the buyer never sees: three taps locked a buyer out until the deadline,
    a walkthrough found). Every link still counts under ``capture_max_links_per_claim``."""
    import hashlib
    import secrets

    if claim.state != ClaimState.AWAITING_CAPTURE:
        raise RefundlensError(
            "capture.not_requested", f"The claim is {claim.state}; no live capture is requested."
        )
    now = utcnow()
    issued = store.claims.capture_tokens_of(claim.id)
    if len(issued) >= settings.capture_max_links_per_claim:
        # A spent link frees a slot under capture_max_live_tokens: without this bound, link
        # after link would let refused captures go on (each decoded and stored).
        raise RefundlensError(
            "capture.too_many_links",
            f"This claim was given {len(issued)} capture links already "
            "(capture_max_links_per_claim); a person will look at it.",
        )
    live = [t for t in issued if t.used_at is None and (aware(t.expires_at) or now) > now]
    if retire_oldest and live and len(live) >= settings.capture_max_live_tokens:
        oldest = min(live, key=lambda t: (aware(t.created_at) or now, t.id))
        oldest.expires_at = now
        store.audit.append(
            actor.id, "capture.token_retired", claim_id=claim.id, details={"token": oldest.id}
        )
        live.remove(oldest)
    if len(live) >= settings.capture_max_live_tokens:
        raise RefundlensError(
            "capture.too_many_tokens",
            f"This claim already has {len(live)} unused capture links (capture_max_live_tokens); "
            "use one of them.",
        )
    secret = secrets.token_urlsafe(24)
    # To the minute, as the buyer is shown its deadline (cases/buyer.py): the deadline is set
    # when the analysis ends, so to the microsecond it timed the analysis.
    expires = (
        aware(claim.deadline_at) or (utcnow() + dt.timedelta(hours=settings.capture_window_hours))
    ).replace(second=0, microsecond=0)
    token = CaptureToken(
        id=new_id("cap"),
        claim_id=claim.id,
        secret_hash=hashlib.sha256(secret.encode()).hexdigest(),
        expires_at=expires,
    )
    store.claims.add_capture_token(token)
    store.audit.append(
        actor.id,
        "capture.token_issued",
        claim_id=claim.id,
        details={"token": token.id, "expires_at": expires.isoformat()},
    )
    metrics().capture_requests.labels("link_issued").inc()
    return f"{token.id}.{secret}", expires


def retire_capture_links(store: Store, claim: Claim, now: dt.datetime) -> list[str]:
    """End the claim's unused, unexpired capture links as it stops waiting for a capture, and
    return their ids. A link belongs to the request it was given for: one left alive (its
    expiry is the deadline of that request) came back to life when a person asked for a new
    capture before that deadline, outside the new request's count of links."""
    retired = []
    for token in store.claims.capture_tokens_of(claim.id):
        if token.used_at is None and (aware(token.expires_at) or now) > now:
            token.expires_at = now
            retired.append(token.id)
    return retired


_CAMERA_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


APP_REQUIRED = (
    "This platform takes live photos only from its own capture app, which signs them: "
    "open the claim in the app."
)


def page_captures_allowed(settings: Settings) -> bool:
    """Whether the capture page may take live photos. A platform that signs its capture app's
    photos (``capture_hmac_key``, ``capture_c2pa_trust_anchors_path``) requires that proof; the
    page runs in any browser and can sign nothing (anyone holding the link can post any file
    to it), so there it takes none."""
    return not (settings.capture_hmac_key or settings.capture_c2pa_trust_anchors_path)


def capture_hmac(key: str, token: str, sha256: str) -> str:
    """The capture app's signature of a photo sent on a capture token: HMAC-SHA256 (hex) of
    ``{token id}.{sha256}``. The token id binds the photo to one capture window: a photo signed
    and kept unsent is good for nothing once its token is used or expired."""
    import hashlib
    import hmac

    token_id = token.partition(".")[0]
    return hmac.new(key.encode(), f"{token_id}.{sha256}".encode(), hashlib.sha256).hexdigest()


def capture_signature(
    data: bytes, media: Media, signature: str | None, settings: Settings, token: str
) -> dict[str, Any] | None:
    """How the platform's capture app vouches for a live photo, or None where it signs nothing.

    Two ways, each enabled by its setting: a C2PA manifest signed under the capture app's trust
    anchors (``capture_c2pa_trust_anchors_path``) that declares a camera capture, and an
    HMAC-SHA256 of the capture token's id and the file's sha256 (:func:`capture_hmac`,
    ``capture_hmac_key``, header ``X-Capture-Signature``; over the sha256 alone only where
    ``capture_hmac_unbound_allowed``). Where either is configured, a photo carrying neither
    valid proof is refused."""
    import hashlib
    import hmac

    refusal = "The photo is not signed by the platform's capture app."
    if settings.capture_c2pa_trust_anchors_path:
        from ..media.c2pa_reader import read_c2pa

        facts = read_c2pa(data, media.format, settings.capture_c2pa_trust_anchors_path)
        if facts is not None and facts.state == "trusted":
            created = [a for a in facts.actions if a.action == "c2pa.created"]
            sources = {a.digital_source_type for a in facts.actions if a.digital_source_type}
            if not created or sources - {_CAMERA_SOURCE}:
                raise RefundlensError(
                    "capture.not_live",
                    f"The capture app's manifest does not declare a camera capture (source types: {', '.join(sorted(str(s) for s in sources)) or 'none'}).",
                )
            return {
                "kind": "c2pa",
                "signer": facts.signer_name,
                "issuer": facts.signer_issuer,
                "signed_at": facts.signed_at,
                "claim_generator": facts.claim_generator,
            }
        if facts is not None and not settings.capture_hmac_key:
            raise RefundlensError(
                "capture.bad_signature",
                f"{refusal} Its C2PA manifest is {facts.state}"
                + (f" ({', '.join(facts.status_codes[:3])})" if facts.status_codes else "")
                + ", not signed under the capture app's trust anchors.",
            )
    if settings.capture_hmac_key and signature:
        key = settings.capture_hmac_key
        # Bytes: a header may hold any text, and compare_digest refuses non-ASCII str.
        sent = signature.encode()
        if hmac.compare_digest(capture_hmac(key, token, media.sha256).encode(), sent):
            return {"kind": "hmac", "bound_to_token": True}
        unbound = hmac.new(key.encode(), media.sha256.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(unbound.encode(), sent):
            if settings.capture_hmac_unbound_allowed:
                return {"kind": "hmac", "bound_to_token": False}
            raise RefundlensError(
                "capture.bad_signature",
                f"{refusal} The signature covers the photo but not its capture token: the app "
                "must sign '{token id}.{sha256}' (capture_hmac_unbound_allowed accepts the "
                "older form while the app is updated).",
            )
    if settings.capture_hmac_key or settings.capture_c2pa_trust_anchors_path:
        raise RefundlensError("capture.bad_signature", refusal)
    return None


def _usable_token(
    store: Store, claim: Claim, token: str, now: dt.datetime, *, lock: bool = True
) -> CaptureToken:
    """The claim's capture token row, locked (unless ``lock`` is False: a look that changes
    nothing), if ``token`` may be used now; else the refusal."""
    import hashlib
    import hmac

    token_id, _, secret = token.partition(".")
    row = store.claims.capture_token(token_id, for_update=lock)
    if (
        row is None
        or row.claim_id != claim.id
        or not hmac.compare_digest(row.secret_hash, hashlib.sha256(secret.encode()).hexdigest())
    ):
        raise RefundlensError("capture.bad_token", "The capture token is not valid for this claim.")
    if row.used_at is not None:
        raise RefundlensError(
            "capture.token_used",
            "The capture token was already used, or too many captures were refused on it; ask "
            "for a new one.",
        )
    if (aware(row.expires_at) or now) < now:
        raise RefundlensError(
            "capture.token_expired", "The capture token has expired; ask for a new one."
        )
    if claim.state != ClaimState.AWAITING_CAPTURE:
        raise RefundlensError(
            "capture.not_requested", f"The claim is {claim.state}; no live capture is requested."
        )
    return row


def capture_claim(store: Store, token: str, *, lock: bool = True) -> Claim:
    """The claim a capture link's token is for, if the token may be used now (the capture page
    opens with the token alone: whoever holds the link is the buyer it was given to). ``lock``
    False for a look that changes nothing (showing the page): no row lock for a GET."""
    row = store.claims.capture_token(token.partition(".")[0])
    claim = store.claims.get(row.claim_id, for_update=lock) if row is not None else None
    if claim is None:
        raise RefundlensError("capture.bad_token", "The capture token is not valid for this claim.")
    _usable_token(store, claim, token, utcnow(), lock=lock)
    return claim


def capture_tries_left(store: Store, token: str, settings: Settings) -> int | None:
    """How many more captures may be refused on ``token`` before the link is spent (None: no
    limit is set). An honest buyer whose photo was refused is told how careful to be."""
    if not settings.capture_max_refusals:
        return None
    row = store.claims.capture_token(token.partition(".")[0])
    used = (row.refusals or 0) if row is not None else 0
    return max(0, settings.capture_max_refusals - used)


CaptureVia = Literal["app", "page"]
"""How a capture arrived: the platform's capture app through the API (one photo, signed where
the platform signs), or refundlens's own capture page (the phone's camera in the browser)."""


def check_capture_photo(
    data: bytes,
    media: Media,
    signature: str | None,
    token: str,
    via: CaptureVia,
    now: dt.datetime,
    settings: Settings,
) -> tuple[dict[str, Any] | None, dt.datetime | None]:
    """The checks one photo must pass on its own to be a live capture: it shows something, the
    app's signature (where the platform signs), its capture time. Returns the signature's facts
    and the capture time the file states. The caller runs these before it looks the photo up
    among the pictures on file, so that a stale or blank file is refused as such and never
    tells the sender whether it is on file (the replay check would answer a different refusal:
    a buyer could ask about any picture, five times a link)."""
    refuse_too_small(media, settings)
    _shows_something(media, settings)
    proof = capture_signature(data, media, signature, settings, token) if via == "app" else None
    taken = _fresh(media, proof is not None or via == "page", now, settings)
    if proof is not None:
        signed_recently(proof.get("signed_at"), now, settings)
    return proof, taken


def accept_capture(
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    claim: Claim,
    token: str,
    photos: Sequence[tuple[str, bytes]],
    signature: str | None,
    *,
    via: CaptureVia = "app",
    clip: CaptureClip | None = None,
    damage_boxes: Sequence[DamageBox | tuple[()] | None] = (),
    decoded: Sequence[Media] | None = None,
) -> list[ClaimPhoto]:
    """Check the token, the capture time and (from the app, where the platform signs) the
    signature; add the photos as live and send the claim back to analysis. ``decoded``: the
    photos as the caller's replay check decoded them (one per photo, in order), so that nothing
    is decoded again inside the caller's transaction; None decodes them here.

    Freshness is the server's clock: the token's window, and the upload within
    ``capture_token_max_age_minutes`` of a capture time the file states. From the app, a photo
    with no capture time must be signed. From the capture page the photos are frames the page
    took from the camera (no EXIF): the window alone dates them, and a file that states an older
    capture time (a gallery photo sent through the fallback field) is refused. A photo that
    repeats an earlier one (:func:`capture_repeats`, run by the caller outside the transaction)
    is not accepted: see :func:`refuse_replayed_capture`. A ``clip`` from the capture page
    (checked by :func:`capture_clip`, and for replays by the caller) is kept with the photos as
    evidence of kind :data:`CLIP_EVIDENCE_KIND`, and named in the audit entry. ``damage_boxes``
    (the capture page's first step) are the buyer's boxes around the damage on the claim's filed
    photos (:func:`filed_photos`, in order; None leaves a photo as it was, an empty tuple removes
    its box: :func:`refundlens.cases.parse_box_changes`), kept on those photos and named in the
    audit entry (a removed box as null)."""
    if via == "page" and not page_captures_allowed(settings):
        raise RefundlensError("capture.app_required", APP_REQUIRED)
    if not photos:
        raise RefundlensError("capture.no_photo", "Send at least one photo.")
    most = 1 if via == "app" else settings.capture_max_photos
    if len(photos) > most:
        raise RefundlensError(
            "capture.too_many_photos",
            f"At most {most} photos per live capture (capture_max_photos).",
        )
    refuse_repeated_files(photos, "capture.duplicate_photo")
    now = utcnow()
    row = _usable_token(store, claim, token, now)
    checked = []
    if decoded is not None and len(decoded) != len(photos):
        raise ValueError("decoded: one picture per photo")
    for index, (name, data) in enumerate(photos):
        media = decoded[index] if decoded is not None else media_from_bytes(data, name, settings)
        proof, taken = check_capture_photo(data, media, signature, token, via, now, settings)
        checked.append((name, data, media, proof, taken))
    filed = filed_photos(claim)
    if damage_boxes and len(damage_boxes) != len(filed):
        raise RefundlensError("claim.bad_damage_box", "One damage box (or null) per claim photo.")
    row.used_at = now
    retired = retire_capture_links(store, claim, now)
    claim.capture_request_note = None  # asked and answered: not shown again
    marked: dict[str, list[float] | None] = {}
    for photo, box in zip(filed, damage_boxes, strict=False):
        if box is None or (box == () and photo.damage_box is None):
            continue  # left as it was (nothing on file to remove)
        photo.damage_box = list(box) or None
        marked[photo.sha256] = list(box) or None
    items = []
    for name, data, media, _proof, _taken in checked:
        add_photo_prints(store, claim, media)
        item = ClaimPhoto(
            id=new_id("pho"),
            claim_id=claim.id,
            position=len(claim.photos),
            sha256=blobs.put(data),
            name=name,
            live_capture=True,
        )
        store.claims.add_photo(claim, item)
        items.append(item)
    clip_facts = None
    if clip is not None:
        # The clip, and the frames its replay check passed, kept as they were checked: the
        # analysis compares the filed photos with these (clip_views), not with frames decoded
        # again later under settings that may have changed; each is listed, with its hash, among the claim's evidence.
        kept = [(CLIP_EVIDENCE_KIND, clip.name, clip.data)]
        kept += [(CLIP_FRAME_EVIDENCE_KIND, f.name, f.data) for _, f in clip.sampled]
        for _, frame in clip.sampled:  # one clip serves one claim, as its photos do
            add_photo_prints(store, claim, frame)
        for kind, name, data in kept:
            store.evidence.add(
                Evidence(
                    id=new_id("evd"),
                    claim_id=claim.id,
                    kind=kind,
                    submitted_by=actor.role,
                    sha256=blobs.put(data),
                    name=name,
                )
            )
        clip_facts = clip.facts()
    claim.deadline_at = None
    # Straight back to analysis (the clock was paused while the buyer was asked).
    claim.state = transition(claim.state, ClaimState.ANALYSING).value
    claim.analysing_since = now
    claim.queued_at = None  # back in the outbox until the caller hands it to the queue
    first = checked[0]
    store.audit.append(
        actor.id,
        "capture.accepted",
        claim_id=claim.id,
        details={
            "via": via,
            "sha256": first[2].sha256,
            "photos": [
                {"sha256": m.sha256, "captured_at": t.isoformat() if t else None}
                for _, _, m, _, t in checked
            ],
            "signed": first[3] is not None,
            "signature": first[3],
            "captured_at": first[4].isoformat() if first[4] else None,
            "clip": clip_facts,
            "damage_boxes": marked or None,
            "links_retired": retired or None,
        },
    )
    notify(store, claim.merchant_id, "capture.received", claim)
    metrics().capture_requests.labels(f"accepted_{via}").inc()
    return items


def filed_photos(claim: Claim) -> list[ClaimPhoto]:
    """The photos the buyer filed the claim with (not its live captures), in order: those the
    capture page asks the buyer to mark the damage on."""
    return [p for p in claim.photos if not p.live_capture]


CLIP_EVIDENCE_KIND = "capture_clip"
"""The evidence kind a live capture's clip is kept as (beside ``unboxing_video``)."""
CLIP_FRAME_EVIDENCE_KIND = "capture_clip_frame"
"""... and each frame of it that the replay check passed (a JPEG named by :func:`frame_name`)."""

# A recorder stops a little after its timer: the clip may run this much past capture_clip_seconds.
_CLIP_SLACK_SECONDS = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class CaptureClip:
    """A live capture's short clip, checked: its file, what decoding it found, and the frames
    the replay check compares (each as an image, named by :func:`frame_name`)."""

    name: str
    data: bytes
    sha256: str
    duration_s: float
    frames: int
    """Frames decoded (all of the clip's)."""
    width: int
    height: int
    sampled: tuple[tuple[float, Media], ...]
    """(seconds into the clip, frame) of the ``capture_clip_check_frames`` frames checked."""
    complete: bool = True
    """False where decoding stopped at a packet that could not be decoded: the frames checked
    are those before it (the audit entry says so)."""

    def facts(self) -> dict[str, Any]:
        """What the audit entry ``capture.accepted`` says of the clip."""
        return {
            "name": self.name,
            "sha256": self.sha256,
            "bytes": len(self.data),
            "duration_s": round(self.duration_s, 2),
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "checked_at_s": [round(t, 2) for t, _ in self.sampled],
            "decoded_to_end": self.complete,
        }


def capture_clip(name: str, data: bytes, settings: Settings) -> CaptureClip:
    """Check and decode a short clip sent with a live capture from the capture page, touching no
    store: slow-ish (every frame is decoded), so call it outside any transaction.

    The clip must be at most ``capture_clip_max_bytes`` (``capture.clip_too_large``) and pass the
    video checks of packing and unboxing videos (frame size, frames x size, from the header;
    :func:`refundlens.media.video.read_clip`); it may run at most a second past
    ``capture_clip_seconds``, by its frames' timestamps (``capture.clip_too_long``). Anything
    else that stops it being read is ``capture.bad_clip``, the video check's own code in the
    error's facts (``media_code``)."""
    import io

    from PIL import Image

    from ..media.video import read_clip

    if settings.capture_clip_seconds <= 0:
        raise RefundlensError(
            "capture.bad_clip",
            "This service takes no clip with a live capture (capture_clip_seconds is 0).",
        )
    if len(data) > settings.capture_clip_max_bytes:
        raise RefundlensError(
            "capture.clip_too_large",
            f"The clip is {len(data)} bytes; the limit (capture_clip_max_bytes) is {settings.capture_clip_max_bytes}.",
        )
    limit = settings.capture_clip_seconds + _CLIP_SLACK_SECONDS
    # The header's duration is left to the video limits: a recorder's webm states none, and what
    # FFmpeg estimates instead must not refuse an honest clip. Its frames' timestamps decide.
    bounded = settings.replace(
        video_max_bytes=min(settings.video_max_bytes, settings.capture_clip_max_bytes)
    )
    try:
        video = read_clip(data, bounded, max_seconds=limit, keep=settings.capture_clip_check_frames)
    except MediaError as exc:
        if exc.code == "media.video_too_long":
            raise RefundlensError(
                "capture.clip_too_long",
                f"The clip lasts more than {limit:g} s; record at most {settings.capture_clip_seconds:g} s (capture_clip_seconds).",
                {"media_code": exc.code},
            ) from None
        raise RefundlensError(
            "capture.bad_clip",
            f"The clip cannot be used: {exc.message}",
            {"media_code": exc.code},
        ) from None
    sampled = []
    for frame in video.frames:
        buffer = io.BytesIO()
        Image.fromarray(frame.rgb).save(buffer, "JPEG", quality=95)
        sampled.append(
            (
                frame.seconds,
                media_from_bytes(
                    buffer.getvalue(), frame_name(name, video.sha256, frame.seconds), settings
                ),
            )
        )
    return CaptureClip(
        name=name,
        data=data,
        sha256=video.sha256,
        duration_s=video.duration_s,
        frames=video.decoded,
        width=video.width,
        height=video.height,
        sampled=tuple(sampled),
        complete=video.complete,
    )


_FRAME_NAME = re.compile(r"#([0-9a-f]{16})@\d+(?:\.\d)?s\Z")


def frame_name(clip_name: str, clip_sha256: str, seconds: float) -> str:
    """A clip frame's name, ``clip.webm#<the clip's sha256, 16 hex>@2.5s``: what a reviewer
    reads, and how :func:`clip_views` tells one clip's frames from another's. The buyer names
    clips (the page names every one ``clip.webm``), so the clip's own hash, not its name, keeps
    a second capture's frames from crowding out the first's; the name is cut to leave room for
    the suffix within :data:`NAME_LENGTH`."""
    suffix = f"#{clip_sha256[:16]}@{seconds:.1f}s"
    return clip_name[: NAME_LENGTH - len(suffix)] + suffix


def _clip_of_frame(name: str) -> str:
    """The clip a frame named by :func:`frame_name` came from (its hash); for frames kept
    before frames carried it, the name before ``@``."""
    found = _FRAME_NAME.search(name)
    return found.group(1) if found else name.rpartition("@")[0]


def clip_views(
    stores: Callable[[], AbstractContextManager[Store]],
    blobs: BlobStore,
    settings: Settings,
    claim_id: str,
) -> list[Media]:
    """Frames of the claim's live-capture clips to compare the filed photos with, as further live
    views of the item (``analyze(live_views=...)``): of the frames each clip's replay check
    passed (kept at acceptance as :data:`CLIP_FRAME_EVIDENCE_KIND`), the
    ``capture_clip_views`` sharpest per clip (told apart by the clip's hash in the frame's
    name, :func:`frame_name`). A buyer who films the damage while turning the item
    shows it from more sides than two or three photos do, and a frame that shares the marked
    surface with the claim photo can confirm damage the photos could not. Runs in the task
    runner, outside any transaction; a frame that cannot be read back (a missing blob, a limit
    lowered since) is left out, logged, never failing the analysis."""
    import logging

    if settings.capture_clip_views <= 0:
        return []
    with stores() as store:
        kept = [
            (e.sha256, e.name)
            for e in store.evidence.of_kind(claim_id, CLIP_FRAME_EVIDENCE_KIND)
            if e.sha256 is not None
        ]
    clips: dict[str, list[Media]] = {}
    for sha, name in kept:
        try:
            frame = media_from_bytes(blobs.get(sha), name, settings)
        except (RefundlensError, OSError, ValueError) as exc:
            logging.getLogger("refundlens.workers").warning(
                "claim %s: clip frame %s left out of the views: %s", claim_id, name, exc
            )
            continue
        clips.setdefault(_clip_of_frame(name), []).append(frame)

    views: list[Media] = []
    for frames in clips.values():
        views += sharpest_frames(frames, settings.capture_clip_views)
    return views


def sharpest_frames(frames: Sequence[Media], keep: int) -> list[Media]:
    """The ``keep`` sharpest of one clip's ``frames`` (variance of the Laplacian of the luma: a
    frame blurred by the hand's motion scores low), in the clip's order."""
    import cv2

    def sharpness(frame: Media) -> float:
        grey = cv2.cvtColor(frame.analysis, cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F).var())

    sharpest = sorted(frames, key=sharpness, reverse=True)[: max(0, keep)]
    return [f for f in frames if any(f is s for s in sharpest)]


def signed_recently(signed_at: str | None, now: dt.datetime, settings: Settings) -> None:
    """Refuse a capture-app manifest signed (by the time its timestamp states) longer than
    ``capture_token_max_age_minutes`` before the upload: a photo signed once and kept is no
    live capture. A manifest without a signing time is dated by the file's capture time, where
    it states one, and otherwise by the token's window alone (docs/security.md, known limits:
    the timestamp sits outside what the claim signature covers, so it can be stripped)."""
    if not signed_at:
        return
    try:
        signed = dt.datetime.fromisoformat(signed_at.replace("Z", "+00:00"))
    except ValueError:
        raise RefundlensError(
            "capture.not_live", f"The capture app's signing time {signed_at[:40]!r} is unreadable."
        ) from None
    if signed.tzinfo is None:
        signed = signed.replace(tzinfo=dt.UTC)
    age = (now - signed).total_seconds() / 60
    if not -5 <= age <= settings.capture_token_max_age_minutes:
        raise RefundlensError(
            "capture.not_live",
            f"The capture app signed the photo {_span(age)}; a live capture must be signed "
            f"within {settings.capture_token_max_age_minutes:g} minutes of it.",
        )


def _span(minutes: float) -> str:
    """How long before its upload a photo was taken or signed, as a person says it: "9850970
    minutes before its upload" was a number to work out (a new user's walkthrough)."""
    from ..detectors.capture import how_long

    late = abs(minutes)
    if late < 120:
        words = f"{late:.0f} minutes"
    elif late < 48 * 60:
        words = f"{late / 60:.0f} hours"
    else:
        words = how_long(late / 1440)[0]
    return f"{words} {'before' if minutes >= 0 else 'after'} its upload"


def _fresh(
    media: Media, dated_otherwise: bool, now: dt.datetime, settings: Settings
) -> dt.datetime | None:
    """The capture time the file states, checked against the server's clock; refuses a photo
    that cannot be dated at all (no capture time, nothing else to date it)."""
    taken = media.exif.captured_at()
    if taken is not None:
        from ..media import utc_offset

        if taken.tzinfo is None:  # EXIF without OffsetTimeOriginal: the platform's assumed zone
            taken = taken.replace(tzinfo=utc_offset(settings.capture_default_utc_offset) or dt.UTC)
        age = (now - taken).total_seconds() / 60
        # A little slack into the future for clocks a minute or two ahead.
        if not -5 <= age <= settings.capture_token_max_age_minutes:
            raise RefundlensError(
                "capture.not_live",
                f"The photo was taken {_span(age)}; a live capture must be taken within "
                f"{settings.capture_token_max_age_minutes:g} minutes of it.",
            )
    elif not dated_otherwise:
        raise RefundlensError(
            "capture.not_live",
            "The photo carries no capture time and no capture-app signature: it cannot be shown to be live.",
        )
    return taken


# What the reference check says when a picture is made from another rather than taken anew.
# ``near_copy_unresolved`` ("close, cannot tell") is not among them: two honest shop photos of a
# static product seconds apart can be that close (bench/results/capture_replay.md); a re-sent
# or re-encoded copy is caught by PDQ first.
_COPY_CODES = frozenset({"reference.identical", "reference.derived", "reference.recaptured"})


def capture_repeats(
    photo: Media, earlier: Sequence[tuple[str, Media]], settings: Settings
) -> dict[str, Any] | None:
    """What earlier picture a live capture repeats, or None when it is a new photo.

    ``earlier`` names each picture it is compared with (``claim photo 1``, ``reference 2``): the
    claim's own photos and the SKU's references. A replay is caught two ways:

    - PDQ [1]_ of the whole photo and of its centred crops against the same of each earlier
      picture, within ``reuse_max_distance`` bits (a re-sent or re-encoded file, a crop);
    - the reference check run with the earlier pictures as references: ``identical``,
      ``derived`` or ``recaptured`` (a screenshot, a photo of a screen, an edit) is a copy. A new exposure of the same item is ``same_item_new_photo`` and passes:
      that is what a live capture should be.

    Slow (features of every picture): call it outside any transaction.

    References
    ----------
    .. [1] Facebook, "The TMK+PDQF video-hashing algorithm and the PDQ image similarity
       algorithm", 2019.
    """
    from ..detectors.base import Context
    from ..detectors.reference import ReferenceDetector
    from ..media.fingerprint import hamming

    if not earlier:
        return None
    mine = {"full": photo.pdq, **photo.pdq_centre_crops}
    for label, media in earlier:
        theirs = {"full": media.pdq, **media.pdq_centre_crops}
        pairs = [
            (hamming(a, b), va, vb)
            for va, a in mine.items()
            for vb, b in theirs.items()
            if min(a.quality, b.quality) >= settings.reuse_min_pdq_quality
        ]
        if pairs:
            distance, va, vb = min(pairs)
            if distance <= settings.reuse_max_distance:
                return {
                    "repeats": label,
                    "how": "pdq",
                    "pdq_distance": distance,
                    "variants": [va, vb],
                    "max_distance": settings.reuse_max_distance,
                }
    findings = ReferenceDetector().analyze(
        photo, Context(references=tuple(m for _, m in earlier), settings=settings)
    )
    for finding in findings:
        if finding.code in _COPY_CODES:
            sha = finding.facts.get("reference_sha256")
            found = next((name for name, media in earlier if media.sha256 == sha), None)
            return {
                "repeats": found or "an earlier picture",
                "how": finding.code,
                "strength": round(finding.strength, 3),
                "facts": {
                    k: v for k, v in finding.facts.items() if isinstance(v, (int, float, str))
                },
            }
    return None


def count_refused_capture(
    store: Store,
    settings: Settings,
    actor: Actor,
    claim: Claim,
    token: str,
    refusal: RefundlensError,
    *,
    recorded: bool = False,
) -> None:
    """Count a refused capture on its token (after its transaction rolled back, in a new one):
    the audit log records the refusal (unless ``recorded``: a replay's entry is already
    written), and at ``capture_max_refusals`` the token is spent (``capture.token_spent``): each
    refusal stored what was sent and cost decoding in the API process, and a link must not buy
    that without end. A token that cannot be used (wrong, expired, spent) counts nothing."""
    now = utcnow()
    try:
        row = _usable_token(store, claim, token, now)
    except RefundlensError:
        return
    row.refusals = (row.refusals or 0) + 1
    if not recorded:
        store.audit.append(
            actor.id,
            "capture.refused",
            claim_id=claim.id,
            details={"code": refusal.code, "refusals": row.refusals},
        )
    if settings.capture_max_refusals and row.refusals >= settings.capture_max_refusals:
        row.used_at = now
        store.audit.append(
            actor.id,
            "capture.token_spent",
            claim_id=claim.id,
            details={
                "refusals": row.refusals,
                "capture_max_refusals": settings.capture_max_refusals,
            },
        )


def _shows_something(media: Media, settings: Settings) -> None:
    """Refuse a live photo of one shade (a covered lens, a camera's first black frame, a dark
    room): it shows no damage, and accepting it would spend the buyer's link on nothing. The
    buyer is asked again (the token stays usable)."""
    spread = float(media.analysis.std())
    if spread < settings.capture_blank_max_std:
        raise RefundlensError(
            "capture.blank",
            "The photo shows nothing (it is all one shade: a covered lens or no light). Take "
            "it again with the damage in view and in light.",
            {
                "pixel_std": round(spread, 2),
                "capture_blank_max_std": settings.capture_blank_max_std,
            },
        )


def repeated_meanwhile(
    store: Store, claim: Claim, photo: Media, since: dt.datetime, settings: Settings
) -> dict[str, Any] | None:
    """What a live capture repeats among the photos put on file since its replay check began
    (another claim's photo or live capture, PDQ of the 8 orientations and the centre crops), or
    None. The replay check runs outside any transaction (it decodes and compares pictures): two
    captures of one photo sent at once on two claims would both pass it. Asked again in the
    transaction that accepts the capture, under the audit log's lock (every acceptance takes
    it), it sees what any capture accepted meanwhile put on file. ``since`` is the moment the
    check began, less the clock skew between API processes."""
    import numpy as np

    least = settings.reuse_min_pdq_quality
    mine = [photo.pdq, *photo.pdq_dihedral]
    mine += [h for h in photo.pdq_centre_crops.values() if h.quality >= least]
    rows = [
        r
        for r in store.fingerprints.photo_prints_since(since, least)
        if r.claim_id != claim.id and r.order_id != claim.order_id
    ]
    if not rows:
        return None
    # Held under the lock every writer queues on: all rows against all codes at once.
    theirs = np.frombuffer(b"".join(bytes.fromhex(r.pdq) for r in rows), np.uint8).reshape(-1, 32)
    codes = np.frombuffer(b"".join(h.bits for h in mine), np.uint8).reshape(-1, 32)
    bits = np.unpackbits(theirs[:, None, :] ^ codes[None, :, :], axis=2).sum(axis=2)
    nearest = bits.min(axis=1)
    best = int(nearest.argmin())
    if int(nearest[best]) <= settings.reuse_max_distance:
        row = rows[best]
        return {
            "repeats": "a picture already on file",
            "how": "pdq",
            "pdq_distance": int(nearest[best]),
            "other_claim": row.claim_id,
            "same_buyer": row.buyer_id == claim.buyer_id,
            "meanwhile": True,
        }
    return None


def _clip_frame(seconds: float | None) -> dict[str, Any]:
    """An audit entry's words for a clip's frame (``seconds`` in); none for a photo."""
    return {} if seconds is None else {"clip": True, "clip_frame_s": round(seconds, 2)}


def record_capture_on_file(
    store: Store,
    actor: Actor,
    claim: Claim,
    photo: tuple[str, bytes],
    repeats: dict[str, Any],
    clip_frame_s: float | None = None,
) -> None:
    """Record, in the transaction that accepts a capture, that one of its photos (or a frame of
    its clip, ``clip_frame_s`` seconds in) repeats a picture on file elsewhere: another claim's
    photo or a bank entry (``repeats``, as :func:`refundlens.reuse.history.repeats_on_file` or
    :func:`repeated_meanwhile` found it). The capture is accepted all the same, so that the
    answer tells the sender nothing about what is on file; the analysis that follows finds the
    repeat (``reuse.seen_before``, ``reuse.bank_match``) and a person decides."""
    import hashlib

    where = _clip_frame(clip_frame_s)
    store.audit.append(
        actor.id,
        "capture.repeats_on_file",
        claim_id=claim.id,
        details={
            "sha256": hashlib.sha256(photo[1]).hexdigest(),
            "name": photo[0],
            **where,
            **repeats,
        },
    )


def refuse_replayed_capture(
    store: Store,
    blobs: BlobStore,
    actor: Actor,
    claim: Claim,
    token: str,
    photo: tuple[str, bytes],
    repeats: dict[str, Any],
    *,
    clip_frame_s: float | None = None,
) -> RefundlensError:
    """Record that a capture repeated an earlier picture (the file is kept, the audit log says
    which picture and how it was found) and return the refusal for the caller to answer with
    once this is committed. The token stays usable: a person in a hurry who picked the wrong
    picture can still take a new one before the window ends. ``photo`` may be a clip, one of
    whose frames (``clip_frame_s`` seconds in) repeated the picture."""
    now = utcnow()
    _usable_token(store, claim, token, now)
    sha = blobs.put(photo[1])
    where = _clip_frame(clip_frame_s)
    store.audit.append(
        actor.id,
        "capture.refused",
        claim_id=claim.id,
        details={"code": "capture.replayed", "sha256": sha, "name": photo[0], **where, **repeats},
    )
    metrics().capture_requests.labels("refused_replay").inc()
    what = "This photo" if clip_frame_s is None else f"The clip (its frame at {clip_frame_s:.1f} s)"
    # One answer whatever was repeated: naming the shop's photo would tell a forger that an edit
    # of it was traced back, and let it try variants until none is (the audit entry says which).
    return RefundlensError(
        "capture.replayed",
        f"{what} repeats a picture already on file: a live capture must be a new photo of the "
        "item, taken now with the camera.",
    )
