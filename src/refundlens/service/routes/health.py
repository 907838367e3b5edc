"""Liveness and readiness, and the server's address sent on to the web page."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from ... import __version__
from ..deps import DispatcherDep, RuntimeDep, SessionDep
from ..readiness import public_checks, readiness
from ..schemas import HealthOut, ReadyOut

__all__ = ["router"]

router = APIRouter()


@router.get("/", include_in_schema=False)
def root() -> RedirectResponse:
    """A person who opens the server's address lands on the web page."""
    return RedirectResponse("/web/", status_code=303)


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", response_model=HealthOut)
def healthz(s: SessionDep, runtime: RuntimeDep, dispatch: DispatcherDep) -> HealthOut:
    """Liveness: the process answers and reaches its database. Readiness is /readyz."""
    s.execute(select(1))
    return HealthOut(
        status="ok",
        version=__version__,
        database=runtime.db.engine.dialect.name,
        tasks="celery" if dispatch.celery else "in-process",
    )


@router.head("/readyz", include_in_schema=False)
@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "Not ready: the checks say what failed."}},
)
def readyz(response: Response, runtime: RuntimeDep, dispatch: DispatcherDep) -> ReadyOut:
    """Readiness: the database answers and its migrations are at head, the broker (when one
    is configured) accepts connections, the blob folder is writable. 503 names what failed."""
    checks = public_checks(readiness(runtime, dispatch))
    ready = all(v == "ok" for v in checks.values())
    response.status_code = 200 if ready else 503
    return ReadyOut(status="ready" if ready else "not_ready", checks=checks)
