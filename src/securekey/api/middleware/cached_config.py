"""The hot read, ``GET /apps/{app}/config-vars``, answered from memory before FastAPI routes it.

It decides who may read with the route's own rule (``authorize_config_read``) and names the
route template for the latency metric through the scope's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from securekey.api.context import ApiContext, authorize_config_read, etag_matches
from securekey.api.middleware.limits import set_route_template
from securekey.exceptions import ForbiddenError

__all__ = ["CONFIG_ROUTE", "CachedConfigRead"]

#: The route this middleware answers for, as FastAPI declares it.
CONFIG_ROUTE = "/apps/{app}/config-vars"
_CONFIG_PATH = re.compile(r"^/apps/([^/]{1,200})/config-vars$")
#: Share of the config cache's TTL after which a hit also re-reads that config, once, in the
#: background: under load an entry is renewed before it expires, so the requests in flight
#: never all miss together (each with its own thread hop and read: the read path's p99).
REFRESH_AT = 0.8


class CachedConfigRead:
    """ASGI middleware: the hot read, ``GET /apps/{app}/config-vars``, answered from memory.

    Only when both the caller's token and the app's config are already cached, and the caller
    may read that app; anything else (first read, unknown token, rate limit, errors) falls
    through to the documented FastAPI route, which gives the same answers the slow way.
    """

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _CONFIG_PATH.match(scope["path"])
            if match is not None and await self._answer(scope, match.group(1), send):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, ref: str, send: Send) -> bool:
        if "\x00" in ref:
            return False
        auth = if_none_match = None
        for key, value in scope.get("headers", []):
            if key == b"authorization":
                if auth is not None:
                    return False  # several: the route refuses them, with the rule in one place
                auth = value.decode("latin-1")
            elif key == b"if-none-match":
                if_none_match = value.decode("latin-1")
        who = self.ctx.auth.try_cached(auth)
        if who is None:
            return False
        snapshot = self.ctx.cache.lookup(ref)
        if snapshot is None:
            return False
        try:
            authorize_config_read(who, snapshot)
        except ForbiddenError:
            return False  # the route answers the 403, so it is logged and shaped in one place
        cache = self.ctx.cache
        if (
            time.monotonic() - snapshot.stored_at > REFRESH_AT * cache.ttl
            and snapshot.app_id not in self._refreshing
        ):
            self._refreshing[snapshot.app_id] = asyncio.get_running_loop().create_task(
                self._refresh(snapshot.app_id)
            )
        etag = f'"{snapshot.release}"'.encode()
        headers = [(b"etag", etag), (b"cache-control", b"no-store")]
        if if_none_match is not None and etag_matches(if_none_match, etag.decode()):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        else:
            headers += [
                (b"content-length", str(len(snapshot.body)).encode()),
                (b"content-type", b"application/json"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": snapshot.body})
        set_route_template(scope, CONFIG_ROUTE)
        return True

    async def _refresh(self, app_id: str) -> None:
        """Read ``app_id``'s config again and cache it (the cache's own rules: not over a newer
        release, not across a rename); if the database cannot answer, the entry expires."""
        try:
            with contextlib.suppress(Exception):
                await run_in_threadpool(self.ctx.reload_config, app_id)
        finally:
            self._refreshing.pop(app_id, None)
