"""``tokens``, ``tokens:create``, ``tokens:revoke``: app-scoped tokens for services."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.context import AppOption, JsonOption, seg, use
from securekey.cli.render import Column, when

__all__ = ["register"]


def tokens_list(ctx: typer.Context, app: AppOption, json: JsonOption = False) -> None:
    """List an app's tokens (never their values).

    \b
    Example:
      $ securekey tokens -a service-2
      ID                                    Description  Created     Last used
      ────────────────────────────────────  ───────────  ──────────  ─────────
      0b8f6a7e-2f0c-4a55-9d1e-1c1a2f3b4c5d  web dynos    2026-11-29  never
    """
    cli = use(ctx)
    tokens: list[dict[str, Any]] = cli.api().get(f"/apps/{seg(app)}/tokens")
    if json:
        cli.out.json(tokens)
        return
    if not tokens:
        cli.out.tell(f"No tokens for {app}. Create one with `securekey tokens:create -a {app}`.")
        return

    def day(value: object) -> str:
        return when(value)[:10] if value else "never"

    cli.out.table(
        [Column("ID"), Column("Description", flex=True), Column("Created"), Column("Last used")],
        [
            [
                str(t["id"]),
                str(t.get("description") or ""),
                day(t.get("created_at")),
                day(t.get("last_used_at")),
            ]
            for t in tokens
        ],
    )


def tokens_create(
    ctx: typer.Context,
    app: AppOption,
    description: Annotated[
        str | None,
        typer.Option("--description", "-d", metavar="TEXT", help="What the token is for."),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create an app-scoped token.

    It can read and watch this app's config vars, nothing else.

    The token is printed once, alone on stdout; only its hash is kept.

    \b
    Example:
      $ securekey tokens:create -a service-2 -d "web dynos"
      Creating a token for ⬢ service-2... done
      ska_3q2…
    """
    cli = use(ctx)
    out = cli.out
    body = {"description": description} if description else {}
    with out.action("Creating a token for ", out.app(app)):
        made = cli.api().post(f"/apps/{seg(app)}/tokens", body)
    if json:
        out.json(made)
        return
    out.raw(str(made["token"]))
    out.tell(
        "This is the only time it is shown. Give it to the service as SECUREKEY_TOKEN; "
        f"revoke it with `securekey tokens:revoke {made['id']} -a {app}`."
    )


def tokens_revoke(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(metavar="ID", help="Token id (from `tokens`).")],
    app: AppOption,
    json: JsonOption = False,
) -> None:
    """Revoke an app token; it stops working at once.

    \b
    Example:
      $ securekey tokens:revoke 0b8f6a7e-2f0c-4a55-9d1e-1c1a2f3b4c5d -a service-2
      Revoking token 0b8f6a7e-2f0c-4a55-9d1e-1c1a2f3b4c5d on ⬢ service-2... done
    """
    cli = use(ctx)
    with cli.out.action("Revoking token ", token, " on ", cli.out.app(app)):
        gone = cli.api().delete(f"/apps/{seg(app)}/tokens/{seg(token)}")
    if json:
        cli.out.json(gone)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("tokens")(tokens_list)
    app.command("tokens:create")(tokens_create)
    app.command("tokens:revoke")(tokens_revoke)
