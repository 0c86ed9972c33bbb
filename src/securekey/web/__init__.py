"""The operator's web dashboard, served by ``securekey server`` at ``/`` (pages under ``/ui``).

Server-rendered pages (Jinja2), one small script and one stylesheet shipped in the package:
no build step, no CDN. Sign-in takes an operator token and gives a server-side session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

if TYPE_CHECKING:  # the API imports us to mount the dashboard; we need its context's type
    from fastapi import FastAPI

    from securekey.api.context import ApiContext
    from securekey.web.routes import Dashboard

__all__ = ["mount_dashboard"]


async def _home(_request: Request) -> Response:
    return RedirectResponse("/ui/", 303)


def mount_dashboard(app: FastAPI, ctx: ApiContext) -> Dashboard:
    """Serve the dashboard on ``app``: ``/`` leads to it, everything else lives under ``/ui``."""
    from securekey.web.routes import Dashboard

    dashboard = Dashboard(ctx)
    app.mount("/ui", dashboard.app(), name="dashboard")
    app.add_route("/", _home, methods=["GET"], name="dashboard-home", include_in_schema=False)
    return dashboard
