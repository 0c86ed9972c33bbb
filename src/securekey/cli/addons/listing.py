"""``addons``, ``addons:info`` and ``addons:keys``: what add-ons there are, who uses each,
its rotations and key history (fingerprints, never keys)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.addons.common import AddonArg, find_addon, period, price, short_plan
from securekey.cli.context import JsonOption, app_option, listed, seg, use
from securekey.cli.render import Column, when

__all__ = ["addons_info", "addons_keys", "addons_list"]


def _attached(attachments: list[dict[str, Any]], addon_id: object) -> list[str]:
    """``app::NAME`` of each attachment of the add-on ``addon_id``, sorted."""
    return sorted(
        f"{a['app']['name']}::{a['name']}"
        for a in attachments
        if a.get("addon", {}).get("id") == addon_id
    )


def addons_list(
    ctx: typer.Context,
    app: Annotated[str | None, app_option("Only add-ons on this app.", complete=False)] = None,
    json: JsonOption = False,
) -> None:
    """List add-ons and their attachments.

    All of them, or with -a those billed to or attached to one app.

    \b
    Example:
      $ securekey addons -a service-2
      Add-on                 Plan         Billing app  Attachments
      ─────────────────────  ───────────  ───────────  ─────────────────────────────
      securekey-solid-14332  fortnightly  service-1    service-1::SECURE
                                                       service-2::SERVICE_ONE_SECURE
    """
    cli = use(ctx)
    api = cli.api()
    addons: list[dict[str, Any]] = api.get(f"/apps/{seg(app)}/addons" if app else "/addons")
    attachments: list[dict[str, Any]] = api.get("/addon-attachments")
    where = f" on {app}" if app else ""
    empty = f"No add-ons{where}. Create one with `securekey addons:create`."
    if listed(cli, addons, json=json, empty=empty):
        return
    rows = [
        [
            a["name"],
            short_plan(a),
            a["app"]["name"],
            "\n".join(_attached(attachments, a["id"])) or "-",
        ]
        for a in addons
    ]
    cli.out.table(
        [
            Column("Add-on"),
            Column("Plan"),
            Column("Billing app", flex=True),
            Column("Attachments", flex=True, minimum=16),
        ],
        rows,
    )


def addons_info(
    ctx: typer.Context,
    addon: AddonArg,
    app: Annotated[
        str | None, app_option("Resolve ADDON as an attachment here.", complete=False)
    ] = None,
    json: JsonOption = False,
) -> None:
    """Show an add-on, its rotations and keys.

    Plan, billing app, attachments, last and next rotation, fingerprints of the current
    pair (never the keys).

    \b
    Example:
      $ securekey addons:info securekey-solid-14332
      === securekey-solid-14332
      Attachments:     service-1::SECURE
                       service-2::SERVICE_ONE_SECURE
      Billing app:     ⬢ service-1
      ...
    """
    cli = use(ctx)
    api = cli.api()
    found = find_addon(api, addon, app)
    full: dict[str, Any] = api.get(f"/addons/{seg(found['id'])}")
    attachments: list[dict[str, Any]] = api.get(f"/addons/{seg(full['id'])}/addon-attachments")
    if json:
        cli.out.json({**full, "attachments": attachments})
        return
    cli.out.header(str(full["name"]))
    cli.out.fields(_info_fields(cli.out.app(str(full["app"]["name"])), full, attachments))


def _info_fields(
    billing: Any, full: dict[str, Any], attachments: list[dict[str, Any]]
) -> list[tuple[str, Any]]:
    """``addons:info``'s lines, in Heroku's alphabetical order."""
    extra = full.get("securekey", {})
    prints = extra.get("fingerprints", {})
    return [
        ("Attachments", sorted(f"{a['app']['name']}::{a['name']}" for a in attachments)),
        ("Billing app", billing),
        ("Config vars", ", ".join(full.get("config_vars", [])) or "-"),
        ("Installed at", when(full.get("created_at"))),
        ("Key version", str(extra.get("key_version", "?"))),
        ("Last rotation", when(extra.get("last_rotated_at"))),
        ("Latest key", str(prints.get("latest", "?")) + " (fingerprint)"),
        ("Next rotation", when(extra.get("next_rotation_at"))),
        ("Period", period(extra.get("period_seconds"))),
        ("Plan", str(full.get("plan", {}).get("name", "?"))),
        ("Previous key", str(prints.get("previous", "?")) + " (fingerprint)"),
        ("Price", price(full)),
        ("State", str(full.get("state", "?"))),
    ]


def addons_keys(ctx: typer.Context, addon: AddonArg, json: JsonOption = False) -> None:
    """Show an add-on's key history.

    Fingerprints, states and times of every key version; never the keys themselves.

    \b
    Example:
      $ securekey addons:keys securekey-solid-14332
      Version  State     Fingerprint       Created              Retired
      ───────  ────────  ────────────────  ───────────────────  ───────────────────
      3        latest    9c1e0f5a7b3d2e41  2026-12-13 10:00 UTC
      2        previous  3f6d463c2a79289d  2026-11-29 10:00 UTC
      1        retired   cf8bbe474f57d9ca  2026-11-29 10:00 UTC  2026-12-13 10:00 UTC
    """
    cli = use(ctx)
    history: list[dict[str, Any]] = cli.api().get(f"/addons/{seg(addon)}/key-versions")
    if json:
        cli.out.json(history)
        return
    cli.out.table(
        [
            Column("Version"),
            Column("State"),
            Column("Fingerprint"),
            Column("Created"),
            Column("Retired"),
        ],
        [
            [
                str(k.get("version", "?")),
                str(k.get("state", "?")),
                str(k.get("fingerprint", "?")),
                when(k.get("created_at"), short=True),
                when(k.get("retired_at"), short=True) if k.get("retired_at") else "",
            ]
            for k in history
        ],
    )
