"""cases: the after-sales case as a domain, over the storage boundary (no SQL, no web).

Each subject is one module; every function takes a :class:`refundlens.store.interface.Store` (one
transaction) first and commits nothing itself, so the change, its audit entry and its
notification land together or not at all:

- ``catalogue``: SKUs and reference photos, orders, packing videos;
- ``intake``: a claim's files checked and stored, the claim filed;
- ``analysis``: queued, started, kept alive, finished (routed) or failed;
- ``review``: evidence, decisions, appeals, assignment, windows that run out;
- ``capture``: live-capture tokens, signatures, acceptance;
- ``notifications``: the outbox.

``states`` is the lifecycle state machine; ``routing`` decides where an analysed claim goes;
``buyer`` is what the buyer is shown. The service, the CLI and the workers call these functions
with a :class:`refundlens.store.sql.repositories.SqlStore`; tests may use
:class:`refundlens.store.memory.MemoryStore`.
"""

from ..errors import NotFound
from .actors import SYSTEM, Actor, aware
from .analysis import (
    beat,
    claims_to_queue,
    decode_inputs,
    fail_analysis,
    finish_analysis,
    input_files,
    mark_queued,
    stale_analyses,
    start_analysis,
    unboxing_video_frames,
    unfinished_analyses,
)
from .capture import (
    CLIP_EVIDENCE_KIND,
    CLIP_FRAME_EVIDENCE_KIND,
    CaptureClip,
    CaptureVia,
    accept_capture,
    capture_claim,
    capture_clip,
    capture_hmac,
    capture_repeats,
    capture_signature,
    check_capture_photo,
    clip_views,
    count_refused_capture,
    filed_photos,
    frame_name,
    issue_capture_token,
    page_captures_allowed,
    record_capture_on_file,
    refuse_replayed_capture,
    repeated_meanwhile,
    sharpest_frames,
)
from .catalogue import (
    PreparedReferences,
    create_order,
    create_sku,
    fail_packing_video,
    finish_packing_video,
    mark_packing_videos_queued,
    new_sku_photos,
    order_time_zone,
    packing_video_frames,
    packing_video_room,
    packing_videos_to_queue,
    prepare_references,
    register_packing_video,
)
from .intake import (
    REMOVED_BOX,
    ClaimFiles,
    add_photo_prints,
    check_claim_request,
    check_file_counts,
    create_claim,
    parse_box_changes,
    parse_damage_boxes,
    prepare_claim_files,
    record_refused_file,
    refuse_repeated_files,
)
from .notifications import notify
from .review import (
    DECISIONS,
    EVIDENCE_KINDS,
    DecisionValue,
    EvidenceKind,
    add_evidence,
    allowed_decisions,
    appeal,
    assign,
    check_evidence,
    check_evidence_kind,
    check_evidence_room,
    decide,
    expire_windows,
    may_appeal,
)
from .routing import ClaimFacts, RoutingRules, route
from .states import ClaimState, IllegalTransition, can_transition, transition

__all__ = [
    "CLIP_EVIDENCE_KIND",
    "CLIP_FRAME_EVIDENCE_KIND",
    "DECISIONS",
    "EVIDENCE_KINDS",
    "REMOVED_BOX",
    "SYSTEM",
    "Actor",
    "CaptureClip",
    "CaptureVia",
    "ClaimFacts",
    "ClaimFiles",
    "ClaimState",
    "DecisionValue",
    "EvidenceKind",
    "IllegalTransition",
    "NotFound",
    "PreparedReferences",
    "RoutingRules",
    "accept_capture",
    "add_evidence",
    "add_photo_prints",
    "allowed_decisions",
    "appeal",
    "assign",
    "aware",
    "beat",
    "can_transition",
    "capture_claim",
    "capture_clip",
    "capture_hmac",
    "capture_repeats",
    "capture_signature",
    "check_capture_photo",
    "check_claim_request",
    "check_evidence",
    "check_evidence_kind",
    "check_evidence_room",
    "check_file_counts",
    "claims_to_queue",
    "clip_views",
    "count_refused_capture",
    "create_claim",
    "create_order",
    "create_sku",
    "decide",
    "decode_inputs",
    "expire_windows",
    "fail_analysis",
    "fail_packing_video",
    "filed_photos",
    "finish_analysis",
    "finish_packing_video",
    "frame_name",
    "input_files",
    "issue_capture_token",
    "mark_packing_videos_queued",
    "mark_queued",
    "may_appeal",
    "new_sku_photos",
    "notify",
    "order_time_zone",
    "packing_video_frames",
    "packing_video_room",
    "packing_videos_to_queue",
    "page_captures_allowed",
    "parse_box_changes",
    "parse_damage_boxes",
    "prepare_claim_files",
    "prepare_references",
    "record_capture_on_file",
    "record_refused_file",
    "refuse_repeated_files",
    "refuse_replayed_capture",
    "register_packing_video",
    "repeated_meanwhile",
    "route",
    "sharpest_frames",
    "stale_analyses",
    "start_analysis",
    "transition",
    "unboxing_video_frames",
    "unfinished_analyses",
]
