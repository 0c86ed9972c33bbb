"""The server's lifespan: what starts before the first request and stops after the last.

The release hub's loop, the store's notice listener (on PostgreSQL it hears other replicas'
releases), the in-process scheduler and the webhook sender; stopped in the reverse order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from securekey.api.context import ApiContext
from securekey.api.live import ReleaseSink
from securekey.api.webhook_wiring import WebhookWiring
from securekey.runtime import Runtime

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
        await run_in_threadpool(runtime.store.listen, 10.0)  # other replicas' notices too
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

    return lifespan
