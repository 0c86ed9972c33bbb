"""``releases`` and ``releases:info``: every config change of an app, numbered v1, v2, …"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.context import AppOption, JsonOption, add_commands, seg, use
from securekey.cli.render import Column, when

__all__ = ["register"]

ReleaseArg = Annotated[str, typer.Argument(metavar="vN", help="Release version, e.g. v3.")]


def releases_list(
    ctx: typer.Context,
    app: AppOption,
    num: Annotated[
        int, typer.Option("--num", "-n", min=1, max=1000, help="How many, newest first.")
    ] = 15,
    json: JsonOption = False,
) -> None:
    """List an app's releases, newest first.

    \b
    Example:
      $ securekey releases -a service-2
      === service-2 Releases - Current: v4
      v4  Detach SERVICE_ONE_SECURE (@re…  operator@securekey.local  2026-12-13 10:01Z
      v3  Update SERVICE_ONE_SECURE by s…  operator@securekey.local  2026-12-13 10:00Z
      v2  Attach SERVICE_ONE_SECURE (@re…  operator@securekey.local  2026-11-29 10:00Z
      v1  Initial release                  operator@securekey.local  2026-11-29 10:00Z
    """
    cli = use(ctx)
    rows: list[dict[str, Any]] = cli.api().get(
        f"/apps/{seg(app)}/releases", headers={"Range": f"version ..; max={num}, order=desc"}
    )
    if json:
        cli.out.json(rows)
        return
    current = next((r["version"] for r in rows if r.get("current")), None)
    title = f"{app} Releases" + (f" - Current: v{current}" if current is not None else "")
    cli.out.header(title)
    cli.out.table(
        [
            Column("Version"),
            Column("Description", flex=True, minimum=20),
            Column("User"),
            Column("Time"),
        ],
        [
            [
                f"v{r['version']}",
                str(r.get("description", "")),
                str(r.get("user", {}).get("email", "")),
                when(r.get("created_at"), short=True),
            ]
            for r in rows
        ],
        titles=False,
    )


def releases_info(
    ctx: typer.Context, release: ReleaseArg, app: AppOption, json: JsonOption = False
) -> None:
    """Show one release.

    \b
    Example:
      $ securekey releases:info v3 -a service-2
      === Release v3
      By:      operator@securekey.local
      Change:  Update SERVICE_ONE_SECURE by securekey-solid-14332
      ...
    """
    cli = use(ctx)
    found: dict[str, Any] = cli.api().get(f"/apps/{seg(app)}/releases/{seg(release)}")
    if json:
        cli.out.json(found)
        return
    extra = found.get("securekey", {})
    cli.out.header(f"Release v{found['version']}")
    cli.out.fields(
        [
            ("By", str(found.get("user", {}).get("email", ""))),
            ("Change", str(found.get("description", ""))),
            ("Actor", str(extra.get("actor", "?"))),
            ("Config", f"{extra.get('config_fingerprint', '?')} (fingerprint)"),
            ("Current", "yes" if found.get("current") else "no"),
            ("Status", str(found.get("status", "?"))),
            ("When", when(found.get("created_at"))),
        ]
    )


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(app, [("releases", releases_list), ("releases:info", releases_info)])
