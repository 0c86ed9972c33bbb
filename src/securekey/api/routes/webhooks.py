"""Beyond Heroku's shapes, webhooks: subscribe a URL to an app's releases; list deliveries."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from securekey.api.context import ctx_of, json_response
from securekey.api.routes._common import Operator, RangeHeader, RouteTable, listed
from securekey.api.schemas import DeliveryOut, WebhookCreate, WebhookOut
from securekey.services.resources import delivery_resource, webhook_resource

__all__ = ["router"]

routes = RouteTable("webhooks")
router = routes.router


@routes.create("/apps/{app}/webhooks", WebhookOut, "Created")
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


@routes.list("/apps/{app}/webhooks", WebhookOut, "Webhooks")
def list_webhooks(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """An app's webhooks."""
    application, hooks = ctx_of(request).webhooks.list_hooks(app)
    return listed(request, [webhook_resource(h, application) for h in hooks], ("id",))


@routes.get("/apps/{app}/webhooks/{webhook}", WebhookOut, "The webhook")
def get_webhook(request: Request, app: str, webhook: str, _who: Operator) -> Response:
    """One webhook."""
    application, hook = ctx_of(request).webhooks.get(app, webhook)
    return json_response(webhook_resource(hook, application))


@routes.delete("/apps/{app}/webhooks/{webhook}", WebhookOut, "Removed")
def delete_webhook(request: Request, app: str, webhook: str, who: Operator) -> Response:
    """Remove a webhook and its pending deliveries."""
    application, hook = ctx_of(request).webhooks.delete(app, webhook, actor=who.actor)
    return json_response(webhook_resource(hook, application))


@routes.list("/apps/{app}/webhook-deliveries", DeliveryOut, "Deliveries")
def list_deliveries(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """An app's webhook deliveries and their status."""
    hooks, found = ctx_of(request).webhooks.deliveries(app)
    return listed(request, [delivery_resource(d, hooks.get(d.webhook_id)) for d in found], ("id",))


@routes.get("/apps/{app}/webhook-deliveries/{delivery}", DeliveryOut, "The delivery")
def get_delivery(request: Request, app: str, delivery: str, _who: Operator) -> Response:
    """One delivery."""
    hook, found = ctx_of(request).webhooks.delivery(app, delivery)
    return json_response(delivery_resource(found, hook))
