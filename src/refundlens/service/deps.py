"""The API's dependencies, as ``Annotated`` types a route names in its signature.

The runtime and the task dispatcher, a database session per request, the principal behind the
API key, the claim it may see (a 404 ``claim.not_found`` otherwise, the same answer as a claim
that does not exist) and the role guards. A route's parameters run in the order they are listed:
a route that says ``claim: HeldClaim, p: BuyerOrAdmin`` answers 404 before 403, as it always has.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request, Security, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from .. import cases
from ..config import Settings
from ..errors import MediaError, RefundlensError
from ..runtime import Runtime
from ..store.crypto import PiiCipher
from ..store.sql.models import Claim
from ..workers.runner import Dispatcher
from . import fields, upload_memory
from .auth import Principal, authenticate, can_see_claim
from .rate_limit import accept_credential

__all__ = [
    "Admin",
    "Appellant",
    "BuyerOrAdmin",
    "CipherDep",
    "ClaimFiler",
    "ClaimId",
    "DispatcherDep",
    "HeldClaim",
    "MerchantOrAdmin",
    "RuntimeDep",
    "SeenClaim",
    "SessionDep",
    "Who",
    "actor",
    "decode_slot",
    "may_see_facts",
    "merchant_of",
    "read_upload",
    "require",
    "role",
    "upload_slot",
    "visible_claim",
]

log = logging.getLogger(__name__)


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _dispatcher(request: Request) -> Dispatcher:
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


def _cipher(request: Request) -> PiiCipher:
    cipher: PiiCipher = request.app.state.cipher
    return cipher


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
DispatcherDep = Annotated[Dispatcher, Depends(_dispatcher)]
CipherDep = Annotated[PiiCipher, Depends(_cipher)]


def _session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.db.session() as session:
        yield session


# scope="function": commit before the response is sent. With the default ("request") a client
# could read 201 for a write that then failed to commit, and its next request could start
# before the first one's rows were visible.
SessionDep = Annotated[Session, Depends(_session, scope="function")]


# The OpenAPI schema's word for how a request authenticates: generated clients and Swagger's
# "Authorize" read it (the schema named an optional Authorization header on every route: an
# integrator's walkthrough). It reads nothing itself (auto_error off): authenticate() below
# answers a missing, malformed or unknown key with its own coded 401.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `Authorization: Bearer rlk_<id>.<secret>` "
    "(`refundlens keys create`; docs/service.md).",
)


def _principal(
    request: Request,
    runtime: RuntimeDep,
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> Principal:
    # Its own short transaction: an async endpoint must not hold one open across awaits
    # (under SQLite that would block every other request on the write lock).
    with runtime.db.session() as session:
        principal = authenticate(session, request.headers.get("authorization"))
    accept_credential(request, "key")
    # For the error handler: what an error may tell depends on who asked (may_see_facts).
    request.state.principal = principal
    return principal


# Errors whose facts describe only the request's own shape (which video check refused a clip),
# answered to anyone; every other error's facts (what the checks read in a refused file: an
# animated file's metadata and provenance findings) go to staff only.
_FACTS_FOR_ANYONE = frozenset({"capture.bad_clip"})


def may_see_facts(request: Request, code: str) -> bool:
    """Whether the ``facts`` of an error of ``code`` may be answered to this request's sender:
    to staff (the platform, a merchant, a reviewer) always; to a buyer, or to an anonymous
    request (the capture page's upload, whose link a buyer holds), only for the codes of
    :data:`_FACTS_FOR_ANYONE`: a forger must not learn what the checks read."""
    if code in _FACTS_FOR_ANYONE:
        return True
    principal = getattr(request.state, "principal", None)
    return isinstance(principal, Principal) and principal.role != "buyer"


Who = Annotated[Principal, Depends(_principal)]
"""The principal behind ``Authorization: Bearer <key>`` (401 without a valid key)."""


def require(p: Principal, *roles: str, message: str | None = None) -> None:
    """Refuse (403 ``auth.forbidden``) a principal whose role is not one of ``roles``."""
    if p.role not in roles:
        raise RefundlensError(
            "auth.forbidden",
            message or f"This needs the role {' or '.join(roles)}; the key is {p.role}.",
        )


def role(*roles: str, message: str | None = None) -> Callable[[Principal], Principal]:
    """A dependency: the principal, if its role is one of ``roles`` (else 403)."""

    def guard(p: Who) -> Principal:
        require(p, *roles, message=message)
        return p

    return guard


Admin = Annotated[Principal, Depends(role("admin"))]
BuyerOrAdmin = Annotated[Principal, Depends(role("buyer", "admin"))]
MerchantOrAdmin = Annotated[Principal, Depends(role("merchant", "admin"))]
Appellant = Annotated[Principal, Depends(role("buyer", "merchant", "admin"))]
ClaimFiler = Annotated[
    Principal,
    Depends(
        role(
            "buyer",
            "admin",
            message="Claims are filed by the buyer (or the platform on its behalf).",
        )
    ),
]


def actor(p: Principal) -> cases.Actor:
    """Who the workflow records as acting."""
    return cases.Actor(p.key_id, p.role)


ClaimId = Annotated[fields.Id, Path()]


def visible_claim(s: Session, claim_id: str, p: Principal, *, lock: bool = True) -> Claim:
    """The claim if ``p`` may see it, else 404 ``claim.not_found``. ``lock`` (every change) holds
    its row until commit, so that two people acting at once act one after the other on what the
    first left."""
    claim = s.get(Claim, claim_id, with_for_update=lock or None, populate_existing=lock)
    if claim is None or not can_see_claim(p, claim):
        raise cases.NotFound("claim", claim_id)
    return claim


def _seen_claim(claim_id: ClaimId, s: SessionDep, p: Who) -> Claim:
    return visible_claim(s, claim_id, p, lock=False)


def _held_claim(claim_id: ClaimId, s: SessionDep, p: Who) -> Claim:
    return visible_claim(s, claim_id, p, lock=True)


SeenClaim = Annotated[Claim, Depends(_seen_claim, scope="function")]
"""The path's claim, read in the request's session, if the principal may see it."""
HeldClaim = Annotated[Claim, Depends(_held_claim, scope="function")]
"""The path's claim, its row locked until the request's session commits (for a change)."""


def merchant_of(p: Principal, given: str | None) -> str:
    """The merchant a SKU or an order belongs to: the key's own, or the one an admin names."""
    if p.role == "merchant":
        assert p.tenant_id is not None
        return p.tenant_id
    if p.role == "admin" and given:
        return given
    raise RefundlensError(
        "auth.forbidden",
        "Only a merchant (or an admin naming merchant_id) manages SKUs and orders.",
    )


T = TypeVar("T")


@contextlib.contextmanager
def decode_slot(runtime: Runtime) -> Iterator[None]:
    """One of the process's ``upload_decode_slots`` while an upload's files are decoded and
    stored (on the thread pool): it waits up to ``upload_slot_wait_seconds`` for one, then is
    refused with 503 ``service.busy`` before any file is decoded. Each decode may hold several
    hundred MB (a small PNG of one colour at ``max_pixels``): concurrent uploads without a bound
    took the API process to gigabytes."""
    if not runtime.upload_work.acquire(timeout=runtime.settings.upload_slot_wait_seconds):
        log.warning(
            "upload busy: every one of upload_decode_slots (%d) held for "
            "upload_slot_wait_seconds (%g)",
            runtime.settings.upload_decode_slots,
            runtime.settings.upload_slot_wait_seconds,
        )
        raise RefundlensError(
            "service.busy", "Other uploads are being decoded; send this one again shortly."
        )
    try:
        yield
    finally:
        runtime.upload_work.release()


def upload_slot(runtime: Runtime, work: Callable[[], T]) -> Callable[[], T]:
    """``work`` run in a :func:`decode_slot`."""

    def run() -> T:
        with decode_slot(runtime):
            return work()

    return run


async def read_upload(
    settings: Settings,
    upload: UploadFile,
    *,
    video: bool = False,
    field: str | None = None,
    index: int = 0,
) -> tuple[str, bytes]:
    """An upload's name and bytes. Starlette spooled the file to disk as it arrived (the
    request's size was checked then, by BodyLimit); its size is known before any byte is
    read, and it is read in one piece, never more than the limit + 1 bytes. ``field`` and
    ``index`` name the file in a refusal, as every other refusal of one file of an upload does
    (``photos[1] (big.jpg): ...``)."""
    limit, name = (
        (settings.video_max_bytes, "video_max_bytes")
        if video
        else (settings.max_file_bytes, "max_file_bytes")
    )
    data = b""
    if upload.size is None or upload.size <= limit:
        await upload_memory.reserve(limit + 1 if upload.size is None else upload.size)
        data = await upload.read(limit + 1)
    if (upload.size is not None and upload.size > limit) or len(data) > limit:
        refusal = MediaError(
            "media.too_large",
            f"{fields.file_name(upload.filename)} is over the limit ({name}) of {limit} bytes.",
        )
        if field is not None:
            refusal.about_file(index, fields.file_name(upload.filename), field)
        raise refusal
    return fields.file_name(upload.filename), data


def _form_names(dependant: object) -> set[str]:
    """The form fields and files a route takes, its dependencies' included (by their alias:
    ``type`` for ``claim_type``)."""
    from fastapi import params

    names = {
        field.alias
        for field in getattr(dependant, "body_params", None) or []
        if isinstance(field.field_info, params.Form | params.File)
    }
    for sub in getattr(dependant, "dependencies", None) or []:
        names |= _form_names(sub)
    return names


async def known_form_fields(request: Request) -> None:
    """Refuse a form field or file the route does not take. A claim's photos sent as ``photo``
    (the capture route's name) were dropped and the claim filed without them, 201 (an
    integrator's walkthrough). The form is parsed by then: this reads what FastAPI kept."""
    sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if sent not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return
    taken = _form_names(getattr(request.scope.get("route"), "dependant", None))
    if not taken:
        return  # a route without a form: its body is refused or ignored as it always was
    unknown = sorted({str(name) for name in await request.form()} - taken)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise RefundlensError(
            "request.invalid",
            f"This route takes no field {shown}; it takes {', '.join(sorted(taken))} "
            "(docs/service.md).",
        )


KnownFields = Annotated[None, Depends(known_form_fields)]
"""The last parameter of each route that takes a form: resolved after the route's key (a
request with no key or a bad one gets 401, not the list of the fields: a review)."""
