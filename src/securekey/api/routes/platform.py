"""The Heroku Platform API v3 subset: apps, add-ons, attachments, config vars and the account
(releases are in ``routes/releases.py``).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.responses import Response

from securekey.api.context import ApiContext, ctx_of, etag_matches, json_response, readable_config
from securekey.api.middleware.cached_config import CONFIG_ROUTE
from securekey.api.routes._common import (
    ERRORS,
    Anyone,
    Operator,
    RangeHeader,
    RouteTable,
    addon_views,
    attachment_views,
    base_url,
    listed,
    ref_value,
)
from securekey.api.schemas import (
    AccountOut,
    AddonCreate,
    AddonDelete,
    AddonOut,
    AppCreate,
    AppDelete,
    AppOut,
    AppUpdate,
    AttachmentCreate,
    AttachmentOut,
    ConfigVarsPatch,
    RateLimitOut,
    ResolveAddon,
)
from securekey.domain.models import Addon
from securekey.domain.names import ADJECTIVES
from securekey.domain.plans import SERVICE
from securekey.exceptions import ConflictError, NotFoundError, ValidationError
from securekey.services.resources import (
    ACCOUNT_EMAIL,
    ACCOUNT_ID,
    account_resource,
    app_resource,
)

router = APIRouter()
account = RouteTable("account", router)
apps = RouteTable("apps", router)
addons = RouteTable("add-ons", router)
attachments = RouteTable("add-on attachments", router)
config_vars = RouteTable("config vars", router)
_CONFIG_KEYS = {"period"}


# ---------------------------------------------------------------------- account


@account.get("/account", AccountOut, "The operator's account")
def get_account(_who: Operator) -> Response:
    """The operator's identity."""
    return json_response(account_resource())


@account.get("/account/rate-limits", RateLimitOut, "Requests left")
def get_rate_limits(_who: Operator) -> Response:
    """Heroku's rate-limit resource; securekey does not limit authenticated callers."""
    return json_response({"remaining": 4500})


# ------------------------------------------------------------------------- apps


@apps.create("/apps", AppOut, "Created")
def create_app(request: Request, who: Operator, body: AppCreate | None = None) -> Response:
    """Create an app (release v1); a name like ``sleepy-keys-1234`` is made up if none is given."""
    svc = ctx_of(request).service
    if body is not None and body.name is not None:
        app = svc.create_app(body.name, actor=who.actor)
    else:
        for _ in range(20):
            name = f"{secrets.choice(ADJECTIVES)}-keys-{secrets.randbelow(9000) + 1000}"
            try:
                app = svc.create_app(name, actor=who.actor)
                break
            except ConflictError:
                continue
        else:  # pragma: no cover - 20 clashes in a row
            raise ConflictError(None, "Could not find a free app name; give one.")
    return json_response(app_resource(app, base_url(request)), 201)


@apps.list("/apps", AppOut, "Every app")
def list_apps(request: Request, _who: Operator, _range: RangeHeader = None) -> Response:
    """Every app, by name."""
    url = base_url(request)
    return listed(request, [app_resource(a, url) for a in ctx_of(request).service.list_apps()])


@apps.list("/users/{user}/apps", AppOut, "The user's apps")
def list_user_apps(
    request: Request, user: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """Every app, as Heroku lists a user's apps (``heroku apps`` asks for ``/users/~/apps``)."""
    if user not in ("~", ACCOUNT_EMAIL, ACCOUNT_ID):
        raise NotFoundError("user", user)
    url = base_url(request)
    return listed(request, [app_resource(a, url) for a in ctx_of(request).service.list_apps()])


@apps.get("/apps/{app}", AppOut, "The app")
def get_app(request: Request, app: str, _who: Operator) -> Response:
    """One app by id or name."""
    return json_response(app_resource(ctx_of(request).service.get_app(app), base_url(request)))


@apps.one("PATCH", "/apps/{app}", AppOut, "The app")
def update_app(request: Request, app: str, who: Operator, body: AppUpdate) -> Response:
    """Rename an app."""
    ctx = ctx_of(request)
    current = ctx.service.get_app(app)
    if body.name is not None:
        old_name = current.name
        current = ctx.service.rename_app(app, body.name, actor=who.actor)
        ctx.cache.forget(current.id, old_name, current.name)
    return json_response(app_resource(current, base_url(request)))


@apps.delete("/apps/{app}", AppOut, "The deleted app")
def delete_app(
    request: Request, app: str, who: Operator, body: Annotated[AppDelete | None, Body()] = None
) -> Response:
    """Delete an app; refused (422) while its add-ons are attached elsewhere, unless ``force``."""
    ctx = ctx_of(request)
    gone = ctx.service.destroy_app(app, force=bool(body and body.force), actor=who.actor)
    ctx.cache.forget(gone.id, gone.name)
    return json_response(app_resource(gone, base_url(request)))


# ---------------------------------------------------------------------- add-ons


def _period(config: dict[str, Any] | None) -> object:
    if not config:
        return None
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise ValidationError("config", f"Unknown add-on config {unknown[0]!r}; known: period.")
    return config.get("period")


@addons.create("/apps/{app}/addons", AddonOut, "Provisioned")
def create_addon(request: Request, app: str, who: Operator, body: AddonCreate) -> Response:
    """Provision a securekey add-on billed to ``app``, attached to it as ``SECURE`` by default."""
    ctx = ctx_of(request)
    plan = body.plan if isinstance(body.plan, str) else (body.plan.name or body.plan.id)
    if body.confirm is not None and body.confirm != app:
        target = ctx.service.get_app(app)
        if body.confirm not in (target.name, target.id):
            raise ValidationError(
                "confirm", f"Confirmation {body.confirm!r} did not match {target.name}."
            )
    created = ctx.service.create_addon(
        app,
        plan,
        name=body.name,
        attachment_name=body.attachment.name if body.attachment else None,
        period=_period(body.config),
        actor=who.actor,
    )
    view = addon_views(ctx, [created.addon], with_fingerprints=True)[0]
    view["provision_message"] = None
    return json_response(view, 201)


@addons.list("/addons", AddonOut, "Every add-on")
def list_all_addons(request: Request, _who: Operator, _range: RangeHeader = None) -> Response:
    """Every add-on."""
    ctx = ctx_of(request)
    return listed(request, addon_views(ctx, ctx.service.list_addons()))


@addons.list("/apps/{app}/addons", AddonOut, "Add-ons billed to or attached to the app")
def list_app_addons(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """The add-ons an app bills, and those attached to it from other apps."""
    ctx = ctx_of(request)
    return listed(request, addon_views(ctx, ctx.service.list_addons(app)))


@addons.get("/addons/{addon}", AddonOut, "The add-on")
def get_addon(request: Request, addon: str, _who: Operator) -> Response:
    """One add-on by id or name, with its current fingerprints."""
    ctx = ctx_of(request)
    return json_response(
        addon_views(ctx, [ctx.service.get_addon(addon)], with_fingerprints=True)[0]
    )


@addons.get("/apps/{app}/addons/{addon}", AddonOut, "The add-on")
def get_app_addon(request: Request, app: str, addon: str, _who: Operator) -> Response:
    """One add-on by id, name, or attachment name on ``app``."""
    ctx = ctx_of(request)
    found = ctx.service.resolve_addon(addon, app)
    return json_response(addon_views(ctx, [found], with_fingerprints=True)[0])


@addons.delete("/apps/{app}/addons/{addon}", AddonOut, "Deprovisioned")
def delete_addon(
    request: Request,
    app: str,
    addon: str,
    who: Operator,
    body: Annotated[AddonDelete | None, Body()] = None,
) -> Response:
    """Deprovision; refused (422) while attached to other apps unless ``force``."""
    ctx = ctx_of(request)
    target = ctx.service.resolve_addon(addon, app)
    view = addon_views(ctx, [target])[0]
    ctx.service.destroy_addon(
        target.id, app_ref=app, force=bool(body and body.force), actor=who.actor
    )
    view["state"] = "deprovisioned"
    return json_response(view)


@addons.list("/actions/addons/resolve", AddonOut, "Matching add-ons", method="POST")
def resolve_addon(request: Request, _who: Operator, body: ResolveAddon) -> Response:
    """Find add-ons (always a list) by id, name, attachment name on ``app``,
    ``APP::ATTACHMENT``, or service or plan name (every match; the CLI calls several ambiguous).
    """
    ctx = ctx_of(request)
    if body.addon_service not in (None, SERVICE):
        return json_response([])
    return json_response(addon_views(ctx, _resolve_all(ctx, body.addon, body.app)))


def _resolve_all(ctx: ApiContext, ref: str, app: str | None) -> list[Addon]:
    """Heroku's resolver; a service (``securekey``) or plan name matches every such add-on
    billed to or attached to ``app`` (or anywhere, without ``app``)."""
    if "::" in ref:
        app_ref, _, name = ref.partition("::")
        return [ctx.service.resolve_addon(name, app_ref)]
    try:
        return [ctx.service.resolve_addon(ref, app)]
    except NotFoundError as missing:
        if missing.resource != "add_on":
            raise
        matches = [a for a in ctx.service.list_addons(app) if ref in (SERVICE, a.plan_full_name)]
        if not matches:
            raise
        return matches


# ------------------------------------------------------------------ attachments


@attachments.create("/addon-attachments", AttachmentOut, "Attached")
def create_attachment(request: Request, who: Operator, body: AttachmentCreate) -> Response:
    """Attach an add-on to an app under ``name`` (default ``SECURE``); one release there."""
    ctx = ctx_of(request)
    addon_ref, app_ref = ref_value(body.addon), ref_value(body.app)
    if not addon_ref:
        raise ValidationError("addon", "addon is required (id or name).")
    if not app_ref:
        raise ValidationError("app", "app is required (id or name).")
    att, _release = ctx.service.attach(addon_ref, app_ref, as_=body.name, actor=who.actor)
    return json_response(attachment_views(ctx, [att])[0], 201)


def _attachment_list(
    request: Request, *, app: str | None = None, addon: str | None = None
) -> Response:
    ctx = ctx_of(request)
    found = ctx.service.list_attachments(addon_ref=addon, app_ref=app)
    return listed(request, attachment_views(ctx, found))


def _attachment(request: Request, ref: str, *, app: str | None = None) -> Response:
    ctx = ctx_of(request)
    return json_response(attachment_views(ctx, [ctx.service.get_attachment(ref, app_ref=app)])[0])


@attachments.list("/addon-attachments", AttachmentOut, "Every attachment")
def list_attachments(request: Request, _who: Operator, _range: RangeHeader = None) -> Response:
    """Every attachment."""
    return _attachment_list(request)


@attachments.get("/addon-attachments/{attachment}", AttachmentOut, "The attachment")
def get_attachment(request: Request, attachment: str, _who: Operator) -> Response:
    """One attachment by id."""
    return _attachment(request, attachment)


@attachments.list("/apps/{app}/addon-attachments", AttachmentOut, "The app's attachments")
def list_app_attachments(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """An app's attachments."""
    return _attachment_list(request, app=app)


@attachments.get("/apps/{app}/addon-attachments/{attachment}", AttachmentOut, "The attachment")
def get_app_attachment(request: Request, app: str, attachment: str, _who: Operator) -> Response:
    """One of an app's attachments by name or id."""
    return _attachment(request, attachment, app=app)


@attachments.list("/addons/{addon}/addon-attachments", AttachmentOut, "The add-on's attachments")
def list_addon_attachments(
    request: Request, addon: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """Every app an add-on is attached to."""
    return _attachment_list(request, addon=addon)


@attachments.delete("/addon-attachments/{attachment}", AttachmentOut, "Detached")
def delete_attachment(request: Request, attachment: str, who: Operator) -> Response:
    """Detach: the var leaves that app, with one release; refused for the last attachment."""
    ctx = ctx_of(request)
    view = attachment_views(ctx, [ctx.service.get_attachment(attachment)])
    ctx.service.detach(attachment, actor=who.actor)
    return json_response(view[0] if view else {})


# ------------------------------------------------------------------ config vars

_CONFIG_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": dict[str, str], "description": "Config vars, with ETag = release"},
    304: {"description": "Not modified since the given ETag"},
    **ERRORS,
}


@router.get(CONFIG_ROUTE, responses=_CONFIG_RESPONSES, tags=[config_vars.tag])
async def get_config_vars(
    request: Request,
    app: str,
    who: Anyone,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """An app's config vars (operator, or that app's token); conditional with If-None-Match."""
    ctx = ctx_of(request)
    snapshot = await readable_config(ctx, app, who)
    etag = f'"{snapshot.release}"'
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if snapshot.stale:
        # stale-if-error: the database is down; this is the last config this server saw.
        headers["Securekey-Stale"] = "true"
        headers["Warning"] = '110 securekey "Response is Stale"'
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(snapshot.body, 200, headers=headers, media_type="application/json")


@config_vars.one("PATCH", CONFIG_ROUTE, dict[str, str], "Config vars")
def update_config_vars(
    request: Request,
    app: str,
    who: Operator,
    body: Annotated[ConfigVarsPatch, Body()],
) -> Response:
    """Set vars (strings) and unset them (null) in one release; add-on vars are refused."""
    ctx = ctx_of(request)
    ctx.service.set_config(app, body, actor=who.actor)
    application, config = ctx.service.config_snapshot(app)
    return json_response(config, headers={"ETag": f'"{application.release}"'})
