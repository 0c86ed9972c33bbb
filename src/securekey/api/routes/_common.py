"""Helpers shared by the route modules: one resource's route table, documented error responses,
the caller dependencies, joined views and ranged lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from securekey.api.context import ApiContext, json_response, operator, principal
from securekey.api.ranges import page, parse_range
from securekey.api.schemas import ErrorOut, Ref
from securekey.domain.models import Addon, Attachment, Principal
from securekey.services.resources import addon_resource, attachment_resource
from securekey.services.views import ViewService

__all__ = [
    "ERRORS",
    "Anyone",
    "Operator",
    "RangeHeader",
    "RouteTable",
    "addon_views",
    "attachment_views",
    "base_url",
    "documented_list",
    "documented_one",
    "listed",
    "ref_value",
]

#: The caller, who must hold an operator token (403 for app tokens).
Operator = Annotated[Principal, Depends(operator)]
#: Any authenticated caller.
Anyone = Annotated[Principal, Depends(principal)]
#: A list's ``Range`` header (read by ``listed``; declared so OpenAPI documents it).
RangeHeader = Annotated[str | None, Header(alias="Range", max_length=500)]

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

_F = TypeVar("_F", bound=Callable[..., Any])


def documented_one(
    model: Any, description: str, status: int = 200
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


class RouteTable:
    """One resource's routes: a router, the resource's OpenAPI tag, documented responses."""

    def __init__(self, tag: str, router: APIRouter | None = None) -> None:
        self.router = router or APIRouter()
        self.tag = tag

    def one(
        self, method: str, path: str, model: Any, description: str, status: int = 200
    ) -> Callable[[_F], _F]:
        """A route answering one ``model`` with ``status``, every error documented."""
        return self.router.api_route(
            path,
            methods=[method],
            status_code=None if status == 200 else status,
            responses=documented_one(model, description, status),
            tags=[self.tag],
        )

    def get(self, path: str, model: Any, description: str) -> Callable[[_F], _F]:
        """``GET`` of one ``model``."""
        return self.one("GET", path, model, description)

    def create(self, path: str, model: Any, description: str) -> Callable[[_F], _F]:
        """``POST`` making one ``model``: 201."""
        return self.one("POST", path, model, description, 201)

    def delete(self, path: str, model: Any, description: str) -> Callable[[_F], _F]:
        """``DELETE`` answering the removed ``model``."""
        return self.one("DELETE", path, model, description)

    def list(
        self, path: str, model: type, description: str, method: str = "GET"
    ) -> Callable[[_F], _F]:
        """A ranged list of ``model`` (200, or 206 while more remain)."""
        return self.router.api_route(
            path,
            methods=[method],
            responses=documented_list(model, description),
            tags=[self.tag],
        )


def base_url(request: Request) -> str:
    """This server's own URL as the client reached it."""
    return str(request.base_url).rstrip("/")


def ref_value(value: str | Ref | None) -> str | None:
    """A reference given as a plain string or as ``{"id"|"name": ...}``."""
    if value is None or isinstance(value, str):
        return value
    return value.value()


def addon_views(
    ctx: ApiContext,
    addons: list[Addon],
    *,
    with_fingerprints: bool = False,
    state: str = "provisioned",
) -> list[dict[str, Any]]:
    """Add-ons as Heroku resources, with their billing app and config var names (one read)."""
    views = ViewService(ctx.service.store).addon_views(addons, with_fingerprints=with_fingerprints)
    return [
        addon_resource(v.addon, v.billing, v.var_names, v.fingerprints, state=state) for v in views
    ]


def attachment_views(ctx: ApiContext, attachments: list[Attachment]) -> list[dict[str, Any]]:
    """Attachments as Heroku resources (one read)."""
    views = ViewService(ctx.service.store).attachment_views(attachments)
    return [attachment_resource(v.attachment, v.addon, v.billing, v.app) for v in views]


def listed(
    request: Request, items: list[dict[str, Any]], fields: tuple[str, ...] = ("id", "name")
) -> Response:
    """A list answer honouring ``Range`` (206 with ``Next-Range`` while more remain)."""
    spec = parse_range(
        request.headers.get("range"), fields, fields[-1] if "name" in fields else fields[0]
    )
    chunk, headers, partial = page(items, spec)
    return json_response(chunk, 206 if partial else 200, headers)
