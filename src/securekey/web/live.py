"""The dashboard's live view: Server-Sent Events that carry fresh page fragments after every
release a page cares about; names, fingerprints and times only, never values.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from securekey.exceptions import NotFoundError
from securekey.web import pages
from securekey.web.sessions import Session

if TYPE_CHECKING:
    from securekey.web.routes import Dashboard

__all__ = ["LiveView"]

#: The fragments of each kind of page that a live view replaces.
_REGIONS: dict[str, tuple[str, ...]] = {
    "app": ("releases",),
    "addon": ("rotation", "keys", "releases", "attachments"),
}


class LiveView:
    """``/ui/live/{kind}/{ref}`` for one dashboard."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard

    async def stream(self, request: Request, session: Session) -> Response:
        """Server-Sent Events for one page: fresh fragments after every release it cares about.

        It listens to the release hub that feeds ``/apps/{app}/config-vars/stream`` but sends
        names, fingerprints and times only, never values, and needs the session, not a token.
        """
        kind = request.path_params["kind"]
        ref = request.path_params["ref"]
        if kind not in _REGIONS:
            raise NotFoundError("live_view", kind)
        await run_in_threadpool(pages.live_targets, self.dashboard.service, kind, ref)
        return StreamingResponse(
            self._events(request, session, kind, ref),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(
        self, request: Request, session: Session, kind: str, ref: str
    ) -> AsyncIterator[bytes]:
        dashboard = self.dashboard
        hub = dashboard.ctx.hub
        last = ""
        while True:
            try:
                _target, app_ids = await run_in_threadpool(
                    pages.live_targets, dashboard.service, kind, ref
                )
                seen = {a: hub.known_version(a) for a in app_ids}
                regions = await run_in_threadpool(self._regions, kind, ref, session)
            except NotFoundError:
                yield b"event: deleted\ndata: {}\n\n"
                return
            payload = json.dumps({"regions": regions})
            if payload != last:
                yield f"event: update\ndata: {payload}\n\n".encode()
                last = payload
            if any(hub.known_version(a) > v for a, v in seen.items()):
                continue  # a release landed while we were rendering
            woke = await _wait_any(hub.wait, app_ids, dashboard.ctx.ping_interval)
            if hub.closing or await request.is_disconnected():
                return
            if not dashboard.sessions.alive(session) or not await dashboard.still_valid(session):
                yield b"event: signed-out\ndata: {}\n\n"
                return
            if not woke:
                yield b": ping\n\n"

    def _regions(self, kind: str, ref: str, session: Session) -> dict[str, str]:
        """The page fragments a live view replaces, rendered as on the page itself."""
        service = self.dashboard.service
        data = pages.app_page(service, ref) if kind == "app" else pages.addon_page(service, ref)
        context = {"csrf": session.csrf, "revealed": None, **data}
        module = self.dashboard.env.get_template(f"_{kind}_regions.html").make_module(context)
        return {name: str(getattr(module, f"region_{name}")()) for name in _REGIONS[kind]}


async def _wait_any(
    wait: Callable[[str, float], Awaitable[bool]], app_ids: list[str], timeout: float
) -> bool:
    """True when any of ``app_ids`` gets a release within ``timeout``."""
    tasks = [asyncio.ensure_future(wait(app_id, timeout)) for app_id in app_ids]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return any(t.result() for t in done)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
