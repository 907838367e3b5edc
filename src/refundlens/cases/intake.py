"""Intake: a claim's files checked, decoded, fingerprinted and stored, then the claim filed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence

from ..config import Settings
from ..detectors.base import DamageBox
from ..errors import MediaError, RefundlensError
from ..media import Media, media_from_bytes
from ..metrics import metrics
from ..pipeline import describe_refusal
from ..store.blobs import BlobStore
from ..store.interface import (
    Claim,
    ClaimFingerprint,
    ClaimPhoto,
    Evidence,
    Order,
    Store,
    new_id,
)
from .actors import Actor
from .notifications import notify
from .routing import CLAIM_TYPES
from .states import ClaimState

__all__ = [
    "CLOSED_STATES",
    "REMOVED_BOX",
    "ClaimFiles",
    "PhotoTooSmall",
    "check_claim_request",
    "check_rejected_on_order",
    "create_claim",
    "parse_box_changes",
    "parse_damage_boxes",
    "prepare_claim_files",
    "record_refused_file",
    "refuse_too_small",
]


@dataclasses.dataclass(frozen=True)
class ClaimFiles:
    """A claim's photos and videos decoded, fingerprinted and stored: the slow part of filing a
    claim, done before any database transaction (see :func:`prepare_claim_files`)."""

    photos: list[tuple[str, str, Media]]  # name, sha256, media
    videos: list[tuple[str, str]]  # name, sha256 (checked from the header; decoded by the worker)
    local_prints: dict[str, str] = dataclasses.field(default_factory=dict)
    """Each photo's local print (``reuse.prints``, as text) by sha256: kept on its whole-photo
    fingerprint row, for the bank entry a confirmed forgery makes of it."""


CLOSED_STATES: tuple[str, ...] = (
    ClaimState.APPROVED.value,
    ClaimState.DECIDED.value,
    ClaimState.FINAL.value,
)
"""States in which a claim no longer counts as open (as for ``claim.closed``): an appeal
reopens an approved or decided claim."""


def check_open_claims(store: Store, settings: Settings, order: Order) -> None:
    """Refuse another claim on an order that has ``max_open_claims_per_order`` open already:
    each claim starts a full analysis, so one order must not multiply them."""
    most = settings.max_open_claims_per_order
    if store.claims.open_on_order(order.id, CLOSED_STATES) >= most:
        raise RefundlensError(
            "claim.already_open",
            f"This order already has {most} open claim{'s' if most != 1 else ''}: add evidence "
            "to it, or wait for its decision and appeal that (max_open_claims_per_order).",
        )


def check_claim_request(
    order: Order,
    claim_type: str,
    amount: float,
    *,
    store: Store | None = None,
    settings: Settings | None = None,
) -> None:
    """What can be refused about a claim without its files. Callers check it before
    :func:`prepare_claim_files`, which stores the files: a refused claim then leaves none.
    With ``store`` and ``settings``, an order with its open claims at the limit is refused too."""
    if claim_type not in CLAIM_TYPES:
        raise RefundlensError(
            "claim.bad_type",
            f"Claim type must be one of {', '.join(CLAIM_TYPES)}, not {claim_type!r}.",
        )
    if not math.isfinite(amount) or amount < 0 or amount > order.amount:
        raise RefundlensError(
            "claim.bad_amount", f"The amount must be between 0 and the order's {order.amount:g}."
        )
    if store is not None and settings is not None:
        check_open_claims(store, settings, order)
    if store is not None and (settings is None or not settings.refile_after_rejection):
        check_rejected_on_order(store, order, claim_type)
    if store is not None and (settings is None or settings.claims_within_order_amount):
        check_order_amount(store, order, amount)


def check_rejected_on_order(store: Store, order: Order, claim_type: str) -> None:
    """Refuse a claim of the type of one on this order whose rejection (or partial refund, a
    rejection of the rest) stands: a rejection is
    contested by appeal (``max_appeals_per_claim``), not by filing again with other photos until
    one is approved. A claim of another type (a return after a refund-only claim was refused) is
    taken, and goes to a person (``ClaimFacts.order_rejected_before``)."""
    for claim_id, rejected_type in store.claims.rejected_on_order(order.id):
        if rejected_type == claim_type:
            raise RefundlensError(
                "claim.rejected_on_order",
                f"A {claim_type} claim on this order was rejected, or refunded in part "
                f"({claim_id}); appeal that claim instead of filing another.",
            )


def check_order_amount(
    store: Store, order: Order, amount: float, *, besides: str | None = None
) -> None:
    """Refuse ``amount`` more on ``order`` where its claims (all of them, or all ``besides``
    one claim) already ask for or were granted more than the rest of its amount. Claim by claim,
    each within the order's amount, a buyer was refunded 4 x 90 on a 300 order; and a claim
    rejected, then approved on appeal after another took the amount, would pay it twice."""
    held = store.claims.claimed_on_order(order.id, besides=besides)
    # To the cent: a float's last digit must not refuse an amount that fits. A difference, not
    # round(100 * x): an amount stored before amounts were bounded (1e308) overflowed that.
    if held + amount - order.amount >= 0.005:
        raise RefundlensError(
            "claim.over_order_amount",
            f"The order's other claims already ask for or were granted {held:g} of its "
            f"{order.amount:g}; at most {max(0.0, order.amount - held):g} more can be "
            "claimed or granted.",
        )


def check_file_counts(photos: int, videos: int, settings: Settings) -> None:
    """Refuse more photos than ``max_photos_per_claim`` or videos than ``max_videos_per_claim``:
    asked before a file is read, since each video costs the analysis up to
    ``video_max_decode_seconds`` of decoding."""
    if photos > settings.max_photos_per_claim:
        raise RefundlensError(
            "claim.too_many_photos",
            f"At most {settings.max_photos_per_claim} photos per claim (max_photos_per_claim).",
        )
    if videos > settings.max_videos_per_claim:
        raise RefundlensError(
            "claim.too_many_videos",
            f"At most {settings.max_videos_per_claim} videos per claim (max_videos_per_claim).",
        )


def prepare_claim_files(
    blobs: BlobStore,
    settings: Settings,
    claim_type: str,
    photos: Sequence[tuple[str, bytes]],
    videos: Sequence[tuple[str, bytes]] = (),
) -> ClaimFiles:
    """Check, decode, fingerprint and store a claim's files, touching no database: a bad file
    fails the request before anything is saved, and no transaction (on SQLite, the one writer
    at a time) waits on the decoding of a 12 MP photo or of a video."""
    if claim_type not in CLAIM_TYPES:
        raise RefundlensError(
            "claim.bad_type",
            f"Claim type must be one of {', '.join(CLAIM_TYPES)}, not {claim_type!r}.",
        )
    check_file_counts(len(photos), len(videos), settings)
    from ..media.video import probe_video

    refuse_repeated_files(photos, "claim.duplicate_photo")
    decoded = []
    for index, (name, data) in enumerate(photos):
        try:
            media = media_from_bytes(data, name, settings)
            refuse_too_small(media, settings)
            decoded.append((name, data, media))
        except RefundlensError as exc:  # with several photos, say which one
            # Still refused, but what a refused file's metadata says (an animated ComfyUI
            # output names its generator) goes into the error's facts and the audit log.
            raise describe_refusal(exc, settings).about_file(index, name) from None
    # Videos are checked from their container header only: their frames are decoded and
    # fingerprinted by the analysis, in the task runner (unboxing_video_frames).
    for index, (name, data) in enumerate(videos):
        try:
            probe_video(data, settings)
        except RefundlensError as exc:
            raise exc.about_file(index, name, "videos") from None
    from ..reuse.prints import local_print

    return ClaimFiles(
        photos=[(name, blobs.put(data), media) for name, data, media in decoded],
        videos=[(name, blobs.put(data)) for name, data in videos],
        # ORB on a 512 px copy, a few milliseconds a photo: here, outside any transaction.
        local_prints={
            media.sha256: local_print(media.analysis).to_text() for _, _, media in decoded
        },
    )


class PhotoTooSmall(MediaError):
    """``media.too_small``, with the decoded picture (``still``) whose metadata is still read."""

    def __init__(self, still: Media, message: str, facts: dict[str, object]) -> None:
        super().__init__("media.too_small", message, facts)
        self.still = still


def refuse_too_small(media: Media, settings: Settings) -> None:
    """Refuse a claim photo or a live capture whose shortest side is under
    ``claim_photo_min_side`` (``media.too_small``). The refusal keeps the decoded picture
    (``still``) so that what its metadata says (a generator's name) is read into the error and
    the audit log as for an animated file (:func:`refundlens.pipeline.describe_refusal`)."""
    side = min(media.width, media.height)
    if side < settings.claim_photo_min_side:
        raise PhotoTooSmall(
            media,
            f"The photo is {media.width} x {media.height} pixels; send one whose shorter side "
            f"is at least {settings.claim_photo_min_side} pixels, with the damage in view.",
            {
                "width": media.width,
                "height": media.height,
                "claim_photo_min_side": settings.claim_photo_min_side,
            },
        )


def add_photo_prints(
    store: Store, claim: Claim, media: Media, local_print: str | None = None
) -> None:
    """Index a claim photo for reuse: PDQ of the whole photo and of its centred crops, each a
    row that later claims, live captures and the forgery bank are compared with. Every photo a
    claim holds is indexed, a live capture's too: one capture must not serve several claims.
    ``local_print`` (a filed photo's, :class:`ClaimFiles`) goes on the whole-photo row."""
    for variant, code in {"full": media.pdq, **media.pdq_centre_crops}.items():
        store.fingerprints.add_photo_print(
            ClaimFingerprint(
                claim_id=claim.id,
                order_id=claim.order_id,
                buyer_id=claim.buyer_id,
                merchant_id=claim.merchant_id,
                photo_sha256=media.sha256,
                variant=variant,
                pdq=code.hex,
                quality=code.quality,
                local_print=local_print if variant == "full" else None,
            )
        )


def refuse_repeated_files(files: Sequence[tuple[str, bytes]], code: str) -> None:
    """Refuse the same file sent twice in one request: two exposures never give the same bytes,
    so a repeated file adds no view of the damage, and two views of one file would agree with
    each other by construction."""
    seen: dict[str, int] = {}
    for index, (name, data) in enumerate(files):
        digest = hashlib.sha256(data).hexdigest()
        if digest in seen:
            raise RefundlensError(
                code,
                f"Photos {seen[digest] + 1} and {index + 1} are the same file ({name!r}): send "
                "each photo once.",
            )
        seen[digest] = index


REMOVED_BOX: tuple[()] = ()
"""In a change of boxes (:func:`parse_box_changes`): the photo's earlier box is removed."""


def _plain_number(v: object) -> bool:
    """A JSON number a box may hold: finite, and an integer small enough to be a float (a
    310-digit integer made ``math.isfinite`` raise OverflowError: a 500 to an anonymous capture
    page, and a whole CLI batch stopped; a security review)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return -(10**6) <= v <= 10**6
    return isinstance(v, float) and math.isfinite(v)


def parse_damage_boxes(text: str, count: int, settings: Settings) -> list[DamageBox | None]:
    """The buyer's boxes around the damage, one per photo in the photos' order: a JSON array of
    ``null`` (not marked) or ``[left, top, right, bottom]``, fractions of the photo's width and
    height as it is shown, each side at least ``damage_box_min_side`` (a tap is no box). Empty text: no
    photo marked. At most 100 characters a photo are read: a box needs fewer."""
    return [b or None for b in _parse_boxes(text, count, settings, removable=False)]


def parse_box_changes(
    text: str, count: int, settings: Settings
) -> list[DamageBox | tuple[()] | None]:
    """As :func:`parse_damage_boxes`, for boxes that change those on file (the live capture's
    first step): ``null`` leaves the photo's box as it was, ``[]`` removes it
    (:data:`REMOVED_BOX`), a box replaces it."""
    return _parse_boxes(text, count, settings, removable=True)


def _parse_boxes(
    text: str, count: int, settings: Settings, *, removable: bool
) -> list[DamageBox | tuple[()] | None]:
    if not text.strip():
        return [None] * count

    def bad(why: str) -> RefundlensError:
        removal = ", [] (remove the box on file)" if removable else ""
        return RefundlensError(
            "claim.bad_damage_box",
            f"damage_boxes: {why}. Send a JSON array with one entry per photo, in order: null{removal}, "
            "or [left, top, right, bottom] as fractions (0 to 1) of the photo's width and height.",
        )

    if len(text) > 100 * max(1, count) + 16:
        raise bad(f"{len(text)} characters, more than {count} boxes take")
    try:
        boxes = json.loads(text)
    except (ValueError, RecursionError):  # nesting deep enough to stop the parser: a 400 too
        raise bad("not JSON") from None
    if not isinstance(boxes, list):
        raise bad("not a JSON array")
    if len(boxes) != count:
        raise bad(f"expected {count} entries (one per photo), got {len(boxes)}")
    out: list[DamageBox | tuple[()] | None] = []
    for i, box in enumerate(boxes):
        if box is None:
            out.append(None)
            continue
        if removable and box == []:
            out.append(REMOVED_BOX)
            continue
        if not isinstance(box, list) or len(box) != 4 or not all(_plain_number(v) for v in box):
            raise bad(f"entry {i} is not null or four numbers")
        left, top, right, bottom = (float(v) for v in box)
        if not (0 <= left < right <= 1 and 0 <= top < bottom <= 1):
            raise bad(
                f"entry {i} is not a box inside the photo (0 <= left < right <= 1, same for top, bottom)"
            )
        least = settings.damage_box_min_side
        if right - left < least or bottom - top < least:
            raise bad(f"entry {i} is narrower than {least:g} of the photo (damage_box_min_side)")
        out.append((left, top, right, bottom))
    return out


def create_claim(
    store: Store,
    blobs: BlobStore,
    settings: Settings,
    actor: Actor,
    order: Order,
    claim_type: str,
    reason: str,
    amount: float,
    photos: Sequence[tuple[str, bytes]] | ClaimFiles,
    videos: Sequence[tuple[str, bytes]] = (),
    damage_boxes: Sequence[DamageBox | None] = (),
) -> Claim:
    """File a claim. ``photos`` are the raw files (with ``videos``), or what
    :func:`prepare_claim_files` made of them outside the transaction; ``damage_boxes`` the
    buyer's box around the damage on each (:func:`parse_damage_boxes`), if any."""
    check_claim_request(order, claim_type, amount, store=store, settings=settings)
    files = (
        photos
        if isinstance(photos, ClaimFiles)
        else prepare_claim_files(blobs, settings, claim_type, photos, videos)
    )
    photo_rows, video_rows = files.photos, files.videos
    boxes = list(damage_boxes) or [None] * len(photo_rows)
    if len(boxes) != len(photo_rows):
        raise RefundlensError("claim.bad_damage_box", "One damage box (or null) per photo.")
    store.audit.lock()  # two claims filed at once must not both take the next number
    check_open_claims(store, settings, order)  # nor both pass the limit (checked again, locked)
    if not settings.refile_after_rejection:
        check_rejected_on_order(store, order, claim_type)  # nor a rejection decided meanwhile
    if settings.claims_within_order_amount:
        check_order_amount(store, order, amount)  # nor, together, the order's amount
    seq = store.claims.next_seq()
    claim = Claim(
        id=new_id("clm"),
        seq=seq,
        order_id=order.id,
        merchant_id=order.merchant_id,
        buyer_id=order.buyer_id,
        claim_type=claim_type,
        reason=reason,
        amount=amount,
        state=ClaimState.SUBMITTED.value,
    )
    store.claims.add(claim)
    for position, ((name, sha, media), box) in enumerate(zip(photo_rows, boxes, strict=True)):
        add_photo_prints(store, claim, media, files.local_prints.get(media.sha256))
        store.claims.add_photo(
            claim,
            ClaimPhoto(
                id=new_id("pho"),
                claim_id=claim.id,
                position=position,
                sha256=sha,
                name=name,
                damage_box=list(box) if box else None,
            ),
        )
    for name, video_sha in video_rows:
        store.evidence.add(
            Evidence(
                id=new_id("evd"),
                claim_id=claim.id,
                kind="unboxing_video",
                submitted_by=actor.role,
                sha256=video_sha,
                name=name,
            )
        )
    store.audit.append(
        actor.id,
        "claim.submitted",
        claim_id=claim.id,
        details={
            "order": order.id,
            "type": claim_type,
            "amount": amount,
            "photos": [m.sha256 for _, _, m in photo_rows],
            "damage_boxes": [list(b) if b else None for b in boxes],
        },
    )
    notify(store, order.merchant_id, "claim.received", claim)
    metrics().claims_received.labels(claim_type).inc()
    return claim


def record_refused_file(store: Store, actor: Actor, order_id: str, error: RefundlensError) -> None:
    """Put on record what a refused file's metadata said (``error.facts``; an animated generator
    output names its generator), in a transaction of its own: the claim itself is not filed."""
    store.audit.append(
        actor.id,
        "claim.file_refused",
        details={"order": order_id, "code": error.code, "file": error.file, "facts": error.facts},
    )
    # The platform's risk team hears of it: the entry names no claim, and a buyer who strips
    # the metadata and files again left it nothing to see (an integrator's walkthrough). Not
    # the shop: no claim of its came of it.
    order = store.catalogue.order(order_id)
    if order is not None:
        notify(
            store,
            order.merchant_id,
            "claim.file_refused",
            None,
            {
                "order_id": order.id,
                "order_external_id": order.external_id,
                "buyer_id": order.buyer_id,
                "code": error.code,
                "file": error.file,
                "facts": error.facts,
            },
            platforms_only=True,
        )
