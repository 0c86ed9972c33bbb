"""Helpers shared by the route modules: documented error responses, joins, ranged lists."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from securekey.api.context import ApiContext, json_response
from securekey.api.ranges import page, parse_range
from securekey.api.schemas import ErrorOut, Ref
from securekey.domain.models import Addon, App, Attachment
from securekey.services.resources import addon_resource, attachment_resource

__all__ = [
    "ERRORS",
    "addon_views",
    "attachment_views",
    "base_url",
    "documented_list",
    "documented_one",
    "listed",
    "ref_value",
]

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request"},
    401: {"model": ErrorOut, "description": "Missing or unknown token"},
    403: {"model": ErrorOut, "description": "Token not allowed here"},
    404: {"model": ErrorOut, "description": "Unknown resource"},
    409: {"model": ErrorOut, "description": "Concurrent change; retry"},
    413: {"model": ErrorOut, "description": "Body over 64 KiB"},
    422: {"model": ErrorOut, "description": "Invalid or refused"},
    429: {"model": ErrorOut, "description": "Too many failed authentications or open streams"},
    503: {"model": ErrorOut, "description": "Database unavailable; retry after Retry-After"},
}


def documented_one(
    model: type, description: str, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for an endpoint answering one ``model``, with every error."""
    return {status: {"model": model, "description": description}, **ERRORS}


def documented_list(model: type, description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a ranged list of ``model``: 200, or 206 while more remain."""
    return {
        200: {"model": list[model], "description": description},  # type: ignore[valid-type]
        206: {"model": list[model], "description": "A page; more remain (see Next-Range)"},  # type: ignore[valid-type]
        **ERRORS,
    }


def base_url(request: Request) -> str:
    """This server's own URL as the client reached it."""
    return str(request.base_url).rstrip("/")


def ref_value(value: str | Ref | None) -> str | None:
    """A reference given as a plain string or as ``{"id"|"name": ...}``."""
    if value is None or isinstance(value, str):
        return value
    return value.value()


def _apps_by_id(ctx: ApiContext) -> dict[str, App]:
    return {a.id: a for a in ctx.service.list_apps()}


def addon_views(
    ctx: ApiContext,
    addons: list[Addon],
    *,
    with_fingerprints: bool = False,
    state: str = "provisioned",
) -> list[dict[str, Any]]:
    """Add-ons as Heroku resources, with their billing app and config var names."""
    apps = _apps_by_id(ctx)
    attachments = ctx.service.list_attachments()
    out = []
    for addon in addons:
        billing = apps.get(addon.app_id)
        if billing is None:
            continue
        names = [
            a.var_name for a in attachments if a.addon_id == addon.id and a.app_id == billing.id
        ]
        fps = ctx.service.current_fingerprints(addon.id) if with_fingerprints else None
        out.append(addon_resource(addon, billing, names, fps, state=state))
    return out


def attachment_views(ctx: ApiContext, attachments: list[Attachment]) -> list[dict[str, Any]]:
    """Attachments as Heroku resources."""
    apps = _apps_by_id(ctx)
    addons = {a.id: a for a in ctx.service.list_addons()}
    out = []
    for att in attachments:
        addon = addons.get(att.addon_id)
        if addon is None or att.app_id not in apps or addon.app_id not in apps:
            continue
        out.append(attachment_resource(att, addon, apps[addon.app_id], apps[att.app_id]))
    return out


def listed(
    request: Request, items: list[dict[str, Any]], fields: tuple[str, ...] = ("id", "name")
) -> Response:
    """A list answer honouring ``Range`` (206 with ``Next-Range`` while more remain)."""
    spec = parse_range(
        request.headers.get("range"), fields, fields[-1] if "name" in fields else fields[0]
    )
    chunk, headers, partial = page(items, spec)
    return json_response(chunk, 206 if partial else 200, headers)
