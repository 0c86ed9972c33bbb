"""The ``securekey`` command: the typer app, and ``main`` that never lets a traceback out.

Command groups live in their own modules and add themselves here through ``register``.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from securekey import __version__
from securekey.cli import (
    addons,
    apps,
    audit,
    auth,
    completion,
    config_vars,
    doctor,
    ops,
    releases,
    run,
    server,
    tokens,
    webhooks,
)
from securekey.cli.context import Cli
from securekey.cli.errors import CliError
from securekey.cli.text import robust

__all__ = ["build_app", "main"]

_HELP = """Automatic key rotation: apps, add-ons that hold a rotating key pair, config vars.

\b
The commands and their output follow the Heroku CLI's; the server speaks the
Heroku Platform API v3. Log in once, or set SECUREKEY_URL and SECUREKEY_TOKEN.

\b
Example:
  $ securekey login --url http://127.0.0.1:5000 --token sko_…
  $ securekey apps:create service-1
  $ securekey addons:create securekey:fortnightly -a service-1
  $ securekey config -a service-1
"""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"securekey {__version__}")
        raise typer.Exit(0)


def build_app() -> typer.Typer:
    """The typer app with every command group registered."""
    completion.install()
    app = typer.Typer(
        name="securekey",
        help=_HELP,
        no_args_is_help=True,
        add_completion=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version", "-v", callback=_version, is_eager=True, help="Print the version."
            ),
        ] = False,
    ) -> None:
        """Automatic key rotation."""

    groups = (
        auth,
        apps,
        addons,
        config_vars,
        releases,
        tokens,
        webhooks,
        audit,
        doctor,
        run,
        server,
        ops,
    )
    for group in groups:
        group.register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status (errors are one line on stderr, no traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    robust(sys.stdout)
    robust(sys.stderr)
    cli = Cli.from_process(args)
    command = typer.main.get_command(build_app())
    try:
        # Standalone mode: click prints usage errors and handles --help, Exit and Abort itself,
        # and ends with SystemExit; our own errors come through as CliError.
        command.main(args=args, prog_name="securekey", standalone_mode=True, obj=cli)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except CliError as error:
        cli.out.error(error.message)
        return error.exit_code
    except KeyboardInterrupt:
        cli.out.error("Interrupted.")
        return 130
    except BrokenPipeError:
        # The reader went away (`securekey releases | head`): not an error worth a word.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:
        if cli.env.get("SECUREKEY_DEBUG"):
            raise
        cli.out.error(
            f"Unexpected {type(error).__name__}: {error}. This is a bug in securekey; "
            "re-run with SECUREKEY_DEBUG=1 for the traceback and report it."
        )
        return 1
    finally:
        cli.close()
    return 0
