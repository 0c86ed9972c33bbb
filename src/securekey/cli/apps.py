"""``apps``, ``apps:create``, ``apps:info``, ``apps:destroy``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from securekey.cli.completion import complete_apps
from securekey.cli.context import (
    AppOption,
    JsonOption,
    OptionalApp,
    add_commands,
    confirm,
    listed,
    seg,
    use,
)
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.render import when

__all__ = ["attached_elsewhere", "register"]


def attached_elsewhere(ctx: typer.Context, error: ResponseError, what: str) -> ResponseError:
    """Explain a 422 ``attached_elsewhere``: list who still uses the key, suggest ``--force``."""
    out = use(ctx).out
    others = [a for a in error.body.get("attachments", []) if isinstance(a, dict)]
    out.error(f"{what} is still attached to other apps; destroying it would break them:")
    for att in others:
        name, app = str(att.get("name", "?")), str(att.get("app", "?"))
        out.tell("       ", out.attachment(name), " on ", out.app(app))
    first = others[0] if others else {"name": "NAME", "app": "APP"}
    return ResponseError(
        f"Detach them first (securekey addons:detach {first['name']} -a {first['app']}), "
        "or re-run with --force to detach it everywhere.",
        status=error.status,
        id_=error.id,
        body=error.body,
    )


def apps_list(ctx: typer.Context, json: JsonOption = False) -> None:
    """List your apps.

    \b
    Example:
      $ securekey apps
      === Apps
      service-1
      service-2
    """
    cli = use(ctx)
    apps: list[dict[str, Any]] = cli.api().get("/apps")
    empty = "You have no apps. Create one with `securekey apps:create NAME`."
    if listed(cli, apps, json=json, empty=empty):
        return
    cli.out.header("Apps")
    for app in apps:
        cli.out.say(str(app["name"]))


def apps_create(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Name of the app (made up if omitted).")
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create an app; its first release is v1.

    \b
    Example:
      $ securekey apps:create service-1
      Creating ⬢ service-1... done
    """
    cli = use(ctx)
    body = {"name": name} if name else {}
    with cli.out.action("Creating ", cli.out.app(name) if name else "app"):
        app = cli.api().post("/apps", body)
    if json:
        cli.out.json(app)
    elif not name:
        cli.out.say(cli.out.app(str(app["name"])))


def apps_info(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="APP", help="The app (or give it with -a).", autocompletion=complete_apps
        ),
    ] = None,
    app: OptionalApp = None,
    json: JsonOption = False,
) -> None:
    """Show an app.

    Its add-ons, attachments, number of config vars and current release. The app may be
    given as an argument or with -a, as in the Heroku CLI.

    \b
    Example:
      $ securekey apps:info -a service-1
      === service-1
      Add-ons:      securekey-solid-14332
      Attachments:  SECURE (securekey-solid-14332)
      ...
    """
    cli = use(ctx)
    app = _one_app(name, app)
    api = cli.api()
    info = api.get(f"/apps/{seg(app)}")
    addons = api.get(f"/apps/{seg(app)}/addons")
    attachments = api.get(f"/apps/{seg(app)}/addon-attachments")
    config = api.get(f"/apps/{seg(app)}/config-vars")
    if json:
        cli.out.json({**info, "addons": addons, "attachments": attachments})
        return
    cli.out.header(str(info["name"]))
    cli.out.fields(
        [
            ("Add-ons", [str(a["name"]) for a in addons if a["app"]["name"] == info["name"]]),
            (
                "Attachments",
                [f"{a['name']} ({a['addon']['name']})" for a in attachments],
            ),
            ("Config vars", str(len(config))),
            ("Created at", when(info.get("created_at"))),
            ("Release", f"v{info.get('securekey', {}).get('release', '?')}"),
            ("Web URL", str(info.get("web_url", ""))),
        ]
    )


def _one_app(name: str | None, app: str | None) -> str:
    """The app given as an argument or with -a (the same one if both)."""
    if name and app and name != app:
        raise CliError(f"Two apps given ({name} and -a {app}); give one.", exit_code=2)
    if not (name or app):
        raise CliError(
            "Missing app: give it as `securekey apps:info APP` or with -a APP.", exit_code=2
        )
    return str(name or app)


def apps_destroy(
    ctx: typer.Context,
    app: AppOption,
    confirm_: Annotated[
        str | None,
        typer.Option("--confirm", metavar="APP", help="Skip the prompt: the app's name."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Also detach its add-ons from the other apps using them."),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Destroy an app and the add-ons it bills.

    Its config vars and releases go too. Asks to type the app's name unless --confirm.

    \b
    Example:
      $ securekey apps:destroy -a service-2 --confirm service-2
      Destroying ⬢ service-2 (including all add-ons)... done
    """
    cli = use(ctx)
    out = cli.out
    found = cli.api().get(f"/apps/{seg(app)}")
    name = str(found["name"])
    confirm(
        cli,
        name,
        confirm_,
        title="WARNING: Destructive Action",
        lines=[["This command will destroy ", out.app(name), " and every add-on it bills"]],
    )
    try:
        with out.action("Destroying ", out.app(name), " (including all add-ons)"):
            gone = cli.api().delete(f"/apps/{seg(name)}", {"force": force})
    except ResponseError as error:
        if error.id == "attached_elsewhere":
            raise attached_elsewhere(ctx, error, f"An add-on of {name}") from None
        raise
    if json:
        out.json(gone)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(
        app,
        [
            ("apps", apps_list),
            ("apps:create", apps_create),
            ("apps:info", apps_info),
            ("apps:destroy", apps_destroy),
        ],
    )
