"""The ASGI application factory: routes, error table, live config, scheduler and webhooks.

``create_api(runtime)`` gives a FastAPI app whose lifespan starts the in-process scheduler, the
webhook sender and, on PostgreSQL, the ``LISTEN`` thread that hears other replicas' releases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, MutableMapping
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from securekey import __version__
from securekey.api.auth import Authenticator, FailureLimiter
from securekey.api.context import ApiContext, etag_matches
from securekey.api.errors import install_error_handlers
from securekey.api.live import ConfigCache, ReleaseHub, ReleaseSink, StreamSlots
from securekey.api.metrics import Metrics, method_label
from securekey.api.routes import audit, extras, ops, platform, stream
from securekey.api.webhook_sender import WebhookSender
from securekey.domain.clock import Clock
from securekey.domain.models import TokenKind
from securekey.runtime import Runtime
from securekey.scheduler import Scheduler
from securekey.services.tokens import TokenService
from securekey.services.webhooks import WebhookService
from securekey.web import mount_dashboard

__all__ = ["MAX_BODY", "create_api"]

log = logging.getLogger("securekey.api")

#: Request bodies larger than this are refused with 413.
MAX_BODY = 64 * 1024


_CONFIG_PATH = re.compile(r"^/apps/([^/]{1,200})/config-vars$")


class _CachedConfigRead:
    """ASGI middleware: the hot read, ``GET /apps/{app}/config-vars``, answered from memory.

    Only when both the caller's token and the app's config are already cached, and the caller
    may read that app; anything else (first read, unknown token, rate limit, errors) falls
    through to the documented FastAPI route, which gives the same answers the slow way.
    """

    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

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
        if who.kind is not TokenKind.OPERATOR and who.app_id != snapshot.app_id:
            return False
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
        scope["route"] = _FAST_ROUTE
        return True


class _FastRoute:
    path = "/apps/{app}/config-vars"


_FAST_ROUTE = _FastRoute()


class _Limits:
    """ASGI middleware: 413 for bodies over ``MAX_BODY``; request latency by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        digits = length is not None and length.isascii() and length.isdigit()
        if length is not None and (not digits or int(length) > MAX_BODY):
            await _too_large(send)
            return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY:
                    too_large = True
                    raise _BodyTooLarge
            return message

        status = 500
        started = False

        async def record_send(message: Message) -> None:
            nonlocal status, started
            if too_large:
                # The app caught our exception while reading the body (FastAPI answers 400
                # "error parsing the body"): a chunked body past the limit is still a 413.
                if message["type"] == "http.response.start" and not started:
                    started = True
                    status = 413
                    await _too_large(send)
                return
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        begin = time.perf_counter()
        try:
            await self.app(scope, limited_receive, record_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send)
            status = 413
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(
                method_label(scope["method"]), template, str(status)
            ).observe(time.perf_counter() - begin)


class _BodyTooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Send) -> None:
    body = b'{"id":"request_too_large","message":"Request bodies are limited to 64 KiB."}'
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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

    Webhooks: ``webhook_interval`` is the fallback poll (new releases wake the sender at
    once), ``webhook_timeout`` bounds each attempt in total, ``webhook_concurrency`` the
    attempts in flight (0: send nothing, for tests that only store webhooks);
    ``allow_private_webhooks`` lets hooks target private addresses.
    """
    service = runtime.service
    the_clock = clock or service.clock
    hub = ReleaseHub()
    cache = ConfigCache(ttl=cache_ttl)
    scheduler = (
        Scheduler(service, the_clock, interval=scheduler_interval) if run_scheduler else None
    )
    tokens = TokenService(runtime.store, runtime.store.cipher, the_clock)

    def live_values() -> dict[str, float]:
        return {
            "scheduled_rotations": float(scheduler.rotations if scheduler else 0),
            "rotation_failures": float(scheduler.failures if scheduler else 0),
            "watchers": float(hub.watchers),
            "cache_hits": float(cache.hits),
        }

    metrics = Metrics(live_values)
    ctx = ApiContext(
        service=service,
        tokens=tokens,
        webhooks=WebhookService(
            runtime.store,
            the_clock,
            backoff=webhook_backoff,
            # A lease outlives any attempt, so no other replica takes a delivery being sent.
            lease=timedelta(seconds=max(60.0, 2 * webhook_timeout)),
            allow_private=allow_private_webhooks,
        ),
        auth=Authenticator(tokens, FailureLimiter(limit=auth_failure_limit), ttl=auth_cache_ttl),
        hub=hub,
        cache=cache,
        metrics=metrics,
        scheduler=scheduler,
        streams=StreamSlots(per_token=max_streams_per_token, total=max_streams),
        ping_interval=ping_interval,
        extra={"database": runtime.store.dialect},
    )
    sink = ReleaseSink(hub, cache)
    runtime.store.add_listener(sink)
    sender = WebhookSender(
        ctx.webhooks,
        concurrency=webhook_concurrency,
        timeout=webhook_timeout,
        interval=webhook_interval,
    )
    runtime.store.add_listener(sender.on_releases)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        await run_in_threadpool(runtime.store.listen, 10.0)  # other replicas' notices too
        if scheduler is not None:
            scheduler.start()
        sending = asyncio.create_task(sender.run() if webhook_concurrency > 0 else asyncio.sleep(0))
        ctx.ready = True
        try:
            yield
        finally:
            ctx.ready = False
            sender.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sending, webhook_timeout + 10)
            if scheduler is not None:
                # Stops between rotations: the one in progress commits or rolls back whole.
                await run_in_threadpool(scheduler.stop, graceful_timeout)

    app = FastAPI(
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
    app.include_router(platform.router)
    app.include_router(extras.router)
    app.include_router(stream.router)
    app.include_router(audit.router)
    app.include_router(ops.router)
    mount_dashboard(app, ctx)
    app.add_middleware(_CachedConfigRead, ctx=ctx)
    app.add_middleware(_Limits, metrics=metrics)
    _document_security(app)
    return app


def _document_security(app: FastAPI) -> None:
    """Declare Bearer and Basic (token as password) in the OpenAPI description."""
    original: Callable[[], dict[str, Any]] = app.openapi
    public = {"/healthz", "/readyz", "/metrics", "/openapi.json"}

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components: MutableMapping[str, Any] = schema.setdefault("components", {})
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "basic": {"type": "http", "scheme": "basic"},
        }
        for path, operations in schema.get("paths", {}).items():
            if path in public:
                continue
            for operation in operations.values():
                operation["security"] = [{"bearer": []}, {"basic": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
