"""What every command gets: the environment read once at start, the renderer, the API client.

Also the options the commands share (``-a APP``, ``--json``) and the destructive-action
confirmation, so each command module stays a list of short functions.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from securekey.cli.completion import complete_apps
from securekey.cli.errors import CliError
from securekey.cli.render import Part, Renderer
from securekey.cli.session import resolve

if TYPE_CHECKING:
    from securekey.cli.api import ApiClient

__all__ = [
    "AppOption",
    "Cli",
    "DataDirOption",
    "DatabaseUrlOption",
    "JsonOption",
    "OptionalApp",
    "add_commands",
    "alias_help",
    "app_option",
    "confirm",
    "listed",
    "restarting",
    "seg",
    "server_module",
    "use",
]


def app_option(help_: str = "App to run the command against.", *, complete: bool = True) -> Any:
    """The ``--app/-a APP`` option with ``help_``; ``complete`` offers app names from the server."""
    return typer.Option(
        "--app",
        "-a",
        metavar="APP",
        help=help_,
        autocompletion=complete_apps if complete else None,
    )


AppOption = Annotated[str, app_option()]
OptionalApp = Annotated[str | None, app_option()]
JsonOption = Annotated[bool, typer.Option("--json", "-j", help="Output JSON, for scripts.")]
#: Where the commands that open the database find it (as ``securekey server`` does).
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Directory of the embedded SQLite database (./data)."),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", help="PostgreSQL URL instead of the embedded database."),
]


def alias_help(of: str, doc: str | None) -> str:
    """Help for an alias: says what it aliases, then that command's own help and example."""
    return f"Alias of {of}: " + inspect.cleandoc(doc or "")


def add_commands(app: typer.Typer, commands: Sequence[tuple[str, Callable[..., None]]]) -> None:
    """Add each ``(name, function)`` in order; a function named a second time is an alias."""
    first: dict[Callable[..., None], str] = {}
    for name, function in commands:
        if function in first:
            app.command(name, help=alias_help(first[function], function.__doc__))(function)
        else:
            first[function] = name
            app.command(name)(function)


def server_module(name: str, who: str = "This command") -> Any:
    """Import the server-side module ``name``; a clear line when the server extra is missing."""
    # Imported on use: the server's dependencies are not needed (nor installed) for the client.
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise CliError(
            f"{who} needs {exc.name}, which is not installed: pip install 'securekey[server]'."
        ) from None


def seg(value: str) -> str:
    """One URL path segment, escaped so a name can never change the path."""
    return quote(value, safe="")


@dataclass
class Cli:
    """One invocation: its environment, raw arguments and output, and a lazy API client."""

    env: Mapping[str, str]
    argv: list[str]
    out: Renderer
    _api: ApiClient | None = field(default=None, repr=False)

    @classmethod
    def from_process(cls, argv: list[str]) -> Cli:
        """Read this process's environment and streams (only here)."""
        env = dict(os.environ)
        return cls(env, argv, Renderer.for_terminal(env))

    def api(self) -> ApiClient:
        """The client for the configured server (``login`` file, or SECUREKEY_URL/TOKEN)."""
        if self._api is None:
            # httpx is imported only by commands that talk to a server (help stays quick).
            from securekey.cli.api import ApiClient

            raw = self.env.get("SECUREKEY_TIMEOUT", "")
            try:
                timeout = float(raw) if raw else 30.0
            except ValueError:
                raise CliError(
                    f"SECUREKEY_TIMEOUT={raw!r} is not a number of seconds; unset it or give "
                    "one, e.g. 30."
                ) from None
            if not timeout > 0:
                raise CliError("SECUREKEY_TIMEOUT must be a positive number of seconds.")
            self._api = ApiClient(resolve(self.env), timeout=timeout)
        return self._api

    def close(self) -> None:
        """Release the HTTP client, if one was made."""
        if self._api is not None:
            self._api.close()


def use(ctx: typer.Context) -> Cli:
    """The invocation's ``Cli`` (made from the process when the app runs another way)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Cli):
        root.obj = Cli.from_process([])
        root.call_on_close(root.obj.close)
    return root.obj


def confirm(
    cli: Cli,
    expected: str,
    given: str | None,
    *,
    title: str,
    lines: list[list[Part]],
) -> None:
    """Go on only when ``given`` (``--confirm``) or a typed answer equals ``expected``.

    Without ``--confirm`` it shows Heroku's warning block and asks; when nobody can answer
    (standard input is not a terminal) it refuses rather than guess.
    """
    out = cli.out
    if given is None:
        if not out.stdin_is_terminal():
            raise CliError(
                f"This is a destructive action and standard input is not a terminal to confirm "
                f"it: re-run with --confirm {expected}."
            )
        out.warning(
            [
                [title],
                *lines,
                ["To proceed, type ", out.strong(expected), " or re-run this command with"],
                [out.strong(f"--confirm {expected}")],
            ]
        )
        given = out.ask("> ")
        if given is None:
            raise CliError(f"No answer given; nothing changed. Re-run with --confirm {expected}.")
    if given.strip() != expected:
        raise CliError(f"Confirmation {given.strip()} did not match {expected}. Aborted.")


def listed(cli: Cli, rows: Sequence[Any], *, json: bool, empty: str) -> bool:
    """Print ``rows`` as JSON, or say ``empty`` when there are none; whether that said it all."""
    if json:
        cli.out.json(rows)
        return True
    if not rows:
        cli.out.tell(empty)
        return True
    return False


@contextmanager
def restarting(cli: Cli, app: str, *what: Part) -> Iterator[None]:
    """``WHAT and restarting ⬢ APP... done, vN``: the block changes the config, then the
    release it made is named (asked the way the Heroku CLI asks)."""
    out = cli.out
    with out.action(*what, " and restarting ", out.app(app)) as status:
        yield
        status.text = f"done, v{cli.api().latest_release(app)}"
