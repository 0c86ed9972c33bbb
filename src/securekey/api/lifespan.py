"""The server's lifespan: what starts before the first request and stops after the last.

The release hub's loop, on PostgreSQL the ``LISTEN`` thread that hears other replicas'
releases, the in-process scheduler and the webhook sender; stopped in the reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from securekey.api.context import ApiContext
from securekey.api.live import PgReleaseListener, ReleaseSink
from securekey.api.webhook_wiring import WebhookWiring
from securekey.runtime import Runtime
from securekey.store.sql import RELEASE_CHANNEL

__all__ = ["Lifespan", "make_lifespan"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def make_lifespan(
    runtime: Runtime,
    ctx: ApiContext,
    sink: ReleaseSink,
    webhooks: WebhookWiring,
    *,
    graceful_timeout: float,
) -> Lifespan:
    """The lifespan of the API over ``runtime``; ``ctx.ready`` is true while it runs."""
    hub = ctx.hub
    scheduler = ctx.scheduler

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        listener = None
        if runtime.store.dialect == "postgresql":
            dsn = runtime.store.engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False
            )
            listener = PgReleaseListener(dsn, RELEASE_CHANNEL, sink, runtime.store.health)
            listener.start()
            await run_in_threadpool(listener.connected.wait, 10.0)
        if scheduler is not None:
            scheduler.start()
        webhooks.start()
        ctx.ready = True
        try:
            yield
        finally:
            ctx.ready = False
            await webhooks.stop()
            if scheduler is not None:
                # Stops between rotations: the one in progress commits or rolls back whole.
                await run_in_threadpool(scheduler.stop, graceful_timeout)
            if listener is not None:
                await run_in_threadpool(listener.stop)

    return lifespan
