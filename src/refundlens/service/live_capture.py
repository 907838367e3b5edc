"""One way in for a live capture, from the app's API route and from the capture page alike.

Three steps, so that no transaction waits on decoding or on the reference check (on SQLite one
open write transaction stops every other writer): read the claim's files; outside any
transaction, decode the capture page's clip where one came (:func:`refundlens.cases.capture_clip`:
a bad or oversized clip fails the whole capture here, before anything is stored), run each
photo's own checks (:func:`refundlens.cases.check_capture_photo`) and check that each new photo,
and a few frames of the clip, repeat none of the claim's photos or the SKU's references
(:func:`refundlens.cases.capture_repeats`: a repeat of the claim's own photo is refused,
recorded and answered, at most ``capture_max_replay_refusals`` times a claim; a repeat of the
shop's photo, or one past that count, is taken and recorded as below); then, in one
transaction under the audit log's lock, accept the photos (and the clip) and send the claim back
to analysis, each photo as the check decoded it.

A photo that repeats a picture on file elsewhere (another claim's photo, a bank entry:
:func:`refundlens.reuse.history.repeats_on_file`, and, looked up again under the lock, one put
on file since the check began: :func:`refundlens.cases.repeated_meanwhile`) is accepted like any
other and recorded (``capture.repeats_on_file``): the analysis that follows finds it
(``reuse.seen_before``, ``reuse.bank_match``) and a person decides. Refusing it answered the
sender, about any picture, whether it was on file in any buyer's claim or the bank, five times
a link; and a refusal for the shop's photo told a forger that its edit of the shop's photo was
traced, where its claim photo was no copy of it (a security review). The routes
read the upload and take the capture inside :func:`capture_slot`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy.orm import Session

from .. import cases
from ..errors import RefundlensError
from ..media import Media, media_from_bytes
from ..metrics import metrics
from ..reuse.history import repeats_on_file
from ..runtime import Runtime
from ..store.interface import FileRef
from ..store.sql.models import Claim, Order
from ..store.sql.repositories import SqlStore

log = logging.getLogger(__name__)

SHOP_PHOTO = "the shop's product photo"
"""How a capture's replay check names the SKU's references (the claim's photos by name)."""

__all__ = ["capture_slot", "take_capture"]


@contextlib.contextmanager
def capture_slot(runtime: Runtime, token: str) -> Iterator[None]:
    """One of the process's ``capture_decode_slots``, and the link to itself, while a capture's
    upload is read, decoded and checked: anonymous links cannot make the API hold or decode
    pictures without bound. A refusal here reads nothing and does not count against the link."""
    link = token.partition(".")[0]
    with runtime.captures_lock:
        if link in runtime.captures_in_flight:
            raise RefundlensError(
                "capture.in_progress",
                "Photos sent on this link are still being checked; wait for that answer.",
            )
        if not runtime.capture_work.acquire(blocking=False):
            log.warning(
                "capture busy: every one of capture_decode_slots (%d) held",
                runtime.settings.capture_decode_slots,
            )
            raise RefundlensError(
                "service.busy", "Other live captures are being checked; send again shortly."
            )
        runtime.captures_in_flight.add(link)
    try:
        yield
    finally:
        with runtime.captures_lock:
            runtime.captures_in_flight.discard(link)
        runtime.capture_work.release()


def take_capture(
    runtime: Runtime,
    actor: cases.Actor,
    find_claim: Callable[[Session], Claim],
    token: str,
    photos: Sequence[tuple[str, bytes]],
    signature: str | None,
    via: cases.CaptureVia,
    clip: tuple[str, bytes] | None = None,
    damage_boxes: str = "",
) -> str:
    """Accept ``photos`` (and the page's ``clip``, where one came) as the live capture of the
    claim ``find_claim`` names (it raises when the caller may not act on it) and return the
    claim's id; a replay raises ``capture.replayed`` after its refusal is committed.
    ``damage_boxes`` (the page's JSON, :func:`refundlens.cases.parse_box_changes`) change the
    buyer's boxes around the damage on the claim's filed photos. Every refusal once decoding
    has begun is counted on the token (:func:`refundlens.cases.count_refused_capture`)."""
    settings = runtime.settings
    cases.refuse_repeated_files(photos, "capture.duplicate_photo")  # before any decoding
    with runtime.db.session() as s:  # rows only: nothing is decoded in a transaction
        claim = find_claim(s)
        claim_id = claim.id
        boxes = cases.parse_box_changes(damage_boxes, len(cases.filed_photos(claim)), settings)
        # Every reference, however late: a capture repeating any is no new photo.
        files = cases.input_files(SqlStore(s), claim_id, as_filed=False)
    try:
        checked_clip = cases.capture_clip(clip[0], clip[1], settings) if clip is not None else None
        # Less the clock skew between API processes: the prints' times are their writers'.
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.capture_clock_skew_seconds)
        pictures, on_file = _refuse_replays(
            runtime, actor, find_claim, claim_id, token, photos, clip, checked_clip, files,
            signature, via,
        )  # fmt: skip
        with runtime.db.session() as s:
            store = SqlStore(s)
            claim = find_claim(s)  # the claim's row first, as every writer locks them
            # Then the audit log's lock, which every acceptance takes: a capture of the same
            # photo accepted on another claim since the check began is committed now, on file.
            store.audit.lock()
            # One acceptance, whatever is on file elsewhere (the module's note says why).
            checked_already = {(id(sent), seconds) for sent, seconds, _ in on_file}
            for sent, seconds, picture in pictures:
                if (id(sent), seconds) in checked_already:
                    continue
                repeats = cases.repeated_meanwhile(store, claim, picture, since, settings)
                if repeats is not None:
                    on_file.append((sent, seconds, repeats))
            cases.accept_capture(
                store,
                runtime.blobs,
                settings,
                actor,
                claim,
                token,
                photos,
                signature,
                via=via,
                clip=checked_clip,
                damage_boxes=boxes if any(b is not None for b in boxes) else (),
                # decoded by the replay check, outside the transaction: nothing is decoded
                # under the audit log's lock
                decoded=[picture for _, seconds, picture in pictures if seconds is None],
            )
            for sent, seconds, repeats in on_file:
                cases.record_capture_on_file(store, actor, claim, sent, repeats, seconds)
            if on_file:  # once a capture (it is counted as accepted too)
                metrics().capture_requests.labels("repeats_on_file").inc()
    except RefundlensError as refusal:
        if refusal.code != "capture.replayed":  # a replay was counted where it was recorded
            with runtime.db.session() as s:
                cases.count_refused_capture(
                    SqlStore(s), settings, actor, find_claim(s), token, refusal
                )
        raise
    return claim_id


def _refuse_replays(
    runtime: Runtime,
    actor: cases.Actor,
    find_claim: Callable[[Session], Claim],
    claim_id: str,
    token: str,
    photos: Sequence[tuple[str, bytes]],
    clip: tuple[str, bytes] | None,
    checked_clip: cases.CaptureClip | None,
    files: tuple[list[FileRef], list[FileRef], Order],
    signature: str | None,
    via: cases.CaptureVia,
) -> tuple[
    list[tuple[tuple[str, bytes], float | None, Media]],
    list[tuple[tuple[str, bytes], float | None, dict[str, Any]]],
]:
    """Outside any transaction, check that each new photo, and the clip's checked frames,
    repeat none of the claim's photos or the SKU's references; the first that does is recorded
    (committed, counted on the token) and its refusal raised. Else the pictures checked (what
    was sent, the clip frame's time, None for a photo, its decoded picture), and those that
    repeat a picture on file elsewhere, with what they repeat (accepted, and recorded)."""
    settings = runtime.settings
    photo_files, reference_files, order = files
    earlier_photos, references = cases.decode_inputs(
        runtime.blobs, settings, photo_files, reference_files, runtime.references
    )
    earlier = [(f"your claim photo {m.name!r}", m) for m in earlier_photos] + [
        (SHOP_PHOTO, m) for m in references
    ]
    history = runtime.history(claim_id, order)
    candidates: list[tuple[tuple[str, bytes], float | None, Media]] = [
        ((name, data), None, media_from_bytes(data, name, settings)) for name, data in photos
    ]
    # Each photo's own checks first: a stale, unsigned or blank file is refused as that, and
    # never learns whether it is on file (accept_capture runs them again, in its transaction).
    now = dt.datetime.now(dt.UTC)
    for (_name, data), _seconds, picture in candidates:
        cases.check_capture_photo(data, picture, signature, token, via, now, settings)
    if checked_clip is not None and clip is not None:
        candidates += [(clip, seconds, frame) for seconds, frame in checked_clip.sampled]
    # Every photo and frame against the claim's own photos and the shop's first: a capture
    # refused for that never looks anything up on file elsewhere (its answer, and its time,
    # would otherwise differ with what is on file).
    on_file: list[tuple[tuple[str, bytes], float | None, dict[str, Any]]] = []
    for sent, seconds, picture in candidates:
        repeats = cases.capture_repeats(picture, earlier, settings)
        if repeats is None:
            continue
        refusal = None
        with runtime.db.session() as s:
            store, claim = SqlStore(s), find_claim(s)
            # A refusal is an answer: "this copy was caught". For the shop's photo it told a
            # forger whose claim photo was no copy of it that an edit of the shop's photo was
            # traced; and fifty refusals across ten links let it try variants of its own photo
            # until one passed (a security review). Those captures are taken instead, recorded
            # as repeating a picture on file, and a person decides: the answer says nothing.
            silent = (
                repeats.get("repeats") == SHOP_PHOTO
                or store.audit.count(claim.id, "capture.refused")
                >= settings.capture_max_replay_refusals
            )
            if not silent:
                refusal = cases.refuse_replayed_capture(
                    store, runtime.blobs, actor, claim, token, sent, repeats, clip_frame_s=seconds
                )
                cases.count_refused_capture(
                    store, settings, actor, claim, token, refusal, recorded=True
                )
        if refusal is not None:
            raise refusal
        on_file.append((sent, seconds, repeats))
    repeating = {(id(sent), seconds) for sent, seconds, _ in on_file}
    for sent, seconds, picture in candidates:
        if (id(sent), seconds) in repeating:
            continue
        elsewhere = repeats_on_file(history, picture, settings.reuse_min_pdq_quality)
        if elsewhere is not None:
            on_file.append((sent, seconds, elsewhere))
    return candidates, on_file
