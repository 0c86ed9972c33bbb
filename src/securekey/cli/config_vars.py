"""``config``, ``config:get``, ``config:set``, ``config:unset``: an app's config vars."""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from securekey.cli.context import AppOption, JsonOption, add_commands, restarting, seg, use
from securekey.cli.errors import CliError
from securekey.cli.render import mask_keys

__all__ = ["register"]

PairsArg = Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="Vars to set.")]
NamesArg = Annotated[list[str], typer.Argument(metavar="KEY...", help="Vars to unset.")]
ShellOption = Annotated[
    bool, typer.Option("--shell", "-s", help="Output NAME=value lines for a shell.")
]


def config_show(
    ctx: typer.Context,
    app: AppOption,
    shell: ShellOption = False,
    json: JsonOption = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="Show keys in full on a terminal too.")
    ] = False,
) -> None:
    """Show an app's config vars.

    An attachment's var (e.g. SECURE_KEY) holds the pair LATEST,PREVIOUS. On a terminal
    keys are shortened (3F6D…FDEE) so they do not sit on the screen; --reveal shows them.
    In a pipe (| grep), with --shell or with --json they are printed in full.

    \b
    Example:
      $ securekey config -a service-1
      === service-1 Config Vars
      SECURE_KEY: 3F6D…FDEE,CF8B…6EBA
    """
    cli = use(ctx)
    config: dict[str, str] = cli.api().get(f"/apps/{seg(app)}/config-vars")
    if json:
        cli.out.json(config)
    elif shell:
        for name, value in config.items():
            cli.out.raw(f"{name}={shlex.quote(value)}")
    else:
        if not reveal and cli.out.stdout_is_terminal():
            config = {name: mask_keys(value) for name, value in config.items()}
        cli.out.header(f"{app} Config Vars")
        cli.out.config(config)


def config_get(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="Config var name.")],
    app: AppOption,
    shell: ShellOption = False,
    json: JsonOption = False,
) -> None:
    """Print one config var's value.

    Exits with status 1 when the var is not set.

    \b
    Example:
      $ securekey config:get SECURE_KEY -a service-1
      3F6D463C2A79289DC5B3C13A4EB2736B0D51A80234CAEAF0EA12D15F12E9FDEE,CF8BBE47…6EBA
    """
    cli = use(ctx)
    config: dict[str, str] = cli.api().get(f"/apps/{seg(app)}/config-vars")
    if name not in config:
        raise CliError(
            f"{name} is not set on {app}; see its vars with `securekey config -a {app}`."
        )
    if json:
        cli.out.json({name: config[name]})
    else:
        cli.out.raw(f"{name}={shlex.quote(config[name])}" if shell else config[name])


def config_set(
    ctx: typer.Context, pairs: PairsArg, app: AppOption, json: JsonOption = False
) -> None:
    """Set one or more config vars (one release).

    \b
    Example:
      $ securekey config:set LOG_LEVEL=debug REGION=eu -a service-1
      Setting LOG_LEVEL, REGION and restarting ⬢ service-1... done, v3
      LOG_LEVEL: debug
      REGION:    eu
    """
    cli = use(ctx)
    out = cli.out
    changes: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise CliError(f"{pair} is invalid. Must be in the format FOO=bar.", exit_code=2)
        changes[key] = value
    with restarting(cli, app, "Setting ", out.attachment(", ".join(changes))):
        config = cli.api().patch(f"/apps/{seg(app)}/config-vars", changes)
    shown = {k: config.get(k, v) for k, v in changes.items()}
    if json:
        out.json(shown)
    else:
        out.config(shown)


def config_unset(
    ctx: typer.Context, names: NamesArg, app: AppOption, json: JsonOption = False
) -> None:
    """Unset one or more config vars (one release).

    \b
    Example:
      $ securekey config:unset LOG_LEVEL -a service-1
      Unsetting LOG_LEVEL and restarting ⬢ service-1... done, v4
    """
    cli = use(ctx)
    with restarting(cli, app, "Unsetting ", cli.out.attachment(", ".join(names))):
        config = cli.api().patch(f"/apps/{seg(app)}/config-vars", dict.fromkeys(names))
    if json:
        cli.out.json(config)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(
        app,
        [
            ("config", config_show),
            ("config:get", config_get),
            ("config:set", config_set),
            ("config:unset", config_unset),
            ("config:remove", config_unset),
        ],
    )
