"""The Heroku Platform API v3 subset, releases: an app's release list (Heroku's ``Range`` on
``version``) and one release by version or id.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from securekey.api.context import ctx_of, json_response
from securekey.api.ranges import fetched_page, parse_range, whole_number
from securekey.api.routes._common import Operator, RangeHeader, RouteTable
from securekey.api.schemas import ReleaseOut
from securekey.services.resources import release_resource

__all__ = ["router"]

releases = RouteTable("releases")
router = releases.router


@releases.list("/apps/{app}/releases", ReleaseOut, "Releases")
def list_releases(
    request: Request, app: str, _who: Operator, _range: RangeHeader = None
) -> Response:
    """An app's releases; ``Range: version ..; max=15, order=desc`` gives the newest first."""
    svc = ctx_of(request).service
    application = svc.get_app(app)
    spec = parse_range(request.headers.get("range"), ("version", "id"), "version")
    if spec.field != "version":
        spec = type(spec)("version", max=spec.max, order=spec.order)

    def bound(text: str | None, exclusive: bool, step: int) -> int | None:
        number = whole_number(text, 9, "Release range bounds must be version numbers.")
        return None if number is None else number + (step if exclusive else 0)

    start = bound(spec.start, spec.start_exclusive, 1)
    end = bound(spec.end, spec.end_exclusive, -1)
    rows = svc.releases(
        application.id, start=start, end=end, limit=spec.max + 1, descending=spec.order == "desc"
    )
    chunk, headers, partial = fetched_page(rows, spec, lambda release: release.version)
    data = [release_resource(r, application) for r in chunk]
    return json_response(data, 206 if partial else 200, headers)


@releases.get("/apps/{app}/releases/{release}", ReleaseOut, "The release")
def get_release(request: Request, app: str, release: str, _who: Operator) -> Response:
    """One release by version (``3`` or ``v3``) or id."""
    svc = ctx_of(request).service
    application = svc.get_app(app)
    return json_response(release_resource(svc.release(application.id, release), application))
