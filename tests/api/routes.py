"""Every (method, path template) an app serves, read from its routes (included routers too).

The web dashboard is not API and is left out: its ``GET /`` entry (route name
``dashboard-home``) and its pages, a mounted app under ``/ui`` with their own session
sign-in (tests/web covers them; test_permissions checks that tokens open none of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI


def _walk(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _walk(included.routes, prefix + str(getattr(context, "prefix", "") or ""))
            continue
        path = getattr(route, "path", None)
        if getattr(route, "name", None) == "dashboard-home":
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD" and path is not None:
                yield method, prefix + path


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Sorted, unique (method, path) pairs, HEAD left out."""
    return sorted(set(_walk(app.routes)))
