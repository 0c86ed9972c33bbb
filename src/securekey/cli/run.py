"""``run``: start a command with the app's config vars, restarting it on rotation.

The supervisor lives in ``securekey.client._run``; this command hands it the raw arguments.
"""

from __future__ import annotations

import importlib
import textwrap
from typing import Any

import typer

from securekey.cli.context import use
from securekey.cli.errors import CliError

__all__ = ["register"]


_ABOUT = """Run a command with an app's config vars; restart it on every release.

  The command gets the app's config vars (SECURE_KEY=LATEST,PREVIOUS, …) in its
  environment. On each new release it is restarted (SIGTERM, --grace seconds, then
  SIGKILL), or with --no-restart it keeps running and --env-file is rewritten (the
  command finds that file's path in SECUREKEY_ENV_FILE). Uses an app token from
  SECUREKEY_TOKEN or --token, and SECUREKEY_URL or --url, not the saved login.

  Example:
    $ SECUREKEY_TOKEN=ska_… securekey run -a service-2 -- gunicorn app:app
    $ securekey run -a service-2 --no-restart --env-file .env -- python worker.py"""


def run_help(module: Any) -> str:
    """``run``'s help in the layout of every other command, from the supervisor's options."""
    rows: list[tuple[str, str]] = []
    for action in module.build_parser()._actions:
        if not action.option_strings:
            continue
        takes = action.nargs != 0
        metavar = action.metavar or (action.dest.upper() if takes else "")
        names = ", ".join(action.option_strings) + (f" {metavar}" if metavar else "")
        text = "Show this message and exit." if "--help" in action.option_strings else action.help
        text = str(text or "")
        rows.append((names, text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")))
    rows.sort(key=lambda row: row[0].startswith("-h"))  # help last, as everywhere else
    width = max(len(n) for n, _ in rows) + 2
    # Wrapped as click wraps the other commands' options: an 80-column terminal stays readable.
    room = max(30, 80 - 2 - width)
    lines = []
    for name, text in rows:
        wrapped = textwrap.wrap(text, room) or [""]
        lines.append(f"  {name.ljust(width)}{wrapped[0]}")
        lines += [" " * (2 + width) + more for more in wrapped[1:]]
    return (
        "Usage: securekey run [OPTIONS] -- COMMAND [ARGS]...\n\n  "
        + _ABOUT
        + "\n\nOptions:\n"
        + "\n".join(lines)
    )


def run(ctx: typer.Context) -> None:
    """Run a command with an app's config vars; restart it on every release.

    See `securekey run --help` for its options.

    \b
    Example:
      $ SECUREKEY_TOKEN=ska_… securekey run -a service-2 -- gunicorn app:app
    """
    cli = use(ctx)
    argv = cli.argv[cli.argv.index("run") + 1 :] if "run" in cli.argv else list(ctx.args)
    options = argv[: argv.index("--")] if "--" in argv else argv
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
    if any(a in ("-h", "--help") for a in options):
        cli.out.raw(run_help(module))
        raise typer.Exit(0)
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
