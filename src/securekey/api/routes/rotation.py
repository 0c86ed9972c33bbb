"""Beyond Heroku, rotation: rotate one add-on now, rotate many (the incident case), key history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request
from fastapi.responses import Response

from securekey.api.context import ctx_of, json_response
from securekey.api.routes._common import Operator, RouteTable, addon_views
from securekey.api.schemas import (
    BulkRotationOut,
    KeyVersionOut,
    RotateIn,
    RotateManyIn,
    RotationOut,
)
from securekey.services import ROTATION_BATCH, BulkRotation, Rotated
from securekey.services.resources import key_version_resource

__all__ = ["router"]

routes = RouteTable("rotation")
router = routes.router


@routes.one(
    "POST",
    "/addons/{addon}/actions/rotate",
    RotationOut,
    "Rotated: the add-on and a release per attached app",
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
    apps = {a.id: a.name for a in ctx.service.list_apps()}
    view = addon_views(ctx, [rotated.addon], with_fingerprints=True)[0]
    return json_response(_rotated(rotated, view, apps, emergency))


def _rotated(
    rotated: Rotated, view: dict[str, Any], app_names: dict[str, str], emergency: bool
) -> dict[str, Any]:
    return {
        "addon": view,
        "fingerprints": {"latest": rotated.fingerprints[0], "previous": rotated.fingerprints[1]},
        "emergency": emergency,
        "releases": [
            {
                "app": {"id": r.app_id, "name": app_names.get(r.app_id)},
                "version": r.version,
                "description": r.description,
            }
            for r in rotated.releases
        ],
    }


@routes.one(
    "POST",
    "/actions/addons/rotate",
    BulkRotationOut,
    "Counts: matched, rotated, failed, releases made",
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
    return json_response(_bulk(done, body))


def _bulk(done: BulkRotation, body: RotateManyIn) -> dict[str, Any]:
    return {
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


@routes.list("/addons/{addon}/key-versions", KeyVersionOut, "Key history, newest first")
def key_versions(request: Request, addon: str, _who: Operator) -> Response:
    """An add-on's key history: fingerprints, states and times, never material."""
    history = ctx_of(request).service.key_versions(addon)
    return json_response([key_version_resource(k) for k in history])
