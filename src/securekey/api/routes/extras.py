"""Beyond Heroku: rotate now, key history, app tokens and webhooks (the stream: ``stream.py``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Request
from fastapi.responses import Response

from securekey.api.context import ctx_of, json_response, operator, principal
from securekey.api.routes._common import (
    addon_views,
    documented_list,
    documented_one,
    listed,
)
from securekey.api.schemas import (
    BulkRotationOut,
    DeliveryOut,
    KeyVersionOut,
    RotateIn,
    RotateManyIn,
    RotationOut,
    TokenCreate,
    TokenCreatedOut,
    TokenOut,
    WebhookCreate,
    WebhookOut,
)
from securekey.domain.models import Principal
from securekey.services import ROTATION_BATCH
from securekey.services.resources import (
    delivery_resource,
    key_version_resource,
    token_resource,
    webhook_resource,
)

router = APIRouter()

Operator = Annotated[Principal, Depends(operator)]
Anyone = Annotated[Principal, Depends(principal)]
RangeHeader = Annotated[str | None, Header(alias="Range", max_length=500)]


# --------------------------------------------------------------------- rotation


@router.post(
    "/addons/{addon}/actions/rotate",
    responses=documented_one(RotationOut, "Rotated: the add-on and a release per attached app"),
    tags=["rotation"],
)
def rotate_addon(
    request: Request,
    addon: str,
    who: Operator,
    body: Annotated[RotateIn | None, Body()] = None,
) -> Response:
    """Rotate now; ``emergency`` replaces both keys at once (a leaked key stops working)."""
    ctx = ctx_of(request)
    emergency = bool(body and body.emergency)
    rotated = ctx.service.rotate(addon, emergency=emergency, actor=who.actor)
    ctx.metrics.manual_rotations.labels(emergency=str(emergency).lower()).inc()
    apps = {a.id: a for a in ctx.service.list_apps()}
    return json_response(
        {
            "addon": addon_views(ctx, [rotated.addon], with_fingerprints=True)[0],
            "fingerprints": {
                "latest": rotated.fingerprints[0],
                "previous": rotated.fingerprints[1],
            },
            "emergency": emergency,
            "releases": [
                {
                    "app": {
                        "id": r.app_id,
                        "name": apps[r.app_id].name if r.app_id in apps else None,
                    },
                    "version": r.version,
                    "description": r.description,
                }
                for r in rotated.releases
            ],
        }
    )


@router.post(
    "/actions/addons/rotate",
    responses=documented_one(BulkRotationOut, "Counts: matched, rotated, failed, releases made"),
    tags=["rotation"],
)
def rotate_addons(request: Request, who: Operator, body: RotateManyIn) -> Response:
    """Rotate now every add-on matching one filter (all, a plan, an app): the incident case.

    Processed in batches, one transaction each; an add-on whose rotation fails is rolled back
    alone, audited as ``addon.rotate_failed`` and listed under ``failed``.
    """
    ctx = ctx_of(request)
    done = ctx.service.rotate_matching(
        all_=body.all_,
        plan=body.plan,
        app=body.app,
        emergency=body.emergency,
        actor=who.actor,
        batch_size=ROTATION_BATCH if body.batch_size is None else body.batch_size,
        limit=body.limit,
        after=body.after,
        dry_run=body.dry_run,
    )
    if done.rotated:
        label = str(body.emergency).lower()
        ctx.metrics.manual_rotations.labels(emergency=label).inc(done.rotated)
    return json_response(
        {
            "matched": done.matched,
            "rotated": done.rotated,
            "releases": done.releases,
            "failed": [
                {"addon": {"id": f.addon_id, "name": f.addon_name}, "reason": f.reason}
                for f in done.failed
            ],
            "emergency": body.emergency,
            "dry_run": body.dry_run,
            "next_after": done.next_after,
        }
    )


@router.get(
    "/addons/{addon}/key-versions",
    responses=documented_list(KeyVersionOut, "Key history, newest first"),
    tags=["rotation"],
)
def key_versions(request: Request, addon: str, _who: Operator) -> Response:
    """An add-on's key history: fingerprints, states and times, never material."""
    history = ctx_of(request).service.key_versions(addon)
    return json_response([key_version_resource(k) for k in history])


# ----------------------------------------------------------------------- tokens


@router.post(
    "/apps/{app}/tokens",
    status_code=201,
    responses=documented_one(TokenCreatedOut, "The token, shown this once", 201),
    tags=["tokens"],
)
def create_token(
    request: Request, app: str, who: Operator, body: Annotated[TokenCreate | None, Body()] = None
) -> Response:
    """A token that can read and watch this app's config vars, and nothing else."""
    ctx = ctx_of(request)
    token, raw = ctx.tokens.create_app_token(
        app, body.description if body else None, actor=who.actor
    )
    application = ctx.service.get_app(token.app_id or app)
    return json_response({**token_resource(token, application), "token": raw}, 201)


@router.get(
    "/apps/{app}/tokens", responses=documented_list(TokenOut, "The app's tokens"), tags=["tokens"]
)
def list_tokens(request: Request, app: str, _who: Operator, _range: RangeHeader = None) -> Response:
    """An app's tokens (never their values)."""
    ctx = ctx_of(request)
    application = ctx.service.get_app(app)
    return listed(
        request, [token_resource(t, application) for t in ctx.tokens.list_app_tokens(app)], ("id",)
    )


@router.delete(
    "/apps/{app}/tokens/{token}", responses=documented_one(TokenOut, "Revoked"), tags=["tokens"]
)
def revoke_token(request: Request, app: str, token: str, who: Operator) -> Response:
    """Revoke an app token; it stops working at once on this server."""
    ctx = ctx_of(request)
    application = ctx.service.get_app(app)
    gone = ctx.tokens.revoke_app_token(app, token, actor=who.actor)
    ctx.auth.forget(gone.id)
    return json_response(token_resource(gone, application))


# -------------------------------------------------------------- operator tokens


@router.post(
    "/operator-tokens",
    status_code=201,
    responses=documented_one(TokenCreatedOut, "The operator token, shown this once", 201),
    tags=["tokens"],
)
def create_operator_token(
    request: Request, who: Operator, body: Annotated[TokenCreate | None, Body()] = None
) -> Response:
    """A new operator token (manages everything); its value is shown this once."""
    ctx = ctx_of(request)
    token, raw = ctx.tokens.create_operator_token(
        body.description if body else None, actor=who.actor
    )
    return json_response({**token_resource(token, None, current=False), "token": raw}, 201)


@router.get(
    "/operator-tokens",
    responses=documented_list(TokenOut, "Operator tokens in service"),
    tags=["tokens"],
)
def list_operator_tokens(request: Request, who: Operator, _range: RangeHeader = None) -> Response:
    """Operator tokens (never their values); ``current`` marks the caller's own."""
    found = ctx_of(request).tokens.list_operator_tokens()
    return listed(
        request, [token_resource(t, None, current=t.id == who.token_id) for t in found], ("id",)
    )


@router.delete(
    "/operator-tokens/{token}",
    responses=documented_one(TokenOut, "Revoked"),
    tags=["tokens"],
)
def revoke_operator_token(request: Request, token: str, who: Operator) -> Response:
    """Revoke an operator token, the caller's own included; the last one is refused (422)."""
    ctx = ctx_of(request)
    gone = ctx.tokens.revoke_operator_token(token, actor=who.actor)
    ctx.auth.forget(gone.id)
    return json_response(token_resource(gone, None, current=gone.id == who.token_id))


# --------------------------------------------------------------------- webhooks


@router.post(
    "/apps/{app}/webhooks",
    status_code=201,
    responses=documented_one(WebhookOut, "Created", 201),
    tags=["webhooks"],
)
def create_webhook(request: Request, app: str, who: Operator, body: WebhookCreate) -> Response:
    """Subscribe a URL to the app's releases; deliveries are signed with the secret."""
    ctx = ctx_of(request)
    hook, secret = ctx.webhooks.create(
        app,
        body.url,
        body.include,
        level=body.level,
        secret=body.secret,
        authorization=body.authorization,
        actor=who.actor,
    )
    application = ctx.service.get_app(hook.app_id)
    headers = {"Heroku-Webhook-Secret": secret} if body.secret is None else None
    return json_response(webhook_resource(hook, application), 201, headers)


@router.get(
    "/apps/{app}/webhooks", responses=documented_list(WebhookOut, "Webhooks"), tags=["webhooks"]
)
def list_webhooks(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """An app's webhooks."""
    application, hooks = ctx_of(request).webhooks.list_hooks(app)
    return listed(request, [webhook_resource(h, application) for h in hooks], ("id",))


@router.get(
    "/apps/{app}/webhooks/{webhook}",
    responses=documented_one(WebhookOut, "The webhook"),
    tags=["webhooks"],
)
def get_webhook(request: Request, app: str, webhook: str, _who: Operator) -> Response:
    """One webhook."""
    application, hook = ctx_of(request).webhooks.get(app, webhook)
    return json_response(webhook_resource(hook, application))


@router.delete(
    "/apps/{app}/webhooks/{webhook}",
    responses=documented_one(WebhookOut, "Removed"),
    tags=["webhooks"],
)
def delete_webhook(request: Request, app: str, webhook: str, who: Operator) -> Response:
    """Remove a webhook and its pending deliveries."""
    application, hook = ctx_of(request).webhooks.delete(app, webhook, actor=who.actor)
    return json_response(webhook_resource(hook, application))


@router.get(
    "/apps/{app}/webhook-deliveries",
    responses=documented_list(DeliveryOut, "Deliveries"),
    tags=["webhooks"],
)
def list_deliveries(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """An app's webhook deliveries and their status."""
    hooks, found = ctx_of(request).webhooks.deliveries(app)
    return listed(request, [delivery_resource(d, hooks.get(d.webhook_id)) for d in found], ("id",))


@router.get(
    "/apps/{app}/webhook-deliveries/{delivery}",
    responses=documented_one(DeliveryOut, "The delivery"),
    tags=["webhooks"],
)
def get_delivery(request: Request, app: str, delivery: str, _who: Operator) -> Response:
    """One delivery."""
    hook, found = ctx_of(request).webhooks.delivery(app, delivery)
    return json_response(delivery_resource(found, hook))
