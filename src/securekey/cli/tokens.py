"""``tokens``, ``tokens:create``, ``tokens:revoke``: app-scoped tokens, and with ``--operator``
the operator tokens themselves."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.context import JsonOption, add_commands, app_option, listed, seg, use
from securekey.cli.errors import CliError
from securekey.cli.render import Column, Renderer, when

__all__ = ["DescriptionOption", "register", "show_new_token"]

MaybeApp = Annotated[str | None, app_option("App whose tokens these are.", complete=False)]
DescriptionOption = Annotated[
    str | None,
    typer.Option("--description", "-d", metavar="TEXT", help="What the token is for."),
]
OperatorFlag = Annotated[
    bool,
    typer.Option("--operator", help="Operator tokens (manage everything) instead of an app's."),
]


def _scope(app: str | None, operator: bool) -> str:
    """The API path of the tokens meant: an app's, or the operator tokens."""
    if operator and app:
        raise CliError("Give either -a APP (app tokens) or --operator, not both.")
    if operator:
        return "/operator-tokens"
    if not app:
        raise CliError("Missing option -a APP (or --operator for operator tokens).")
    return f"/apps/{seg(app)}/tokens"


def tokens_list(
    ctx: typer.Context,
    app: MaybeApp = None,
    operator: OperatorFlag = False,
    json: JsonOption = False,
) -> None:
    """List an app's tokens, or with --operator the operator tokens (never their values).

    Last used moves at most once a minute. With --operator, * marks the token in use.

    \b
    Example:
      $ securekey tokens -a service-2
      ID                                    Description  Created     Last used
      ────────────────────────────────────  ───────────  ──────────  ─────────
      0b8f6a7e-2f0c-4a55-9d1e-1c1a2f3b4c5d  web dynos    2026-11-29  never
      $ securekey tokens --operator
    """
    cli = use(ctx)
    tokens: list[dict[str, Any]] = cli.api().get(_scope(app, operator))
    empty = f"No tokens for {app}. Create one with `securekey tokens:create -a {app}`."
    if listed(cli, tokens, json=json, empty=empty):
        return

    def day(value: object) -> str:
        return when(value)[:10] if value else "never"

    def used(value: object) -> str:
        return when(value, short=True) if value else "never"

    columns = [Column("ID"), Column("Description", flex=True), Column("Created")]
    if operator:
        columns.append(Column("Source"))
    columns.append(Column("Last used"))
    rows = []
    for t in tokens:
        row = [
            ("* " if t.get("current") else "") + str(t["id"]),
            str(t.get("description") or ""),
            day(t.get("created_at")),
        ]
        if operator:
            row.append(str(t.get("source") or ""))
        rows.append([*row, used(t.get("last_used_at"))])
    cli.out.table(columns, rows)


def tokens_create(
    ctx: typer.Context,
    app: MaybeApp = None,
    operator: OperatorFlag = False,
    description: DescriptionOption = None,
    json: JsonOption = False,
) -> None:
    """Create an app-scoped token, or with --operator an operator token.

    An app token can read and watch its app's config vars, nothing else; an operator token
    manages everything.

    The token is printed once, alone on stdout; only a keyed digest is kept.

    \b
    Example:
      $ securekey tokens:create -a service-2 -d "web dynos"
      Creating a token for ⬢ service-2... done
      ska_3q2…
      $ securekey tokens:create --operator -d "ci"
    """
    cli = use(ctx)
    out = cli.out
    path = _scope(app, operator)
    body = {"description": description} if description else {}
    with out.action(
        *(
            ["Creating an operator token"]
            if operator
            else ["Creating a token for ", out.app(app or "")]
        )
    ):
        made = cli.api().post(path, body)
    if json:
        out.json(made)
        return
    show_new_token(out, str(made["token"]), str(made["id"]), None if operator else app)


def show_new_token(
    out: Renderer, raw: str, token_id: str, app: str | None, *, lead: str = "This"
) -> None:
    """A new token alone on stdout; on stderr that it is shown once and how to revoke it.

    ``app`` None is an operator token; ``lead`` starts the sentence (``This is the only …``).
    """
    out.raw(raw)
    if app is None:
        out.tell(
            f"{lead} is the only time it is shown. Revoke it with "
            f"`securekey tokens:revoke {token_id} --operator`."
        )
        return
    out.tell(
        f"{lead} is the only time it is shown. Give it to the service as SECUREKEY_TOKEN; "
        f"revoke it with `securekey tokens:revoke {token_id} -a {app}`."
    )


def tokens_revoke(
    ctx: typer.Context,
    token: Annotated[str, typer.Argument(metavar="ID", help="Token id (from `tokens`).")],
    app: MaybeApp = None,
    operator: OperatorFlag = False,
    json: JsonOption = False,
) -> None:
    """Revoke an app token, or with --operator an operator token; it stops working at once.

    The last operator token cannot be revoked: create another first.

    \b
    Example:
      $ securekey tokens:revoke 0b8f6a7e-2f0c-4a55-9d1e-1c1a2f3b4c5d -a service-2
      Revoking token 0b8f6a7e-2f0c-4a55-9d1e-1c1a2f3b4c5d on ⬢ service-2... done
      $ securekey tokens:revoke 5d1c0e2a-7b7e-4c11-8f55-0a9b8c7d6e5f --operator
    """
    cli = use(ctx)
    out = cli.out
    path = f"{_scope(app, operator)}/{seg(token)}"
    where = (
        ["Revoking operator token ", token]
        if operator
        else ["Revoking token ", token, " on ", out.app(app or "")]
    )
    with out.action(*where):
        gone = cli.api().delete(path)
    if json:
        out.json(gone)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(
        app,
        [
            ("tokens", tokens_list),
            ("tokens:create", tokens_create),
            ("tokens:revoke", tokens_revoke),
        ],
    )
