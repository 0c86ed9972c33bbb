"""``run``: start a command with the app's config vars, restarting it on rotation.

The supervisor lives in ``securekey.client._run``; this command hands it the raw arguments.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer

from securekey.cli.context import use
from securekey.cli.errors import CliError

__all__ = ["register"]


def run(ctx: typer.Context) -> None:
    """Run a command with an app's config vars.

    The command is restarted when they change (see `securekey run --help`).

    \b
    Example:
      $ SECUREKEY_TOKEN=ska_… securekey run -a service-2 -- gunicorn app:app
    """
    cli = use(ctx)
    argv = cli.argv[cli.argv.index("run") + 1 :] if "run" in cli.argv else list(ctx.args)
    try:
        module: Any = importlib.import_module("securekey.client._run")
    except ModuleNotFoundError as exc:
        if exc.name not in ("securekey.client", "securekey.client._run"):
            raise
        if any(a in ("-h", "--help") for a in argv):
            cli.out.raw(ctx.get_help())
            raise typer.Exit(0) from None
        raise CliError(
            "`securekey run` is not available in this installation (securekey.client._run "
            "is missing). Use the SDK, or upgrade securekey."
        ) from None
    code = module.run_main(argv)
    raise typer.Exit(int(code or 0))


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command(
        "run",
        context_settings={
            "ignore_unknown_options": True,
            "allow_extra_args": True,
            "help_option_names": [],
        },
        add_help_option=False,
    )(run)
