"""The ASGI application factory: the context, the routes, the error table and the middlewares.

``create_api(runtime)`` gives a FastAPI app; its lifespan (``api/lifespan.py``) starts the
in-process scheduler, the webhook sender and, on PostgreSQL, the ``LISTEN`` thread.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from securekey import __version__
from securekey.api.auth import Authenticator, FailureLimiter
from securekey.api.context import ApiContext
from securekey.api.errors import install_error_handlers
from securekey.api.lifespan import Lifespan, make_lifespan
from securekey.api.live import ConfigCache, ReleaseHub, ReleaseSink, StreamSlots
from securekey.api.metrics import Metrics
from securekey.api.middleware import MAX_BODY, CachedConfigRead, Limits, keep_server_send
from securekey.api.openapi import document_security
from securekey.api.routes import (
    audit,
    ops,
    platform,
    releases,
    rotation,
    stream,
    tokens,
    webhooks,
)
from securekey.api.webhook_wiring import WebhookWiring
from securekey.domain.clock import Clock
from securekey.runtime import Runtime
from securekey.scheduler import Scheduler
from securekey.services.tokens import TokenService
from securekey.web import mount_dashboard

__all__ = ["MAX_BODY", "create_api"]

_ROUTERS = (platform, releases, rotation, tokens, webhooks, stream, audit, ops)


def create_api(
    runtime: Runtime,
    *,
    clock: Clock | None = None,
    run_scheduler: bool = True,
    scheduler_interval: float = 1.0,
    webhook_interval: float = 5.0,
    webhook_backoff: timedelta = timedelta(seconds=5),
    webhook_timeout: float = 15.0,
    webhook_concurrency: int = 8,
    allow_private_webhooks: bool = False,
    auth_failure_limit: int = 30,
    auth_cache_ttl: float = 5.0,
    max_streams_per_token: int = 20,
    max_streams: int = 10_000,
    ping_interval: float = 15.0,
    cache_ttl: float = 5.0,
    graceful_timeout: float = 10.0,
) -> FastAPI:
    """Build the HTTP API over ``runtime`` (its store must already be migrated).

    The ``webhook_*`` settings are ``WebhookWiring``'s (concurrency 0: send nothing, for tests
    that only store webhooks); ``allow_private_webhooks`` lets hooks target private addresses.
    """
    service = runtime.service
    the_clock = clock or service.clock
    scheduler = (
        Scheduler(service, the_clock, interval=scheduler_interval) if run_scheduler else None
    )
    hooks = WebhookWiring(
        runtime.store,
        the_clock,
        backoff=webhook_backoff,
        timeout=webhook_timeout,
        concurrency=webhook_concurrency,
        interval=webhook_interval,
        allow_private=allow_private_webhooks,
    )
    tokens = TokenService(runtime.store, runtime.store.cipher, the_clock)
    auth = Authenticator(tokens, FailureLimiter(limit=auth_failure_limit), ttl=auth_cache_ttl)
    hub, cache = ReleaseHub(), ConfigCache(ttl=cache_ttl)
    ctx = ApiContext(
        service=service,
        tokens=tokens,
        webhooks=hooks.service,
        auth=auth,
        hub=hub,
        cache=cache,
        metrics=Metrics(_live_values(hub, cache, scheduler)),
        scheduler=scheduler,
        streams=StreamSlots(per_token=max_streams_per_token, total=max_streams),
        ping_interval=ping_interval,
        extra={"database": runtime.store.dialect},
    )
    sink = ReleaseSink(hub, cache, forget_token=auth.forget)
    runtime.store.add_listener(sink)
    hooks.listen()
    return _assemble(
        ctx, make_lifespan(runtime, ctx, sink, hooks, graceful_timeout=graceful_timeout)
    )


def _live_values(
    hub: ReleaseHub, cache: ConfigCache, scheduler: Scheduler | None
) -> Callable[[], dict[str, float]]:
    """What ``/metrics`` reads from this process at each scrape."""

    def live_values() -> dict[str, float]:
        return {
            "scheduled_rotations": float(scheduler.rotations if scheduler else 0),
            "rotation_failures": float(scheduler.failures if scheduler else 0),
            "watchers": float(hub.watchers),
            "config_cache_hits": float(cache.hits),
        }

    return live_values


class _Api(FastAPI):
    """FastAPI that keeps the server's ``send`` in the scope, before any middleware wraps it
    (live streams write their events with it: ``middleware.server_send``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        keep_server_send(scope, send)
        await super().__call__(scope, receive, send)


def _assemble(ctx: ApiContext, lifespan: Lifespan) -> FastAPI:
    """The app: routes, error table, dashboard and middlewares (the outermost added last)."""
    app = _Api(
        title="securekey",
        version=__version__,
        summary="Automatic key rotation; a Heroku Platform API v3 subset.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for module in _ROUTERS:
        app.include_router(module.router)
    mount_dashboard(app, ctx)
    app.add_middleware(CachedConfigRead, ctx=ctx)
    app.add_middleware(Limits, metrics=ctx.metrics)
    document_security(app)
    return app
