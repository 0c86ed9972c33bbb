"""Everything a request handler needs, built once per server and kept on ``app.state``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from securekey.api.auth import Authenticator, require_operator
from securekey.api.live import CachedConfig, ConfigCache, ReleaseHub
from securekey.api.metrics import Metrics
from securekey.domain.models import Principal
from securekey.scheduler import Scheduler
from securekey.services import SecureKeyService
from securekey.services.tokens import TokenService
from securekey.services.webhooks import WebhookService

__all__ = ["ApiContext", "ctx_of", "json_response", "operator", "principal"]

JSON_TYPE = "application/json"


@dataclass
class ApiContext:
    """The services and live state behind the API."""

    service: SecureKeyService
    tokens: TokenService
    webhooks: WebhookService
    auth: Authenticator
    hub: ReleaseHub
    cache: ConfigCache
    metrics: Metrics
    scheduler: Scheduler | None = None
    ready: bool = True
    ping_interval: float = 15.0
    extra: dict[str, object] = field(default_factory=dict)

    async def config(self, ref: str) -> CachedConfig:
        """An app's config at its current release, from memory when possible."""
        hit = self.cache.lookup(ref)
        if hit is not None:
            return hit
        return await run_in_threadpool(self._load_config, ref)

    def _load_config(self, ref: str) -> CachedConfig:
        import time

        app, config = self.service.config_snapshot(ref)
        entry = CachedConfig(
            app.id, app.name, app.release, json.dumps(config).encode(), time.monotonic()
        )
        self.cache.store(entry)
        return entry


def ctx_of(request: Request) -> ApiContext:
    """The context of the app serving ``request``."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def principal(request: Request) -> Principal:
    """The authenticated caller (401 without valid credentials, 429 when rate-limited)."""
    ctx = ctx_of(request)
    header = request.headers.get("authorization")
    client = _client(request)
    known = ctx.auth.try_cached(header, client)
    if known is not None:
        return known
    return await run_in_threadpool(ctx.auth.authenticate, header, client)


async def operator(request: Request) -> Principal:
    """The caller, who must hold an operator token (403 for app tokens)."""
    who = await principal(request)
    require_operator(who)
    return who


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer with Heroku's content type."""
    return JSONResponse(data, status, headers=headers, media_type=JSON_TYPE)
