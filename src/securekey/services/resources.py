"""Heroku Platform API v3 shapes of our entities, as plain dicts ready for JSON.

Used by the HTTP API and by webhook payloads, so both speak the same shapes. Fields beyond
Heroku's (rotation times, fingerprints) live under a ``securekey`` key.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from securekey.domain.models import (
    Addon,
    App,
    Attachment,
    AuditEvent,
    Delivery,
    KeyVersion,
    Release,
    Token,
    Webhook,
)
from securekey.domain.plans import SERVICE

__all__ = [
    "ACCOUNT_EMAIL",
    "ACCOUNT_ID",
    "account_resource",
    "addon_resource",
    "app_resource",
    "attachment_resource",
    "audit_event_resource",
    "delivery_resource",
    "iso",
    "key_version_resource",
    "release_resource",
    "token_resource",
    "webhook_resource",
]

ACCOUNT_EMAIL = "operator@securekey.local"
ACCOUNT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "securekey:operator"))
#: Scheduled rotations are credited to the scheduler, in Heroku's user shape.
SCHEDULER_EMAIL = "scheduler@securekey.local"
SCHEDULER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "securekey:scheduler"))
_SERVICE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "securekey:addon-service"))
_EPOCH = "1970-01-01T00:00:00Z"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as Heroku writes timestamps."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plan_id(plan: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"securekey:plan:{plan}"))


def _user(actor: str) -> dict[str, str]:
    """Who made a release, as Heroku's ``user``: the scheduler is named, not the operator."""
    if actor == "scheduler":
        return {"id": SCHEDULER_ID, "email": SCHEDULER_EMAIL}
    return {"id": ACCOUNT_ID, "email": ACCOUNT_EMAIL}


def _ref(app: App) -> dict[str, str]:
    return {"id": app.id, "name": app.name}


def account_resource(created_at: datetime | None = None) -> dict[str, Any]:
    """The operator's account."""
    when = iso(created_at) or _EPOCH
    return {
        "id": ACCOUNT_ID,
        "email": ACCOUNT_EMAIL,
        "name": "operator",
        "allow_tracking": False,
        "beta": False,
        "created_at": when,
        "updated_at": when,
        "last_login": None,
        "verified": True,
        "two_factor_authentication": False,
        "default_organization": None,
        "default_team": None,
        "delinquent_at": None,
        "identity_provider": None,
        "sms_number": None,
        "suspended_at": None,
    }


def app_resource(app: App, base_url: str) -> dict[str, Any]:
    """An app."""
    return {
        "id": app.id,
        "name": app.name,
        "created_at": iso(app.created_at),
        "updated_at": iso(app.updated_at),
        "released_at": iso(app.updated_at),
        "web_url": f"{base_url}/apps/{app.name}/",
        "git_url": f"{base_url}/apps/{app.name}.git",
        "owner": {"id": ACCOUNT_ID, "email": ACCOUNT_EMAIL},
        "region": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "securekey:region")), "name": "local"},
        "stack": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "securekey:stack")), "name": SERVICE},
        "build_stack": {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "securekey:stack")),
            "name": SERVICE,
        },
        "buildpack_provided_description": None,
        "maintenance": False,
        "acm": False,
        "archived_at": None,
        "repo_size": None,
        "slug_size": None,
        "space": None,
        "team": None,
        "organization": None,
        "internal_routing": None,
        "securekey": {"release": app.release},
    }


def addon_resource(
    addon: Addon,
    billing_app: App,
    config_vars: list[str],
    fingerprints: tuple[str, str] | None = None,
    *,
    state: str = "provisioned",
) -> dict[str, Any]:
    """An add-on; ``config_vars`` are the var names it sets on its billing app."""
    plan_name = addon.plan_full_name
    price = {"cents": 0, "unit": "month"}
    extra: dict[str, Any] = {
        "period_seconds": addon.period.total_seconds(),
        "last_rotated_at": iso(addon.last_rotated_at),
        "next_rotation_at": iso(addon.next_rotation_at),
        "key_version": addon.key_version,
    }
    if fingerprints is not None:
        extra["fingerprints"] = {"latest": fingerprints[0], "previous": fingerprints[1]}
    return {
        "id": addon.id,
        "name": addon.name,
        "app": _ref(billing_app),
        "addon_service": {"id": _SERVICE_ID, "name": SERVICE, "human_name": "SecureKey"},
        "plan": {"id": _plan_id(plan_name), "name": plan_name, "price": price},
        "billed_price": {"cents": 0, "contract": False, "unit": "month"},
        "billing_entity": {"id": billing_app.id, "name": billing_app.name, "type": "app"},
        "config_vars": config_vars,
        "state": state,
        "actions": [],
        "provider_id": addon.id,
        "provision_message": None,
        "web_url": None,
        "created_at": iso(addon.created_at),
        "updated_at": iso(addon.updated_at),
        "securekey": extra,
    }


def attachment_resource(
    attachment: Attachment, addon: Addon, addon_app: App, app: App
) -> dict[str, Any]:
    """An add-on attachment: ``addon`` (billed to ``addon_app``) seen from ``app``."""
    return {
        "id": attachment.id,
        "name": attachment.name,
        "addon": {
            "id": addon.id,
            "name": addon.name,
            "app": _ref(addon_app),
            "plan": {"id": _plan_id(addon.plan_full_name), "name": addon.plan_full_name},
        },
        "app": _ref(app),
        "config_vars": [attachment.var_name],
        "namespace": None,
        "log_input_url": None,
        "web_url": None,
        "created_at": iso(attachment.created_at),
        "updated_at": iso(attachment.updated_at),
    }


def release_resource(release: Release, app: App) -> dict[str, Any]:
    """A release of ``app``; ``current`` when it is the app's latest."""
    return {
        "id": release.id,
        "version": release.version,
        "description": release.description,
        "status": "succeeded",
        "current": release.version == app.release,
        "app": _ref(app),
        "user": _user(release.actor),
        "addon_plan_names": [],
        "artifacts": [],
        "slug": None,
        "output_stream_url": None,
        "eligible_for_rollback": False,
        "created_at": iso(release.created_at),
        "updated_at": iso(release.created_at),
        "securekey": {"config_fingerprint": release.config_fingerprint, "actor": release.actor},
    }


def audit_event_resource(event: AuditEvent) -> dict[str, Any]:
    """One audit event as the API shows it (names and fingerprints only, as it was written)."""
    return {
        "id": event.id,
        "seq": event.seq,
        "created_at": iso(event.at),
        "actor": event.actor,
        "action": event.action,
        "target": {"type": event.target_type, "id": event.target_id, "name": event.target_name},
        "details": dict(event.details),
    }


def key_version_resource(key: KeyVersion) -> dict[str, Any]:
    """One entry of an add-on's key history: never material."""
    return {
        "version": key.version,
        "fingerprint": key.fingerprint,
        "state": key.state.value,
        "created_at": iso(key.created_at),
        "retired_at": iso(key.retired_at),
    }


def token_resource(token: Token, app: App | None, *, current: bool | None = None) -> dict[str, Any]:
    """A token's metadata (its value is shown once, at creation, by the caller).

    ``current`` (operator tokens) says whether it is the caller's own token.
    """
    out: dict[str, Any] = {
        "id": token.id,
        "kind": token.kind.value,
        "description": token.description,
        "app": _ref(app) if app else None,
        "source": token.source,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
    }
    if current is not None:
        out["current"] = current
    return out


def webhook_resource(webhook: Webhook, app: App) -> dict[str, Any]:
    """An app webhook (its secret is never shown after creation)."""
    return {
        "id": webhook.id,
        "app": _ref(app),
        "include": list(webhook.include),
        "level": webhook.level,
        "url": webhook.url,
        "created_at": iso(webhook.created_at),
        "updated_at": iso(webhook.updated_at),
    }


def delivery_resource(delivery: Delivery, webhook: Webhook | None) -> dict[str, Any]:
    """A webhook delivery and its last attempt."""
    last = None
    if delivery.num_attempts:
        last = {
            "id": str(uuid.uuid5(uuid.UUID(delivery.id), str(delivery.num_attempts))),
            "code": delivery.last_code,
            "error_class": delivery.last_error,
            "status": "succeeded" if delivery.status == "succeeded" else "failed",
            "created_at": iso(delivery.updated_at),
            "updated_at": iso(delivery.updated_at),
        }
    return {
        "id": delivery.id,
        "event": {"id": delivery.event_id, "include": delivery.include},
        "webhook": {"id": delivery.webhook_id, "level": webhook.level if webhook else "notify"},
        "status": delivery.status,
        "num_attempts": delivery.num_attempts,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_attempt": last,
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
    }
