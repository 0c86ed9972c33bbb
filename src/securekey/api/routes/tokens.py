"""Beyond Heroku, tokens: an app's read-only tokens and the operator tokens, values shown once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Request
from fastapi.responses import Response

from securekey.api.context import ApiContext, ctx_of, json_response
from securekey.api.routes._common import Operator, RangeHeader, RouteTable, listed
from securekey.api.schemas import TokenCreate, TokenCreatedOut, TokenOut
from securekey.domain.models import Token
from securekey.services.resources import token_resource

__all__ = ["router"]

routes = RouteTable("tokens")
router = routes.router
Description = Annotated[TokenCreate | None, Body()]


def _revoked(ctx: ApiContext, gone: Token) -> Token:
    """Forget a revoked token in this process's cache: it stops working here at once."""
    ctx.auth.forget(gone.id)
    return gone


# ------------------------------------------------------------------- app tokens


@routes.create("/apps/{app}/tokens", TokenCreatedOut, "The token, shown this once")
def create_token(request: Request, app: str, who: Operator, body: Description = None) -> Response:
    """A token that can read and watch this app's config vars, and nothing else."""
    ctx = ctx_of(request)
    token, raw = ctx.tokens.create_app_token(
        app, body.description if body else None, actor=who.actor
    )
    application = ctx.service.get_app(token.app_id or app)
    return json_response({**token_resource(token, application), "token": raw}, 201)


@routes.list("/apps/{app}/tokens", TokenOut, "The app's tokens")
def list_tokens(request: Request, app: str, _who: Operator, _range: RangeHeader = None) -> Response:
    """An app's tokens (never their values)."""
    ctx = ctx_of(request)
    application = ctx.service.get_app(app)
    return listed(
        request, [token_resource(t, application) for t in ctx.tokens.list_app_tokens(app)], ("id",)
    )


@routes.delete("/apps/{app}/tokens/{token}", TokenOut, "Revoked")
def revoke_token(request: Request, app: str, token: str, who: Operator) -> Response:
    """Revoke an app token; it stops working at once on this server."""
    ctx = ctx_of(request)
    application = ctx.service.get_app(app)
    gone = _revoked(ctx, ctx.tokens.revoke_app_token(app, token, actor=who.actor))
    return json_response(token_resource(gone, application))


# -------------------------------------------------------------- operator tokens


@routes.create("/operator-tokens", TokenCreatedOut, "The operator token, shown this once")
def create_operator_token(request: Request, who: Operator, body: Description = None) -> Response:
    """A new operator token (manages everything); its value is shown this once."""
    ctx = ctx_of(request)
    token, raw = ctx.tokens.create_operator_token(
        body.description if body else None, actor=who.actor
    )
    return json_response({**token_resource(token, None, current=False), "token": raw}, 201)


@routes.list("/operator-tokens", TokenOut, "Operator tokens in service")
def list_operator_tokens(request: Request, who: Operator, _range: RangeHeader = None) -> Response:
    """Operator tokens (never their values); ``current`` marks the caller's own."""
    found = ctx_of(request).tokens.list_operator_tokens()
    return listed(
        request, [token_resource(t, None, current=t.id == who.token_id) for t in found], ("id",)
    )


@routes.delete("/operator-tokens/{token}", TokenOut, "Revoked")
def revoke_operator_token(request: Request, token: str, who: Operator) -> Response:
    """Revoke an operator token, the caller's own included; the last one is refused (422)."""
    ctx = ctx_of(request)
    gone = _revoked(ctx, ctx.tokens.revoke_operator_token(token, actor=who.actor))
    return json_response(token_resource(gone, None, current=gone.id == who.token_id))
