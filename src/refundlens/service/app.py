"""The REST API (FastAPI), versioned under ``/v1``. OpenAPI: ``/openapi.json`` and docs/openapi.json.

Every error is JSON ``{"error": {"code", "message"}}`` with a 4xx status; a bad upload fails its
request before anything of it is stored. A database that is locked past its busy timeout or
unreachable answers 503 ``service.busy`` with ``Retry-After``, never 500.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Header, Path, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, cases
from ..cases.buyer import buyer_status
from ..config import Settings, load_settings
from ..errors import MediaError, RefundlensError
from ..runtime import Runtime
from ..store.crypto import PiiCipher
from ..store.sql import audit
from ..store.sql.models import Claim, Decision, Evidence, IdempotencyKey, Order, Tenant
from ..store.sql.queries import latest_assessment
from ..store.sql.repositories import SqlStore
from ..workers.runner import Dispatcher
from . import fields
from .auth import Principal, authenticate, can_see_claim
from .body_limit import BodyLimit
from .headers import SecurityHeaders
from .readiness import readiness

__all__ = ["create_app"]

log = logging.getLogger("refundlens.service")

STATUS = {
    "auth.missing": 401,
    "auth.invalid": 401,
    "auth.forbidden": 403,
    "claim.illegal_transition": 409,
    "claim.closed": 409,
    "media.too_large": 413,
    "idempotency.key_reused": 422,
    "request.too_large": 413,
    "service.busy": 503,
}


def _status(code: str) -> int:
    if code in STATUS:
        return STATUS[code]
    if code.endswith(".not_found"):
        return 404
    if code.startswith("media."):
        return 422
    return 400


class TenantIn(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$", max_length=40)
    kind: str = Field(pattern=r"^(platform|merchant)$", max_length=8)
    name: fields.Name
    webhook_url: fields.Url | None = None
    webhook_secret: fields.Secret | None = None


class OrderIn(BaseModel):
    external_id: fields.ExternalId
    sku_id: fields.Id
    buyer_id: fields.Id
    amount: fields.Finite = Field(ge=0)
    currency: fields.Currency = "CNY"
    shipped_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    buyer: dict[fields.BuyerDetail, fields.BuyerDetail] | None = Field(
        default=None,
        max_length=fields.MAX_BUYER_DETAILS,
        description="Name, phone, address: encrypted at rest.",
    )
    merchant_id: fields.Id | None = None


class DecisionIn(BaseModel):
    decision: fields.Word = Field(
        description="approve | reject | partial | request_capture | escalate"
    )
    reason: fields.Reason
    amount: fields.Finite | None = None


class AppealIn(BaseModel):
    reason: fields.Reason


class AssignIn(BaseModel):
    reviewer: fields.Id | None = Field(
        default=None,
        description="A reviewer's API key id (rlk_...); null returns the claim to the pool.",
    )


class ErrorOut(BaseModel):
    """Every error the API answers: a stable code (docs/errors.md) and one sentence."""

    class Detail(BaseModel):
        code: str
        message: str

    error: Detail


# Pydantic error types that break a field's rule (fields.py) rather than the request's shape.
# ("string_unicode": pydantic refuses a lone surrogate itself, before fields.py sees it.)
_FIELD_RULES = {
    "request.bad_field",
    "string_too_long",
    "string_pattern_mismatch",
    "string_unicode",
    "too_long",
}


_HTTP_CODES = {
    400: "request.malformed",
    404: "route.not_found",
    405: "route.bad_method",
    413: "request.too_large",
}


def _printable(text: str) -> str:
    """``text`` as it can be sent: a lone surrogate or a NUL byte a client put in a field name
    or an id comes back escaped, not as an encoding error."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _error(
    code: str, message: str, status: int, file: dict[str, object] | None = None
) -> JSONResponse:
    error: dict[str, object] = {"code": code, "message": _printable(message)}
    if file is not None:  # which file of an upload with several (RefundlensError.about_file)
        error["file"] = {k: _printable(v) if isinstance(v, str) else v for k, v in file.items()}
    return JSONResponse({"error": error}, status_code=status)


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.runtime.db.session() as session:
        yield session


# scope="function": commit before the response is sent. With the default ("request") a client
# could read 201 for a write that then failed to commit, and its next request could start
# before the first one's rows were visible.
SessionDep = Annotated[Session, Depends(_session, scope="function")]


def _principal(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    # Its own short transaction: an async endpoint must not hold one open across awaits
    # (under SQLite that would block every other request on the write lock).
    with request.app.state.runtime.db.session() as session:
        return authenticate(session, authorization)


# Module level: FastAPI resolves these annotations in the module's namespace.
Who = Annotated[Principal, Depends(_principal)]
ClaimId = Annotated[fields.Id, Path()]


def _iso(moment: dt.datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.isoformat()


def create_app(
    settings: Settings | None = None, *, dispatcher: Dispatcher | None = None
) -> FastAPI:
    settings = settings or load_settings()
    runtime = dispatcher.runtime if dispatcher else Runtime(settings)
    settings = runtime.settings  # with the service's defaults (data_dir/features)
    runtime.db.upgrade()
    dispatch = dispatcher or Dispatcher(settings, runtime)
    cipher = PiiCipher.from_settings(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        dispatch.start()
        yield
        dispatch.stop()

    app = FastAPI(
        title="refundlens",
        version=__version__,
        lifespan=lifespan,
        description="After-sales claim photos checked for forgery; people decide.",
        responses={
            422: {"model": ErrorOut, "description": "A field breaks its rule (docs/errors.md)."},
            "4XX": {"model": ErrorOut, "description": "Refused, with a code (docs/errors.md)."},
        },
    )
    app.state.runtime = runtime
    app.state.dispatcher = dispatch
    app.add_middleware(SecurityHeaders)
    from .web import router as web_router

    app.include_router(web_router)

    @app.exception_handler(RefundlensError)
    async def _refundlens_error(_request: Request, exc: RefundlensError) -> JSONResponse:
        return _error(exc.code, exc.message, _status(exc.code), exc.file)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
        # SQLite's write lock held past sqlite_busy_timeout_seconds, a database that does not
        # answer, a pool with no free connection: the request changed nothing (its transaction
        # rolled back), so the client may simply send it again.
        log.warning(
            "%s %s: database busy or unreachable: %s", request.method, request.url.path, exc
        )
        err = RefundlensError(
            "service.busy", "The database is busy or unreachable; send the request again shortly."
        )
        return JSONResponse(
            {"error": err.as_dict()},
            status_code=503,
            headers={"Retry-After": str(settings.busy_retry_after_seconds)},
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = list(exc.errors())
        code = (
            "request.bad_field"
            if problems and all(p["type"] in _FIELD_RULES for p in problems)
            else "request.invalid"
        )
        said = [f"{'.'.join(str(part) for part in p['loc'])}: {p['msg']}" for p in problems[:5]]
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return _error(code, "; ".join(said) + more, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # What the framework refuses before a route runs: a body that does not parse, a path
        # or a method the API does not have. The documented shape, like every other error.
        code = _HTTP_CODES.get(exc.status_code, "request.refused")
        return _error(code, str(exc.detail), exc.status_code)

    @app.exception_handler(DataError)
    @app.exception_handler(UnicodeEncodeError)
    async def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
        # A defence behind the field rules: a value no rule caught that the database refuses
        # (a NUL byte, a lone surrogate, a number out of range). Logged: a rule is missing.
        log.warning("a value the database cannot store got through", exc_info=exc)
        return _error(
            "request.unstorable", "A value in the request cannot be stored; nothing was.", 422
        )

    app.add_middleware(
        BodyLimit,
        multipart_bytes=(settings.max_photos_per_claim + 1) * settings.max_file_bytes,
        other_bytes=settings.max_body_bytes,
    )

    def actor(p: Principal) -> cases.Actor:
        return cases.Actor(p.key_id, p.role)

    def require(p: Principal, *roles: str) -> None:
        if p.role not in roles:
            raise RefundlensError(
                "auth.forbidden", f"This needs the role {' or '.join(roles)}; the key is {p.role}."
            )

    async def read_upload(upload: UploadFile, video: bool = False) -> tuple[str, bytes]:
        """An upload's name and bytes. Starlette spooled the file to disk as it arrived (the
        request's size was checked then, by BodyLimit); its size is known before any byte is
        read, and it is read in one piece, never more than the limit + 1 bytes."""
        limit, name = (
            (settings.video_max_bytes, "video_max_bytes")
            if video
            else (settings.max_file_bytes, "max_file_bytes")
        )
        data = b""
        if upload.size is None or upload.size <= limit:
            data = await upload.read(limit + 1)
        if (upload.size is not None and upload.size > limit) or len(data) > limit:
            raise MediaError(
                "media.too_large",
                f"{fields.file_name(upload.filename)} is over the limit ({name}) of {limit} bytes.",
            )
        return fields.file_name(upload.filename), data

    def merchant_of(p: Principal, given: str | None) -> str:
        if p.role == "merchant":
            assert p.tenant_id is not None
            return p.tenant_id
        if p.role == "admin" and given:
            return given
        raise RefundlensError(
            "auth.forbidden",
            "Only a merchant (or an admin naming merchant_id) manages SKUs and orders.",
        )

    def common_view(claim: Claim) -> dict[str, Any]:
        """What every principal who may see the claim is told of it."""
        return {
            "id": claim.id,
            "order_id": claim.order_id,
            "merchant_id": claim.merchant_id,
            "buyer_id": claim.buyer_id,
            "type": claim.claim_type,
            "reason": claim.reason,
            "amount": claim.amount,
            "state": claim.state,
            "deadline_at": _iso(claim.deadline_at),
            "created_at": _iso(claim.created_at),
            "photos": [
                {"name": ph.name, "sha256": ph.sha256, "live_capture": ph.live_capture}
                for ph in claim.photos
            ],
        }

    def buyer_view(s: Session, claim: Claim) -> dict[str, Any]:
        """What a buyer sees of its claim (cases/buyer.py): no finding, fact, risk or picture."""
        decision = s.execute(
            select(Decision)
            .where(Decision.claim_id == claim.id)
            .order_by(Decision.created_at.desc())
            .limit(1)
        ).scalar_one_or_none()
        return common_view(claim) | {
            "status": buyer_status(claim.state, decision.outcome if decision else None).as_dict(),
            "decision": None
            if decision is None
            else {"outcome": decision.outcome, "amount": decision.amount},
        }

    def claim_view(s: Session, claim: Claim, p: Principal) -> dict[str, Any]:
        if p.role == "buyer":
            return buyer_view(s, claim)
        latest = latest_assessment(s, claim.id)
        view: dict[str, Any] = common_view(claim) | {
            "risk": claim.risk,
            "action": claim.action,
            "routing_reason": claim.routing_reason,
            "assigned_to": claim.assigned_to,
            "assessment": latest.report if latest is not None else None,
        }
        if p.role in ("admin", "reviewer", "merchant"):
            view["evidence"] = [
                {
                    "id": e.id,
                    "kind": e.kind,
                    "by": e.submitted_by,
                    "sha256": e.sha256,
                    "name": e.name,
                    "statement": e.statement,
                }
                for e in s.execute(select(Evidence).where(Evidence.claim_id == claim.id)).scalars()
            ]
            view["decisions"] = [
                {
                    "outcome": d.outcome,
                    "amount": d.amount,
                    "reason": d.reason,
                    "by": d.decided_by,
                    "at": _iso(d.created_at),
                }
                for d in s.execute(select(Decision).where(Decision.claim_id == claim.id)).scalars()
            ]
        return view

    def visible_claim(s: Session, claim_id: str, p: Principal, *, lock: bool = True) -> Claim:
        """The claim if ``p`` may see it. ``lock`` (every change) holds its row until commit, so
        that two people acting at once act one after the other on what the first left."""
        claim = s.get(Claim, claim_id, with_for_update=lock or None, populate_existing=lock)
        if claim is None or not can_see_claim(p, claim):
            raise cases.NotFound("claim", claim_id)
        return claim

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        """A person who opens the server's address lands on the web page."""
        return RedirectResponse("/web/", status_code=303)

    @app.head("/healthz", include_in_schema=False)
    @app.get("/healthz")
    def healthz(s: SessionDep) -> dict[str, Any]:
        """Liveness: the process answers and reaches its database. Readiness is /readyz."""
        s.execute(select(1))
        return {
            "status": "ok",
            "version": __version__,
            "database": runtime.db.engine.dialect.name,
            "tasks": "celery" if dispatch.celery else "in-process",
        }

    @app.head("/readyz", include_in_schema=False)
    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Readiness: the database answers and its migrations are at head, the broker (when one
        is configured) accepts connections, the blob folder is writable. 503 names what failed."""
        checks = readiness(runtime, dispatch)
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.post("/v1/tenants", status_code=201)
    def create_tenant(body: TenantIn, s: SessionDep, p: Who) -> dict[str, Any]:
        require(p, "admin")
        tenant = s.get(Tenant, body.id) or Tenant(id=body.id, kind=body.kind, name=body.name)
        tenant.name, tenant.webhook_url, tenant.webhook_secret = (
            body.name,
            body.webhook_url,
            body.webhook_secret,
        )
        s.add(tenant)
        audit.append(s, p.key_id, "tenant.saved", details={"tenant": body.id})
        return {"id": tenant.id, "kind": tenant.kind, "name": tenant.name}

    @app.post("/v1/skus", status_code=201)
    async def create_sku(
        p: Who,
        external_id: Annotated[fields.ExternalId, Form()],
        photos: Annotated[list[UploadFile], File(description="Reference photos (listing photos).")],
        title: Annotated[fields.Title, Form()] = "",
        merchant_id: Annotated[fields.Id | None, Form()] = None,
    ) -> dict[str, Any]:
        merchant = merchant_of(p, merchant_id)
        files = [await read_upload(f) for f in photos]

        def work() -> dict[str, Any]:
            with runtime.db.session() as s:
                sku = cases.create_sku(
                    SqlStore(s),
                    runtime.blobs,
                    settings,
                    actor(p),
                    merchant,
                    external_id,
                    title,
                    files,
                )
                s.flush()
                s.refresh(sku)
                return {
                    "id": sku.id,
                    "external_id": sku.external_id,
                    "references": [
                        {"sha256": r.sha256, "name": r.name, "pdq": r.pdq} for r in sku.references
                    ],
                }

        return await run_in_threadpool(work)

    @app.post("/v1/orders", status_code=201)
    def create_order(body: OrderIn, s: SessionDep, p: Who) -> dict[str, Any]:
        merchant = merchant_of(p, body.merchant_id)
        sealed = cipher.seal(body.buyer) if body.buyer else None
        order = cases.create_order(
            SqlStore(s),
            actor(p),
            merchant,
            body.external_id,
            body.sku_id,
            body.buyer_id,
            body.amount,
            body.currency,
            body.shipped_at,
            body.delivered_at,
            sealed,
        )
        return {
            "id": order.id,
            "external_id": order.external_id,
            "merchant_id": order.merchant_id,
            "buyer_id": order.buyer_id,
        }

    @app.post("/v1/orders/{order_id}/packing-video", status_code=202)
    async def packing_video(
        order_id: Annotated[fields.Id, Path()],
        p: Who,
        video: Annotated[
            UploadFile, File(description="The packing video (mp4, mov, avi, mkv, webm).")
        ],
    ) -> JSONResponse:
        """Accepted (202): the video is checked from its header and stored now; the task runner
        decodes it and its key frames become the order's references when it finishes
        (``packing_video.processed`` event)."""
        require(p, "merchant", "admin")
        _, data = await read_upload(video, video=True)
        name = video.filename or "packing"

        def visible_order(s: Session) -> Order:
            order = s.get(Order, order_id)
            if order is None or (p.role == "merchant" and order.merchant_id != p.tenant_id):
                raise cases.NotFound("order", order_id)
            return order

        def work() -> dict[str, Any]:
            with runtime.db.session() as s:  # short: no such order answers before the work
                visible_order(s)
            # No transaction is open over the header check and the blob write (on SQLite it
            # would stop every other writer), and no frame is decoded in this process.
            from ..media.video import probe_video

            header = probe_video(data, settings)
            sha = runtime.blobs.put(data)
            with runtime.db.session() as s:
                row = cases.register_packing_video(
                    SqlStore(s), actor(p), visible_order(s), name, sha, header
                )
                return {
                    "order_id": order_id,
                    "video_id": row.id,
                    "video_sha256": sha,
                    "status": "pending",
                }

        answer = await run_in_threadpool(work)
        await run_in_threadpool(dispatch.submit_packing_video, answer["video_id"])
        return JSONResponse(answer, status_code=202)

    @app.post("/v1/claims", status_code=201)
    async def create_claim(
        p: Who,
        order_id: Annotated[fields.Id, Form()],
        claim_type: Annotated[fields.Word, Form(alias="type")],
        amount: Annotated[fields.Finite, Form()],
        reason: Annotated[fields.Reason, Form()] = "",
        photos: Annotated[list[UploadFile] | None, File()] = None,
        videos: Annotated[
            list[UploadFile] | None,
            File(description="Unboxing videos: their frames are compared with the photos."),
        ] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        if p.role not in ("buyer", "admin"):
            raise RefundlensError(
                "auth.forbidden", "Claims are filed by the buyer (or the platform on its behalf)."
            )
        files = [await read_upload(f) for f in photos or []]
        clips = [await read_upload(v, video=True) for v in videos or []]
        key = (
            hashlib.sha256(f"{p.key_id}:{idempotency_key}".encode()).hexdigest()
            if idempotency_key
            else None
        )
        # What this request says: a retry says the same; another claim under the same key
        # does not, and is refused rather than answered with the first claim (Stripe's rule).
        fingerprint = hashlib.sha256(
            repr(
                (
                    order_id,
                    claim_type,
                    repr(amount),
                    reason,
                    [(n, hashlib.sha256(d).hexdigest()) for n, d in files],
                    [(n, hashlib.sha256(d).hexdigest()) for n, d in clips],
                )
            ).encode("utf-8", "surrogatepass")
        ).hexdigest()

        unqueued: list[str] = []  # a replayed claim still in the outbox: queue it now

        def replayed(s: Session) -> dict[str, Any] | None:
            seen = s.get(IdempotencyKey, key) if key is not None else None
            if seen is None:
                return None
            if seen.request_sha256 not in (None, fingerprint):
                raise RefundlensError(
                    "idempotency.key_reused",
                    "This Idempotency-Key was used for another request; use a new key for "
                    "each new claim.",
                )
            existing = s.get(Claim, seen.claim_id)
            assert existing is not None
            if existing.state == "submitted" and existing.queued_at is None:
                unqueued.append(existing.id)
            return claim_view(s, existing, p)

        def visible_order(s: Session) -> Order:
            order = s.get(Order, order_id)
            if order is None or (p.role == "buyer" and order.buyer_id != p.subject):
                raise cases.NotFound("order", order_id)
            return order

        def work() -> tuple[dict[str, Any], int, str | None]:
            with runtime.db.session() as s:  # short: a replay, or a claim on no visible order
                view = replayed(s)
                if view is not None:
                    return view, 200, None
                # Refused before its files are stored: a refused claim leaves no blob behind.
                cases.check_claim_request(visible_order(s), claim_type, amount)
            # Decoding and storing the files needs no transaction: none is held open over it.
            prepared = cases.prepare_claim_files(runtime.blobs, settings, claim_type, files, clips)
            try:
                with runtime.db.session() as s:
                    view = replayed(s)
                    if view is not None:
                        return view, 200, None
                    order = visible_order(s)
                    claim = cases.create_claim(
                        SqlStore(s),
                        runtime.blobs,
                        settings,
                        actor(p),
                        order,
                        claim_type,
                        reason,
                        amount,
                        prepared,
                    )
                    if key is not None:
                        s.add(
                            IdempotencyKey(key=key, claim_id=claim.id, request_sha256=fingerprint)
                        )
                    s.flush()
                    return claim_view(s, claim, p), 201, claim.id
            except IntegrityError:
                # A retry that arrived while the first request was still saving: both did the
                # slow work, the first committed its key, this one's insert of the same key
                # failed and rolled back. Answer with the first one's claim.
                if key is None:
                    raise
                with runtime.db.session() as s:
                    view = replayed(s)
                if view is None:
                    raise
                return view, 200, None

        view, status, created = await run_in_threadpool(work)
        for claim_id in dict.fromkeys([*([created] if created else []), *unqueued]):
            # After the commit (a worker must find the claim). The claim is saved whatever
            # happens here: a broker that is down leaves it in the outbox (queued_at NULL) and
            # the tick queues it once the broker is back ("queued later"), so the answer is
            # still 201, never a 500 for a claim that exists.
            await run_in_threadpool(dispatch.submit, claim_id)
        return JSONResponse(view, status_code=status)

    @app.get("/v1/claims/{claim_id}")
    def get_claim(claim_id: ClaimId, s: SessionDep, p: Who) -> dict[str, Any]:
        return claim_view(s, visible_claim(s, claim_id, p, lock=False), p)

    @app.get("/v1/claims")
    def list_claims(
        s: SessionDep,
        p: Who,
        state: Annotated[fields.Word | None, Query()] = None,
        merchant_id: Annotated[fields.Id | None, Query()] = None,
        action: Annotated[fields.Word | None, Query()] = None,
        min_amount: Annotated[fields.Finite | None, Query()] = None,
        cursor: Annotated[
            str | None,
            Query(max_length=19, description="The next_cursor of the previous page."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        query = select(Claim).order_by(Claim.seq.desc())
        if p.role == "merchant":
            query = query.where(Claim.merchant_id == p.tenant_id)
        elif p.role == "buyer":
            query = query.where(Claim.buyer_id == p.subject)
        elif p.role == "reviewer":
            query = query.where(Claim.merchant_id.in_(sorted(p.tenants)))
        if state:
            query = query.where(Claim.state == state)
        if merchant_id:
            query = query.where(Claim.merchant_id == merchant_id)
        if action:
            query = query.where(Claim.action == action)
        if min_amount is not None:
            query = query.where(Claim.amount >= min_amount)
        if cursor:
            # ASCII digits within int64 (the seq column): str.isdigit() alone takes "²".
            if not (cursor.isascii() and cursor.isdigit() and int(cursor) < 1 << 63):
                raise RefundlensError(
                    "request.bad_cursor", "The cursor is not one this API returned."
                )
            query = query.where(Claim.seq < int(cursor))
        rows = s.execute(query.limit(limit + 1)).scalars().all()
        page = rows[:limit]
        return {
            "items": [
                {
                    "id": c.id,
                    "state": c.state,
                    "amount": c.amount,
                    "merchant_id": c.merchant_id,
                    "deadline_at": _iso(c.deadline_at),
                }
                # A buyer is never shown the risk or the machine's action (cases/buyer.py).
                | ({} if p.role == "buyer" else {"risk": c.risk, "action": c.action})
                for c in page
            ],
            "next_cursor": str(page[-1].seq) if len(rows) > limit else None,
        }

    @app.post("/v1/claims/{claim_id}/evidence", status_code=201)
    async def add_evidence(
        claim_id: ClaimId,
        p: Who,
        kind: Annotated[
            str,
            Form(pattern=r"^(packing_video|reference_photo|statement|other)$", max_length=15),
        ],
        statement: Annotated[fields.Statement, Form()] = "",
        file: Annotated[UploadFile | None, File()] = None,
    ) -> dict[str, Any]:
        upload = await read_upload(file) if file is not None else None

        def work() -> dict[str, Any]:
            with runtime.db.session() as s:
                claim = visible_claim(s, claim_id, p)
                item = cases.add_evidence(
                    SqlStore(s),
                    runtime.blobs,
                    actor(p),
                    claim,
                    kind,
                    statement,
                    upload,
                    settings=settings,
                )
                return {
                    "id": item.id,
                    "kind": item.kind,
                    "sha256": item.sha256,
                    "claim_state": claim.state,
                }

        return await run_in_threadpool(work)

    @app.post("/v1/claims/{claim_id}/decision")
    def decide(claim_id: ClaimId, body: DecisionIn, s: SessionDep, p: Who) -> dict[str, Any]:
        claim = visible_claim(s, claim_id, p)
        cases.decide(
            SqlStore(s), actor(p), claim, body.decision, body.reason, body.amount, settings
        )
        return claim_view(s, claim, p)

    @app.post("/v1/claims/{claim_id}/capture-token", status_code=201)
    def capture_token(claim_id: ClaimId, s: SessionDep, p: Who) -> dict[str, Any]:
        claim = visible_claim(s, claim_id, p)
        require(p, "buyer", "admin")
        token, expires = cases.issue_capture_token(SqlStore(s), actor(p), claim, settings)
        return {"token": token, "expires_at": expires.isoformat()}

    @app.post("/v1/claims/{claim_id}/capture", status_code=201)
    async def capture(
        claim_id: ClaimId,
        p: Who,
        token: Annotated[fields.Id, Form()],
        photo: Annotated[UploadFile, File()],
        x_capture_signature: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        require(p, "buyer", "admin")
        upload = await read_upload(photo)

        def work() -> dict[str, Any]:
            with runtime.db.session() as s:
                claim = visible_claim(s, claim_id, p)
                cases.accept_capture(
                    SqlStore(s),
                    runtime.blobs,
                    settings,
                    actor(p),
                    claim,
                    token,
                    upload,
                    x_capture_signature,
                )
                s.flush()
                return claim_view(s, claim, p)

        view = await run_in_threadpool(work)
        await run_in_threadpool(dispatch.submit, claim_id)  # or the tick, once the broker is back
        return JSONResponse(view, status_code=201)

    @app.post("/v1/claims/{claim_id}/appeal")
    def appeal(claim_id: ClaimId, body: AppealIn, s: SessionDep, p: Who) -> dict[str, Any]:
        claim = visible_claim(s, claim_id, p)
        require(p, "buyer", "merchant", "admin")
        cases.appeal(SqlStore(s), actor(p), claim, body.reason, settings=settings)
        return claim_view(s, claim, p)

    @app.post("/v1/claims/{claim_id}/assign")
    def assign(claim_id: ClaimId, body: AssignIn, s: SessionDep, p: Who) -> dict[str, Any]:
        claim = visible_claim(s, claim_id, p)
        cases.assign(SqlStore(s), actor(p), claim, body.reviewer)
        return claim_view(s, claim, p)

    @app.get("/v1/audit/verify")
    def verify_audit(s: SessionDep, p: Who) -> dict[str, Any]:
        require(p, "admin")
        checked, problem = audit.verify(s)
        return {
            "checked": checked,
            "ok": problem is None,
            "problem": None
            if problem is None
            else {"seq": problem.seq, "problem": problem.problem},
        }

    return app
