"""The live config stream: ``GET /apps/{app}/config-vars/stream`` (Server-Sent Events).

Each stream is a watcher of the broadcast hub (``api.broadcast``), answered as raw ASGI.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from securekey.api.auth import credentials_from_header, require_app_reader
from securekey.api.broadcast import (
    SHUTDOWN_EVENT,
    ReleaseHub,
    Verifier,
    Watcher,
    config_event,
)
from securekey.api.context import ApiContext, ctx_of, principal, readable_config
from securekey.api.live import StreamSlots
from securekey.api.middleware import server_send
from securekey.api.routes._common import ERRORS
from securekey.domain.models import Principal
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    RateLimitedError,
    UnavailableError,
)

__all__ = ["SHUTDOWN_EVENT", "router"]

router = APIRouter()

Anyone = Annotated[Principal, Depends(principal)]

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


@router.get(
    "/apps/{app}/config-vars/stream",
    responses={
        200: {
            "description": "Server-Sent Events: `event: config`, `id` = release, `data` = vars",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **ERRORS,
    },
    tags=["config vars"],
)
async def stream_config_vars(
    request: Request,
    app: str,
    who: Anyone,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Current config vars on connect and on every release (``Last-Event-ID`` resumes)."""
    ctx = ctx_of(request)
    first = await readable_config(ctx, app, who)
    # Our ids are release numbers; anything else (other ids, Unicode digits) means "send all".
    resume = (
        int(last_event_id)
        if last_event_id and last_event_id.isascii() and last_event_id.isdigit()
        else None
    )
    opening = b": resumed\n\n" if resume == first.release else config_event(first)
    address = request.client.host if request.client else "unknown"
    header = request.headers.get("authorization")
    watcher = Watcher(first.app_id, who.token_id, header, first.release, address)
    ctx.hub.connect(ctx.config, _verifier(ctx), ctx.auth.forget, ctx.ping_interval)
    ctx.streams.acquire(who.token_id)
    return _EventStream(ctx.hub, ctx.streams, watcher, opening)


def _verifier(ctx: ApiContext) -> Verifier:
    async def verify(watcher: Watcher) -> bool | None:
        # A stream outlives its token's check: the hub looks again every heartbeat (once per
        # token), besides ending a token's streams at once when its revocation is announced.
        try:
            raw = credentials_from_header(watcher.header)
            now = ctx.auth.cached(raw) if raw else None  # no thread hop for known tokens
            if now is None:
                now = await run_in_threadpool(
                    ctx.auth.authenticate, watcher.header, watcher.address
                )
            require_app_reader(now, watcher.app_id)
        except (AuthenticationError, ForbiddenError):
            return False
        except (RateLimitedError, UnavailableError):
            return None  # nobody can revoke while the database is down; keep the stream open
        return True

    return verify


class _EventStream(Response):
    """The stream as raw ASGI: no per-stream task group or generator, no polling for a
    disconnect (one waiter on ``receive`` ends the watcher); gives its slot back however it
    ends (finished, disconnected, cancelled at shutdown).

    The start and the opening event go through every middleware; then the watcher writes its
    events itself, with the server's ``send`` (``middleware.server_send``), from the hub's
    fan-out pass: this handler only waits for the end, to send the last bytes (the same way).
    """

    def __init__(
        self, hub: ReleaseHub, slots: StreamSlots, watcher: Watcher, opening: bytes
    ) -> None:
        super().__init__(media_type="text/event-stream")
        self._hub = hub
        self._slots = slots
        self._watcher = watcher
        self._opening = opening

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = self._watcher
        gone = asyncio.ensure_future(_disconnect(receive, watcher))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": self._opening, "more_body": True})
            direct = server_send(scope, send)
            watcher.attach(direct)
            self._hub.subscribe(watcher)
            await watcher.ended()
            # Straight to the server too: a wrapper that stopped passing messages on (``Limits``
            # after a request body over the limit) must not leave the response unfinished.
            await direct({"type": "http.response.body", "body": watcher.last()})
        except OSError:
            pass  # the client went away mid-write: the same as a disconnect
        finally:
            watcher.detach()
            gone.cancel()
            self._hub.unsubscribe(watcher)
            self._slots.release(watcher.token_id)


async def _disconnect(receive: Receive, watcher: Watcher) -> None:
    """Wait for the client to leave (a request body, if any, is read and ignored; one the
    server refuses to read ends the stream too)."""
    with contextlib.suppress(Exception):  # e.g. a body over the limit: the stream ends too
        while (await receive())["type"] != "http.disconnect":
            pass
    watcher.finish()
