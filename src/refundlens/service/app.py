"""The REST API (FastAPI), versioned under ``/v1``. OpenAPI: ``/openapi.json`` and docs/openapi.json.

Every error is JSON ``{"error": {"code", "message"}}`` with a 4xx status; a bad upload fails its
request before anything of it is stored. A database that is locked past its busy timeout or
unreachable answers 503 ``service.busy`` with ``Retry-After``, never 500.

``create_app`` only wires: the runtime and the task dispatcher, the middleware, the routers
(``routes/``, one per resource; ``web/``, the pages), the error handlers and the lifespan.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser
from starlette.requests import ClientDisconnect, cookie_parser

from .. import __version__
from ..config import Settings, load_settings
from ..errors import RefundlensError
from ..metrics import metrics
from ..runtime import Runtime
from ..store.crypto import PiiCipher
from ..workers.runner import Dispatcher
from . import web
from .auth import AuthError, authenticate, web_session
from .body_limit import BodyLimit
from .claim_files import REPORT_STATUS
from .deps import may_see_facts
from .headers import SecurityHeaders
from .observe import Observe
from .rate_limit import MemoryLimiter, RateLimit, RateLimiter, RedisLimiter
from .route_names import template_of
from .routes import ROUTERS
from .schemas import ErrorOut
from .upload_memory import HoldUploadMemory, UploadMemory
from .web.common import COOKIE

__all__ = ["create_app"]

log = logging.getLogger("refundlens.service")

STATUS = {
    "auth.missing": 401,
    "auth.invalid": 401,
    "auth.forbidden": 403,
    "auth.buyer_revoked": 409,
    "request.bad_field": 422,  # raised by a route (fields.FieldError) as by the schema
    "request.invalid": 422,  # a field a route does not take (deps.known_form_fields), as the schema
    "claim.illegal_transition": 409,
    "claim.closed": 409,
    "claim.own_decision_appealed": 409,
    "claim.already_open": 409,
    "claim.changed": 409,
    "claim.rejected_on_order": 409,
    "order.time_ahead": 400,
    "order.too_many_videos": 409,
    "order.video_sent_twice": 409,
    "order.videos_pending": 429,
    "claim.over_order_amount": 409,
    "order.conflict": 409,
    "appeal.limit_reached": 409,
    "appeal.window_closed": 409,
    "appeal.in_your_favour": 409,
    "capture.blank": 400,
    "capture.too_many_tokens": 409,
    "capture.too_many_links": 409,
    "capture.in_progress": 409,
    "evidence.too_many": 409,
    "sku.too_many_references": 409,
    "media.too_large": 413,
    "idempotency.key_reused": 422,
    "request.too_large": 413,
    "service.busy": 503,
    **REPORT_STATUS,
}


def _status(code: str) -> int:
    if code in STATUS:
        return STATUS[code]
    if code.endswith(".not_found"):
        return 404
    if code.startswith("media."):
        return 422
    return 400


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


def _said(problem: Any) -> str:
    """One validation problem in words: where, then what. A body that is not JSON read
    "body.1: JSON decode error" (an integrator's walkthrough): the parser's own words and the
    character it stopped at instead."""
    loc = [str(part) for part in problem.get("loc", ())]
    if problem.get("type") == "json_invalid":
        why = (problem.get("ctx") or {}).get("error", "")
        at = loc[1] if len(loc) > 1 else "?"
        return f"the body is not valid JSON ({why}, at character {at})"
    return f"{'.'.join(loc)}: {problem.get('msg', '')}"


def _wants_form(request: Request) -> bool:
    """Whether the route that refused ``request`` takes its body as form fields and files."""
    from fastapi import params

    dependant = getattr(request.scope.get("route"), "dependant", None)
    body = getattr(dependant, "body_params", None) or []
    return any(isinstance(field.field_info, params.Form) for field in body)


def _error(
    code: str,
    message: str,
    status: int,
    file: dict[str, object] | None = None,
    facts: dict[str, object] | None = None,
) -> JSONResponse:
    metrics().errors.labels(code).inc()
    error: dict[str, object] = {"code": code, "message": _printable(message)}
    if file is not None:  # which file of an upload with several (RefundlensError.about_file)
        error["file"] = {k: _printable(v) if isinstance(v, str) else v for k, v in file.items()}
    if facts:  # what a refused file's metadata said (pipeline.describe_refusal)
        error["facts"] = json.loads(json.dumps(facts, default=str))
    return JSONResponse({"error": error}, status_code=status)


FORM_FIELD_BYTES = 64 * 1024
"""The largest text field of a form (the longest, a statement of 8000 characters, is 24 KB in
UTF-8); a file part larger than this is spooled to disk as it arrives."""


class FormLimits(TypedDict, total=False):
    """FastAPI's ``form_limits``."""

    max_files: int
    max_fields: int
    max_part_size: int


def form_limits(settings: Settings) -> FormLimits:
    """FastAPI's limits on a form's parts: two files more than the largest upload takes (so that
    the route can say "too many" with its own code), 30 text fields, each at most
    ``FORM_FIELD_BYTES``."""
    files = max(
        settings.max_photos_per_claim + settings.max_videos_per_claim,
        settings.max_references_per_sku,
        settings.capture_max_photos + 1,
    )
    return {"max_files": files + 2, "max_fields": 30, "max_part_size": FORM_FIELD_BYTES}


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
        # Swagger UI and ReDoc load a CDN's script on this origin: only where asked for.
        # What a form may hold before any route reads it: every text field stays in memory
        # (Starlette's defaults allow 1000 of 1 MB each, a review), files go to disk past 64 KB.
        form_limits=form_limits(settings),
        docs_url="/docs" if settings.api_doc_pages else None,
        redoc_url="/redoc" if settings.api_doc_pages else None,
        responses={
            422: {"model": ErrorOut, "description": "A field breaks its rule (docs/errors.md)."},
            429: {
                "model": ErrorOut,
                "description": "request.rate_limited: past requests_per_minute; see Retry-After.",
            },
            "4XX": {"model": ErrorOut, "description": "Refused, with a code (docs/errors.md)."},
        },
    )
    app.state.runtime = runtime
    app.state.dispatcher = dispatch
    app.state.cipher = cipher
    app.include_router(web.router)
    for router in ROUTERS:
        app.include_router(router)

    # A page's guard (login, CSRF, a claim the user may not see) answers with a page.
    app.add_exception_handler(web.PageAnswer, web.answer_page)

    @app.exception_handler(RefundlensError)
    async def _refundlens_error(request: Request, exc: RefundlensError) -> JSONResponse:
        facts = exc.facts if may_see_facts(request, exc.code) else None
        answer = _error(exc.code, exc.message, _status(exc.code), exc.file, facts)
        if exc.code == "service.busy":
            answer.headers["Retry-After"] = str(settings.busy_retry_after_seconds)
        return answer

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeoutError)
    async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
        # SQLite's write lock held past sqlite_busy_timeout_seconds, a database that does not
        # answer, a pool with no free connection: the request changed nothing (its transaction
        # rolled back), so the client may simply send it again.
        # The route's template, never the path: a capture or sign-in link's path is its
        # capability.
        route = template_of(request.scope)
        log.warning("%s %s: database busy or unreachable: %s", request.method, route, exc)
        err = RefundlensError(
            "service.busy", "The database is busy or unreachable; send the request again shortly."
        )
        metrics().errors.labels(err.code).inc()
        return JSONResponse(
            {"error": err.as_dict()},
            status_code=503,
            headers={"Retry-After": str(settings.busy_retry_after_seconds)},
        )

    @app.exception_handler(ClientDisconnect)
    async def _client_gone(request: Request, _exc: ClientDisconnect) -> JSONResponse:
        # A phone that lost its network, or a buyer who closed the tab, mid-upload: nothing was
        # stored and no one reads the answer. Not a server error (it was logged as a 500 with
        # its traceback: a walkthrough); counted, and logged at INFO with the route's template.
        route = template_of(request.scope)
        log.info("%s %s: the client went away before its upload ended", request.method, route)
        return _error("request.client_gone", "The client went away before its request ended.", 400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = list(exc.errors())
        code = (
            "request.bad_field"
            if problems and all(p["type"] in _FIELD_RULES for p in problems)
            else "request.invalid"
        )
        said = [_said(p) for p in problems[:5]]
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        sent = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if sent == "application/json" and _wants_form(request):
            # JSON sent to a route that takes files was answered "body.order_id: Field
            # required" for every field it had sent (an integrator's walkthrough).
            return _error(
                "request.invalid",
                "This route takes multipart/form-data (fields and files, as curl -F sends "
                "them), not JSON: docs/service.md lists each route's fields.",
                422,
            )
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

    def signed_in(headers: Headers) -> bool:
        """The request's key or web session is a live one (the upload limit is for them)."""
        try:
            with runtime.db.session() as session:
                if "authorization" in headers:
                    try:
                        authenticate(session, headers["authorization"])
                        return True
                    except AuthError:
                        pass
                token = cookie_parser(headers.get("cookie", "")).get(COOKIE)
                return web_session(session, token) is not None
        except (OperationalError, PoolTimeoutError):
            return True  # the route answers 503 service.busy, as it would have

    app.add_middleware(
        BodyLimit,
        multipart_bytes=(settings.max_photos_per_claim + 1) * settings.max_file_bytes,
        other_bytes=settings.max_body_bytes,
        # One live capture: its photos, its clip, and the form's small fields.
        capture_bytes=settings.capture_max_photos * settings.max_file_bytes
        + settings.capture_clip_max_bytes
        + settings.max_body_bytes,
        signed_in=signed_in,
    )
    # A file part of up to 1 MB stayed in memory (Starlette's default spool) before any route
    # could reserve it: a form of 150 small files held 150 MB (a review). From 64 KB a file goes
    # to disk as it arrives; with form_limits a form holds at most about 3 MB in memory.
    MultiPartParser.spool_max_size = FORM_FIELD_BYTES
    app.add_middleware(
        HoldUploadMemory,
        memory=UploadMemory(settings.upload_memory_bytes, settings.upload_slot_wait_seconds),
    )
    limiter = _limiter(settings, settings.requests_per_minute, settings.request_burst)
    anonymous = _limiter(
        settings, settings.anonymous_requests_per_minute, settings.anonymous_request_burst
    )
    if limiter is not None or anonymous is not None:
        log.info(
            "rate limit: %s per credential; %s per address for requests without one or with "
            "one refused; counted %s",
            _rate(settings.requests_per_minute, settings.request_burst),
            _rate(settings.anonymous_requests_per_minute, settings.anonymous_request_burst),
            next(
                (
                    f"in Redis at {x.where}"
                    for x in (limiter, anonymous)
                    if isinstance(x, RedisLimiter)
                ),
                "in this process",
            ),
        )
        # Outside the body limit: a credential past its rate is answered before its body is read.
        app.add_middleware(RateLimit, limiter=limiter, anonymous=anonymous)
    # Around the limits: their 413 and 429 carried none of the headers (a security review).
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Observe)  # outermost: every answer, the body limit's 413 too

    return app


def _limiter(settings: Settings, per_minute: int, burst: int) -> RateLimiter | None:
    if per_minute <= 0:
        return None
    if settings.rate_limit_redis_url:
        return RedisLimiter(settings.rate_limit_redis_url, per_minute, burst)
    return MemoryLimiter(per_minute, burst)


def _rate(per_minute: int, burst: int) -> str:
    return f"{per_minute} requests a minute, {burst} at once" if per_minute > 0 else "no limit"
