"""``webhooks``, ``webhooks:add``, ``webhooks:remove``: tell a URL about every release."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.context import AppOption, JsonOption, add_commands, listed, seg, use
from securekey.cli.render import Column

__all__ = ["register"]

WebhookArg = Annotated[str, typer.Argument(metavar="ID", help="Webhook id (from `webhooks`).")]


def webhooks_list(ctx: typer.Context, app: AppOption, json: JsonOption = False) -> None:
    """List an app's webhooks.

    \b
    Example:
      $ securekey webhooks -a service-2
      === service-2 Webhooks
      ID                                    URL                    Include      Level
      ────────────────────────────────────  ─────────────────────  ───────────  ──────
      5c3e9a4f-0d6b-4a1e-8f2c-7b9d0e1f2a3b  https://hooks.exampl…  api:release  notify
    """
    cli = use(ctx)
    hooks: list[dict[str, Any]] = cli.api().get(f"/apps/{seg(app)}/webhooks")
    empty = f"{app} has no webhooks. Add one with `securekey webhooks:add -a {app}`."
    if listed(cli, hooks, json=json, empty=empty):
        return
    cli.out.header(f"{app} Webhooks")
    cli.out.table(
        [Column("ID"), Column("URL", flex=True, minimum=20), Column("Include"), Column("Level")],
        [
            [
                str(h["id"]),
                str(h.get("url", "")),
                ",".join(h.get("include", [])),
                str(h.get("level", "")),
            ]
            for h in hooks
        ],
    )


def webhooks_add(
    ctx: typer.Context,
    app: AppOption,
    url: Annotated[str, typer.Option("--url", "-u", metavar="URL", help="Where to POST events.")],
    include: Annotated[
        list[str] | None,
        typer.Option("--include", "-i", metavar="EVENT", help="Event kinds (api:release)."),
    ] = None,
    level: Annotated[
        str, typer.Option("--level", "-l", metavar="LEVEL", help="notify or sync.")
    ] = "notify",
    secret: Annotated[
        str | None,
        typer.Option("--secret", "-s", metavar="SECRET", help="Signing secret (made if omitted)."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Add a webhook for the app's releases.

    Every release is POSTed to URL, signed with the secret.

    \b
    Example:
      $ securekey webhooks:add -a service-2 --url https://hooks.example/sk --include api:release
      Adding webhook to ⬢ service-2... done
      === Webhooks Signing Secret
      0f4e…
    """
    cli = use(ctx)
    out = cli.out
    kinds: list[str] = []
    for item in include or ["api:release"]:
        kinds += [k.strip() for k in item.split(",") if k.strip()]
    body: dict[str, Any] = {"url": url, "include": kinds, "level": level}
    if secret is not None:
        body["secret"] = secret
    with out.action("Adding webhook to ", out.app(app)):
        reply = cli.api().request("POST", f"/apps/{seg(app)}/webhooks", json=body)
    if json:
        out.json(reply.data)
        return
    made = reply.headers.get("heroku-webhook-secret")
    if made:
        out.header("Webhooks Signing Secret")
        out.raw(made)


def webhooks_remove(
    ctx: typer.Context, webhook: WebhookArg, app: AppOption, json: JsonOption = False
) -> None:
    """Remove a webhook and its pending deliveries.

    \b
    Example:
      $ securekey webhooks:remove 5c3e9a4f-0d6b-4a1e-8f2c-7b9d0e1f2a3b -a service-2
      Removing webhook 5c3e9a4f-0d6b-4a1e-8f2c-7b9d0e1f2a3b from ⬢ service-2... done
    """
    cli = use(ctx)
    with cli.out.action("Removing webhook ", webhook, " from ", cli.out.app(app)):
        gone = cli.api().delete(f"/apps/{seg(app)}/webhooks/{seg(webhook)}")
    if json:
        cli.out.json(gone)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(
        app,
        [
            ("webhooks", webhooks_list),
            ("webhooks:add", webhooks_add),
            ("webhooks:remove", webhooks_remove),
        ],
    )
