"""What each page shows, gathered from the services in one place (run in a worker thread).

Nothing here reads key material: config vars are listed by name, keys by fingerprint. The
only value that ever reaches a page is one the operator asked to reveal, through
``DashboardService.reveal_config_var``, which writes its audit entry first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    AuditQuery,
    KeyVersion,
    Release,
)
from securekey.domain.plans import PLANS, SERVICE
from securekey.exceptions import NotFoundError
from securekey.services import SecureKeyService
from securekey.services.webhooks import WebhookService
from securekey.web.charts import rotation_bars, share_graph

__all__ = [
    "AuditFilter",
    "addon_page",
    "app_page",
    "audit_page",
    "overview_page",
    "webhooks_page",
]

PLAN_NAMES = [f"{SERVICE}:{name}" for name in PLANS]
_ROTATIONS = ("addon.rotate", "addon.rotate_emergency")
AUDIT_ROWS = 200
#: Events read per store query while filtering, and at most how many such pages per view.
AUDIT_PAGE = 1000
AUDIT_PAGES = 20
#: Days the overview's rotation chart shows, and the most rotation events it reads for them
#: (newest first: beyond that, the oldest days of the chart undercount).
CHART_DAYS = 14
ROTATION_EVENTS = 10_000


def _names(service: SecureKeyService) -> dict[str, str]:
    return {a.id: a.name for a in service.list_apps()}


def _rotation_events(service: SecureKeyService, now: datetime) -> list[AuditEvent]:
    """The rotations the chart's days can show, newest first, at most ``ROTATION_EVENTS``."""
    first_day = (now - timedelta(days=CHART_DAYS - 1)).date()
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    wanted = AuditQuery(action=_ROTATIONS, since=since, newest_first=True, limit=ROTATION_EVENTS)
    return service.audit_events(wanted)


def overview_page(service: SecureKeyService) -> dict[str, Any]:
    """Every app and add-on, who shares what, and rotations per day."""
    apps = service.list_apps()
    addons = service.list_addons()
    attachments = service.list_attachments()
    names = {a.id: a.name for a in apps}
    by_addon: dict[str, list[Attachment]] = {}
    for att in attachments:
        by_addon.setdefault(att.addon_id, []).append(att)
    now = service.clock.now()
    return {
        "apps": apps,
        "addons": [
            {"addon": a, "billing": names.get(a.app_id, "?"), "attachments": by_addon.get(a.id, [])}
            for a in addons
        ],
        "app_names": names,
        "graph": share_graph(apps, addons, attachments),
        "bars": rotation_bars(_rotation_events(service, now), now, CHART_DAYS),
        "now": now,
    }


def app_page(service: SecureKeyService, ref: str) -> dict[str, Any]:
    """One app: var names (never values), attachments, add-ons, releases newest first."""
    app, config = service.config_snapshot(ref)
    attachments = service.list_attachments(app_ref=app.id)
    addons = {a.id: a for a in service.list_addons(app.id)}
    from_addon = {att.var_name: att for att in attachments}
    names = sorted(config)
    del config  # values are not needed past this point, and must not reach the template
    return {
        "app": app,
        "vars": [{"name": n, "attachment": from_addon.get(n)} for n in names],
        "attachments": [{"att": att, "addon": addons.get(att.addon_id)} for att in attachments],
        "releases": service.releases(app.id, limit=50, descending=True),
        "plans": PLAN_NAMES,
    }


def addon_page(service: SecureKeyService, ref: str) -> dict[str, Any]:
    """One add-on: plan, key versions by state, schedule, attachments, recent releases."""
    addon = service.get_addon(ref)
    names = _names(service)
    attachments = service.list_attachments(addon_ref=addon.id)
    versions: list[KeyVersion] = service.key_versions(addon.id)
    releases: list[tuple[str, Release]] = []
    for app_id in sorted({att.app_id for att in attachments}):
        for release in service.releases(app_id, limit=10, descending=True):
            releases.append((names.get(app_id, "?"), release))
    releases.sort(key=lambda pair: (pair[1].created_at, pair[0], pair[1].version), reverse=True)
    return {
        "addon": addon,
        "billing": names.get(addon.app_id, "?"),
        "attachments": [{"att": att, "app": names.get(att.app_id, "?")} for att in attachments],
        "others": sorted(
            names.get(att.app_id, "?") for att in attachments if att.app_id != addon.app_id
        ),
        "versions": versions[:20],
        "releases": releases[:20],
        "apps": sorted(names.values()),
        "app_ids": sorted({att.app_id for att in attachments} | {addon.app_id}),
        "now": service.clock.now(),
    }


@dataclass(frozen=True)
class AuditFilter:
    """The audit page's filters, as typed in its form (blank means any)."""

    actor: str = ""
    action: str = ""
    target: str = ""
    since: str = ""
    until: str = ""

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        """``since``/``until`` as UTC datetimes (``datetime-local`` inputs or ISO dates)."""
        return _when(self.since), _when(self.until, end=True)


def _when(text: str, *, end: bool = False) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NotFoundError("time", text[:40]) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if end and len(text) == 10:  # a bare date means the whole of that day
        moment += timedelta(days=1)
    return moment


def audit_page(service: SecureKeyService, wanted: AuditFilter) -> dict[str, Any]:
    """The newest audit events matching every given filter, newest first."""
    since, until = wanted.bounds()
    # Exact filters (actor, time, a whole action name) are the store's, newest first, in pages;
    # an action prefix (``addon.``) and a part of a target's name are matched here.
    exact_action = wanted.action if wanted.action and not wanted.action.endswith(".") else None
    actor = wanted.actor.strip() or None
    target = wanted.target.strip().lower()
    chosen: list[AuditEvent] = []
    before: int | None = None
    for _ in range(AUDIT_PAGES):
        page = service.audit_events(
            action=exact_action,
            actor=actor,
            since=since,
            until=until,
            before_seq=before,
            newest_first=True,
            limit=AUDIT_PAGE,
        )
        for event in page:
            if wanted.action and not event.action.startswith(wanted.action.strip()):
                continue
            if target and target not in event.target_name.lower() and target != event.target_id:
                continue
            chosen.append(event)
            if len(chosen) >= AUDIT_ROWS:
                break
        if len(chosen) >= AUDIT_ROWS or len(page) < AUDIT_PAGE:
            break
        before = page[-1].seq
    # The filter menus offer what the recent log holds, not the whole history.
    everything = service.audit_events(newest_first=True, limit=AUDIT_PAGE)
    return {
        "events": chosen,
        "filter": wanted,
        "actors": sorted({e.actor for e in everything}),
        "actions": sorted({e.action for e in everything}),
        "limit": AUDIT_ROWS,
    }


def _safe_url(url: str) -> str:
    """A webhook URL without any user:password part."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def webhooks_page(service: SecureKeyService, webhooks: WebhookService) -> dict[str, Any]:
    """Every app's webhooks and their deliveries, newest first."""
    out = []
    for app in service.list_apps():
        hooks, deliveries = webhooks.deliveries(app.id)
        if not hooks and not deliveries:
            continue
        out.append(
            {
                "app": app,
                "hooks": [{"hook": h, "url": _safe_url(h.url)} for h in hooks.values()],
                "deliveries": sorted(deliveries, key=lambda d: d.created_at, reverse=True)[:50],
                "urls": {h.id: _safe_url(h.url) for h in hooks.values()},
            }
        )
    return {"apps": out, "now": service.clock.now()}


def live_targets(service: SecureKeyService, kind: str, ref: str) -> tuple[App | Addon, list[str]]:
    """What a live view watches: the app itself, or every app holding the add-on."""
    if kind == "app":
        app = service.get_app(ref)
        return app, [app.id]
    addon = service.get_addon(ref)
    ids = {att.app_id for att in service.list_attachments(addon_ref=addon.id)} | {addon.app_id}
    return addon, sorted(ids)
