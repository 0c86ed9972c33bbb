"""A snapshot of a securekey server's visible state, taken over the HTTP API only.

Two servers driven through the same walkthrough by different clients (the ``securekey`` CLI,
the Heroku CLI, raw API calls) must end in equal ``normalised`` snapshots: the same apps, the
same add-ons and attachments, the same releases (numbers and descriptions), the same config var
names, and the same sharing of key pairs. Generated names and key material differ from run to
run, so add-ons are renamed ``addon-1``, ``addon-2``… in creation order and pairs become labels.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

__all__ = ["normalised", "snapshot"]

_ALL = {"Range": "name ..; max=1000"}
#: How release descriptions name an add-on: ``Attach X (@ref:NAME)``, ``Update X by NAME``.
_MENTION = re.compile(r"@ref:([a-z][a-z0-9-]*)\)|\bby ([a-z][a-z0-9-]*)")


def _get(http: httpx.Client, path: str, headers: dict[str, str] | None = None) -> Any:
    response = http.get(path, headers=headers)
    assert response.status_code in (200, 206), f"GET {path}: {response.status_code}"
    return response.json()


def snapshot(http: httpx.Client) -> dict[str, Any]:
    """Everything a client can see, as raw as the API gives it (``http`` has operator creds)."""
    apps = sorted(_get(http, "/apps", _ALL), key=lambda a: a["name"])
    addons = sorted(_get(http, "/addons", _ALL), key=lambda a: (a["created_at"], a["name"]))
    attachments = _get(http, "/addon-attachments", _ALL)
    state: dict[str, Any] = {
        "apps": {},
        "addons": [
            {
                "name": a["name"],
                "plan": a["plan"]["name"],
                "app": a["app"]["name"],
                "config_vars": sorted(a["config_vars"]),
                "key_version": a.get("securekey", {}).get("key_version"),
            }
            for a in addons
        ],
        "attachments": sorted(
            (
                {"app": t["app"]["name"], "name": t["name"], "addon": t["addon"]["name"]}
                for t in attachments
            ),
            key=lambda t: (t["app"], t["name"]),
        ),
    }
    for app in apps:
        name = app["name"]
        releases = _get(
            http, f"/apps/{name}/releases", {"Range": "version ..; max=1000, order=asc"}
        )
        state["apps"][name] = {
            "releases": [(r["version"], r["description"]) for r in releases],
            "config": _get(http, f"/apps/{name}/config-vars"),
        }
    return state


def normalised(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without what differs between equal runs: generated names, key material."""
    # Destroyed add-ons live on in release descriptions: name them in order of first mention.
    seen: list[str] = []
    for _app, data in sorted(state["apps"].items()):
        for _version, text in data["releases"]:
            for found in _MENTION.finditer(text):
                seen.append(found.group(1) or found.group(2))
    seen += [a["name"] for a in state["addons"]]
    names: dict[str, str] = {}
    for name in seen:
        names.setdefault(name, f"addon-{len(names) + 1}")
    pattern = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))

    def rename(text: str) -> str:
        return pattern.sub(lambda m: names[m.group()], text) if names else text

    pairs: dict[str, str] = {}

    def label(value: str) -> str:
        if not re.fullmatch(r"[0-9A-F]{64},[0-9A-F]{64}", value):
            return value
        return pairs.setdefault(value, f"pair-{len(pairs) + 1}")

    apps = {}
    for app, data in sorted(state["apps"].items()):
        apps[app] = {
            "releases": [(v, rename(d)) for v, d in data["releases"]],
            "config": {k: label(v) for k, v in sorted(data["config"].items())},
        }
    return {
        "apps": apps,
        "addons": [{**a, "name": names[a["name"]]} for a in state["addons"]],
        "attachments": [
            {**t, "addon": names.get(t["addon"], t["addon"])} for t in state["attachments"]
        ],
    }
