"""Helpers for the operations tests: a populated server, its observable state, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from securekey.crypto import Cipher
from securekey.domain.models import Webhook
from securekey.store import SqlStore, make_engine

APPS = ("service-1", "service-2", "service-3")
APP_TOKEN_HEADER = "Authorization"


def cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``securekey ARGS`` as a subprocess with a clean SECUREKEY_* environment plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
    full.update(env or {})
    cmd = [sys.executable, "-m", "securekey", *map(str, args)]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=300)


@dataclass
class Populated:
    """What ``populate`` made: add-on names and an app token that must keep working."""

    addons: list[str]
    app_token: str


def populate(http: httpx.Client, *, period: str | None = None) -> Populated:
    """Three apps, an add-on on each (one shared with another app), a config var, an app token."""
    addons = []
    for app in APPS:
        assert http.post("/apps", json={"name": app}).status_code == 201
        body: dict[str, Any] = {"plan": {"name": "securekey:fortnightly"}}
        if period and app == "service-3":
            body["config"] = {"period": period}
        made = http.post(f"/apps/{app}/addons", json=body)
        assert made.status_code == 201, made.text
        addons.append(made.json()["name"])
    shared = http.post(
        "/addon-attachments",
        json={"addon": {"name": addons[0]}, "app": {"name": "service-2"}, "name": "SHARED"},
    )
    assert shared.status_code == 201, shared.text
    config = http.patch("/apps/service-1/config-vars", json={"DATABASE_PASSWORD": "hunter2"})
    assert config.status_code == 200, config.text
    token = http.post("/apps/service-2/tokens", json={"description": "consumer"})
    assert token.status_code == 201, token.text
    return Populated(addons, token.json()["token"])


def add_webhook(db_url: str, cipher: Cipher, app: str) -> None:
    """A webhook with a secret and an Authorization header, written through the store.

    Written below the API on purpose: the data-lifecycle tests need the encrypted columns filled
    whatever the API's current target policy is; it points at a closed loopback port.
    """
    store = SqlStore(make_engine(db_url), cipher, migrate=False)
    try:
        with store.transaction() as tx:
            found = tx.get_app(app)
            assert found is not None
            now = datetime.now(UTC)
            tx.add_webhook(
                Webhook(
                    id="0000abcd-0000-4000-8000-00000000beef",
                    app_id=found.id,
                    url="http://127.0.0.1:9/hook",
                    include=("api:release",),
                    level="notify",
                    secret="whsec-0123456789abcdef",
                    created_at=now,
                    updated_at=now,
                    authorization="Bearer receiver-secret-123",
                )
            )
    finally:
        store.close()


def state(http: httpx.Client) -> dict[str, Any]:
    """Everything a user can observe: config (pairs), add-ons' schedules, releases, webhooks."""
    out: dict[str, Any] = {}
    for app in APPS:
        out[f"{app}/config"] = http.get(f"/apps/{app}/config-vars").json()
        releases = http.get(f"/apps/{app}/releases").json()
        out[f"{app}/releases"] = [
            (r["version"], r["description"], r["created_at"]) for r in releases
        ]
        hooks = http.get(f"/apps/{app}/webhooks").json()
        out[f"{app}/webhooks"] = sorted((h["id"], h["url"], tuple(h["include"])) for h in hooks)
        tokens = http.get(f"/apps/{app}/tokens").json()
        out[f"{app}/tokens"] = sorted(tk["id"] for tk in tokens)
    addons = http.get("/addons").json()
    out["addons"] = sorted(
        (
            a["name"],
            a["app"]["name"],
            a["plan"]["name"],
            a.get("securekey", {}).get("next_rotation_at"),
        )
        for a in addons
    )
    return out


def pairs(http: httpx.Client) -> dict[str, str]:
    """Every attachment's config var value, by ``app/VAR``."""
    found = {}
    for app in APPS:
        for name, value in http.get(f"/apps/{app}/config-vars").json().items():
            if name.endswith("_KEY"):
                found[f"{app}/{name}"] = value
    return found
