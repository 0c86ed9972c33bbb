"""Beyond Heroku: the live config stream (rotation, tokens, webhooks: modules of their own)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from securekey.api.auth import credentials_from_header, require_app_reader
from securekey.api.context import ctx_of, readable_config
from securekey.api.live import CachedConfig, StreamSlots
from securekey.api.routes._common import ERRORS, Anyone
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
)

router = APIRouter()

#: Seconds between looks at the database from a stream while it is unavailable.
OUTAGE_POLL = 1.0
#: The last event of a stream whose server is stopping: reconnect (to another replica) after
#: ``retry`` ms, resuming with Last-Event-ID; the event carries no id, so that stays the same.
SHUTDOWN_EVENT = (
    b'retry: 1000\nevent: shutdown\ndata: {"reason": "the server is stopping; reconnect"}\n\n'
)


# ----------------------------------------------------------------- live stream


def _event(snapshot: CachedConfig) -> bytes:
    return b"id: %d\nevent: config\ndata: %s\n\n" % (snapshot.release, snapshot.body)


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
    app_id = first.app_id
    header = request.headers.get("authorization")
    address = request.client.host if request.client else "unknown"

    async def still_allowed() -> bool:
        # A stream outlives its token's check: look again before every event and ping, so a
        # revoked token stops receiving keys (at once here, within the auth cache TTL elsewhere).
        try:
            raw = credentials_from_header(header)
            now = ctx.auth.cached(raw) if raw else None  # no thread hop for known tokens
            if now is None:
                now = await run_in_threadpool(ctx.auth.authenticate, header, address)
            require_app_reader(now, app_id)
        except (AuthenticationError, ForbiddenError, RateLimitedError):
            return False
        except UnavailableError:
            return True  # nobody can revoke while the database is down; keep the stream open
        return True

    async def events() -> AsyncIterator[bytes]:
        ctx.hub.watchers += 1
        try:
            sent = resume if resume == first.release else None
            current: CachedConfig | None = first
            if sent is None:
                yield _event(first)
                sent = first.release
            else:
                yield b": resumed\n\n"
            while True:
                if ctx.hub.known_version(app_id) <= sent:
                    woke = await ctx.hub.wait(app_id, ctx.ping_interval)
                    if ctx.hub.closing:
                        yield SHUTDOWN_EVENT
                        return
                    if await request.is_disconnected():
                        return
                    if not await still_allowed():
                        return
                    if not woke:
                        yield b": ping\n\n"
                elif not await still_allowed():
                    return
                try:
                    current = await ctx.config(app_id)
                except NotFoundError:
                    yield b"event: deleted\ndata: {}\n\n"
                    return
                except UnavailableError:
                    current = None
                if current is None or current.stale:
                    # The database is down: stay open, look again shortly (no busy loop).
                    await asyncio.sleep(OUTAGE_POLL)
                    continue
                if current.release > sent:
                    yield _event(current)
                    sent = current.release
        finally:
            ctx.hub.watchers -= 1

    ctx.streams.acquire(who.token_id)
    return _CountedStream(
        ctx.streams,
        who.token_id,
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


class _CountedStream(StreamingResponse):
    """A streaming response that gives its stream slot back however it ends (finished,
    disconnected, cancelled at shutdown, or never started)."""

    def __init__(
        self, slots: StreamSlots, token_id: str, content: AsyncIterator[bytes], **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self._slots = slots
        self._token_id = token_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.release(self._token_id)
