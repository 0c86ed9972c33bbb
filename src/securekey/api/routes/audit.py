"""The audit log and an operator's status page: ``GET /audit-events`` and ``GET /status``.

Both are operator-only; the audit log is read through ``SecureKeyService.audit_events`` and
names keys by fingerprint only, as it was written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from securekey import __version__
from securekey.api.context import ctx_of, json_response, operator
from securekey.api.errors import ApiError
from securekey.api.ranges import fetched_page, parse_range, whole_number
from securekey.api.routes._common import documented_list, documented_one
from securekey.api.schemas import AuditEventOut, StatusOut
from securekey.domain.models import Principal
from securekey.services.resources import audit_event_resource, iso

router = APIRouter()

Operator = Annotated[Principal, Depends(operator)]
Filter = Annotated[str | None, Query(max_length=200)]


def _instant(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 time from the query (``2026-11-29T10:00:00Z``), in UTC; 422 otherwise."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ApiError(
            422,
            "invalid_params",
            f"Invalid {name}: give an ISO 8601 time such as 2026-11-29T10:00:00Z.",
            field=name,
        ) from None


def _text(name: str, value: str | None) -> str | None:
    """A filter value; NUL bytes (which no stored name holds) are refused, not sent to SQL."""
    if value is not None and "\x00" in value:
        raise ApiError(422, "invalid_params", f"Invalid {name}: must not contain NUL bytes.")
    return value


def _seq(text: str | None) -> int | None:
    return whole_number(text, 18, "A seq range bound is a whole number.")


@router.get(
    "/audit-events",
    responses=documented_list(AuditEventOut, "Audit events, oldest first (Range: seq ..)"),
    tags=["audit"],
)
def audit_events(
    request: Request,
    _who: Operator,
    action: Filter = None,
    actor: Filter = None,
    target: Filter = None,
    target_type: Filter = None,
    app: Filter = None,
    since: Filter = None,
    until: Filter = None,
    range_: Annotated[str | None, Header(alias="Range", max_length=500)] = None,
) -> Response:
    """Who did what, when: filter by action, actor, target (name or id), app, since/until.

    Paged with ``Range: seq ..; max=200, order=asc`` like every list (206 and ``Next-Range``
    while more remain).
    """
    spec = parse_range(range_, ("seq",), "seq")
    low, high = _seq(spec.start), _seq(spec.end)
    after = None if low is None else (low if spec.start_exclusive else low - 1)
    before = None if high is None else (high if spec.end_exclusive else high + 1)
    found = ctx_of(request).service.audit_events(
        action=_text("action", action),
        actor=_text("actor", actor),
        target=_text("target", target),
        target_type=_text("target_type", target_type),
        app=_text("app", app),
        since=_instant("since", _text("since", since)),
        until=_instant("until", _text("until", until)),
        after_seq=after,
        before_seq=before,
        newest_first=spec.order == "desc",
        limit=spec.max + 1,
    )
    chunk, headers, partial = fetched_page(found, spec, lambda event: event.seq)
    body = [audit_event_resource(event) for event in chunk]
    return json_response(body, 206 if partial else 200, headers)


@router.get(
    "/status",
    responses=documented_one(StatusOut, "What an operator checks first"),
    tags=["operations"],
)
def status(request: Request, who: Operator) -> Response:
    """Version, database, scheduler, the next due rotation and failing webhook deliveries."""
    ctx = ctx_of(request)
    service = ctx.service
    now = service.clock.now()
    database = {"backend": str(ctx.extra.get("database", "unknown")), "ready": True}
    try:
        addons = service.list_addons()
    except Exception:  # the database is what is being diagnosed here
        database["ready"] = False
        addons = []
    upcoming = min(addons, key=lambda a: a.next_rotation_at, default=None)
    scheduler = ctx.scheduler
    # Due add-ons wait up to a tick to be claimed; only a longer wait means the scheduler lags.
    slack = timedelta(seconds=max(60.0, 5 * (scheduler.interval if scheduler else 1.0)))
    failing: list[dict[str, object]] = []
    if database["ready"]:
        for application in service.list_apps():
            hooks, deliveries = ctx.webhooks.deliveries(application.id)
            for delivery in deliveries:
                if delivery.status not in ("failed", "retrying"):
                    continue
                hook = hooks.get(delivery.webhook_id)
                failing.append(
                    {
                        "app": application.name,
                        "webhook": delivery.webhook_id,
                        "url": hook.url if hook else None,
                        "status": delivery.status,
                        "attempts": delivery.num_attempts,
                        "last_code": delivery.last_code,
                        "last_error": delivery.last_error,
                    }
                )
    return json_response(
        {
            "version": __version__,
            "time": iso(now),
            "tls": request.url.scheme == "https",
            "token": {"kind": who.kind.value},
            "database": database,
            "ready": ctx.ready and bool(database["ready"]),
            "scheduler": {
                "running": bool(scheduler is not None and scheduler.running),
                "interval": scheduler.interval if scheduler is not None else None,
                "rotations": scheduler.rotations if scheduler is not None else 0,
                "failures": scheduler.failures if scheduler is not None else 0,
            },
            "addons": len(addons),
            "next_rotation": None
            if upcoming is None
            else {
                "addon": upcoming.name,
                "at": iso(upcoming.next_rotation_at),
                "overdue": upcoming.next_rotation_at < now - slack,
            },
            "webhooks": {"failing": failing},
        }
    )
