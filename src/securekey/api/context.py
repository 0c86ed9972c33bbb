"""Everything a request handler needs, built once per server and kept on ``app.state``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from securekey.api.auth import Authenticator, one_header, require_app_reader, require_operator
from securekey.api.live import CachedConfig, ConfigCache, ReleaseHub, StreamSlots
from securekey.api.metrics import Metrics
from securekey.domain.models import Principal, TokenKind
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    ValidationError,
)
from securekey.scheduler import Scheduler
from securekey.services import SecureKeyService
from securekey.services.tokens import TokenService
from securekey.services.webhooks import WebhookService

__all__ = [
    "ApiContext",
    "authorize_config_read",
    "check_path_params",
    "ctx_of",
    "etag_matches",
    "json_response",
    "operator",
    "principal",
    "readable_config",
]

JSON_TYPE = "application/json"
#: No id or name is longer; a longer path parameter is a mistake, not a lookup.
MAX_PATH_PARAM = 200


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
    streams: StreamSlots = field(default_factory=StreamSlots)
    ready: bool = True
    ping_interval: float = 15.0
    extra: dict[str, object] = field(default_factory=dict)

    async def config(self, ref: str) -> CachedConfig:
        """An app's config at its current release, from memory when possible."""
        hit = self.cache.lookup(ref)
        if hit is not None:
            return hit
        try:
            return await run_in_threadpool(self._load_config, ref)
        except UnavailableError:
            # stale-if-error: the last config this process saw, marked so (see ``stale``).
            known = self.cache.stale(ref)
            if known is None:
                raise
            return known

    def reload_config(self, ref: str) -> CachedConfig:
        """Read an app's config from the database and cache it (in a worker thread)."""
        return self._load_config(ref)

    def _load_config(self, ref: str) -> CachedConfig:
        import time

        # Taken before the read: a rename or destroy committed meanwhile voids this fill.
        generation = self.cache.generation
        app, config = self.service.config_snapshot(ref)
        entry = CachedConfig(
            app.id, app.name, app.release, json.dumps(config).encode(), time.monotonic()
        )
        self.cache.store(entry, generation)
        return entry


def ctx_of(request: Request) -> ApiContext:
    """The context of the app serving ``request``."""
    ctx: ApiContext = request.app.state.ctx
    return ctx


def etag_matches(header: str, etag: str) -> bool:
    """RFC 9110 weak comparison for If-None-Match: ``*``, or a listed tag equal but for ``W/``."""
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_path_params(request: Request) -> None:
    """422 naming the parameter for a NUL byte or an absurd length in any path parameter.

    Checked once here, after authentication, so no such string reaches a database
    (PostgreSQL refuses NUL in text) and callers learn which part of the path is wrong.
    """
    for name, value in request.path_params.items():
        if not isinstance(value, str):
            continue
        if "\x00" in value:
            raise ValidationError(name, f"{name} must not contain NUL bytes.")
        if len(value) > MAX_PATH_PARAM:
            raise ValidationError(name, f"{name} must be at most {MAX_PATH_PARAM} characters.")


async def _authenticated(request: Request) -> Principal:
    ctx = ctx_of(request)
    client = _client(request)
    try:
        header = one_header(request.headers.getlist("authorization"))
    except AuthenticationError as error:
        raise ctx.auth.refuse(client, error) from None
    known = ctx.auth.try_cached(header)
    if known is not None:
        return known
    return await run_in_threadpool(ctx.auth.authenticate, header, client)


async def principal(request: Request) -> Principal:
    """The authenticated caller (401 without valid credentials, 429 when rate-limited)."""
    who = await _authenticated(request)
    check_path_params(request)
    return who


async def operator(request: Request) -> Principal:
    """The caller, who must hold an operator token (403 for app tokens)."""
    who = await _authenticated(request)
    require_operator(who)
    check_path_params(request)
    return who


async def readable_config(ctx: ApiContext, app: str, who: Principal) -> CachedConfig:
    """``app``'s config if ``who`` may read it (403 otherwise).

    For an app token an unknown app is a 403 too, as any app but its own is: a 404 would let
    a token holder find out which app names exist.
    """
    try:
        snapshot = await ctx.config(app)
    except NotFoundError:
        if who.kind is not TokenKind.OPERATOR:
            raise ForbiddenError("This token belongs to another app.") from None
        raise
    authorize_config_read(who, snapshot)
    return snapshot


def authorize_config_read(who: Principal, snapshot: CachedConfig) -> None:
    """The one rule for reading an app's config: an operator, or a token of that app (403).

    Asked by the route (through ``readable_config``) and by the in-memory fast path
    (``api/middleware/cached_config.py``), which leaves any refusal to the route.
    """
    require_app_reader(who, snapshot.app_id)


def json_response(
    data: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer with Heroku's content type."""
    return JSONResponse(data, status, headers=headers, media_type=JSON_TYPE)
