"""The template of the route a request asked for, as logs and metrics name it: the path a client
sends with its parameters left as names (``/web/capture/{token}``), never the path itself (a
capture or sign-in link's path is its capability).

FastAPI keeps an included router's routes with their own path (``/capture/{token}``) and adds
the router's prefix when it matches; ``fastapi.routing.iter_route_contexts`` gives each route
with its full path, once per app.
"""

from __future__ import annotations

import weakref
from typing import Any

from starlette.routing import Match
from starlette.types import Scope

__all__ = ["matching_route", "template_of"]

_FULL_PATHS: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _contexts(app: Any) -> list[Any]:
    from fastapi.routing import iter_route_contexts

    return list(iter_route_contexts(getattr(getattr(app, "router", None), "routes", [])))


def _full_paths(app: Any) -> dict[int, str]:
    paths = _FULL_PATHS.get(app)
    if paths is None:
        paths = {id(rc.original_route): rc.path for rc in _contexts(app) if rc.path is not None}
        _FULL_PATHS[app] = paths
    return paths


def template_of(scope: Scope) -> str:
    """The full template of the route the router (or :func:`matching_route`) chose, else
    ``unmatched``."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    app = scope.get("app")
    full = _full_paths(app).get(id(route)) if app is not None else None
    return full or getattr(route, "path", None) or "unmatched"


def matching_route(scope: Scope) -> Any:
    """The route the router would choose for ``scope`` (None where none matches in full), for a
    request answered before it reaches the router."""
    app = scope.get("app")
    if app is None:
        return None
    for rc in _contexts(app):
        match, _child = rc.matches(scope)
        if match == Match.FULL:
            return rc.original_route
    return None
