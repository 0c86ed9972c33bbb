"""``login``, ``logout``, ``auth:whoami``: which server the CLI talks to, with which token."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated, Any

import typer

from securekey.cli.context import Cli, JsonOption, add_commands, use
from securekey.cli.errors import CliError, ResponseError
from securekey.cli.session import Credentials, credentials_path, forget, resolve, save

__all__ = ["register"]

#: ``--token -``: read the token from stdin.
STDIN = "-"


UrlOption = Annotated[
    str | None,
    typer.Option("--url", metavar="URL", help="The server, e.g. http://127.0.0.1:5000."),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help=(
            "Operator token, or - to read it from stdin. A token typed here shows in "
            "`ps` and shell history: prefer -, --token-file, or the prompt (when omitted)."
        ),
    ),
]
TokenFileOption = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        metavar="PATH",
        help="Read the operator token from this file (its first line).",
    ),
]


def login(
    ctx: typer.Context,
    url: UrlOption = None,
    token: TokenOption = None,
    token_file: TokenFileOption = None,
) -> None:
    """Save the server URL and operator token.

    They go to $XDG_CONFIG_HOME/securekey/credentials.json (~/.config/… by default), mode
    0600. SECUREKEY_URL and SECUREKEY_TOKEN, when set, override what is saved.

    \b
    Example:
      $ securekey login --url http://127.0.0.1:5000 --token sko_…
      Logged in to http://127.0.0.1:5000 as operator@securekey.local

    \b
      $ printenv OPERATOR_TOKEN | securekey login --url http://127.0.0.1:5000 --token -
      $ securekey login --url http://127.0.0.1:5000 --token-file /run/secrets/securekey
    """
    cli = use(ctx)
    out = cli.out
    found = resolve(cli.env)
    server = (url or found.url).rstrip("/")
    token = _given_token(cli, token, token_file)
    account = _check_token(Credentials(server, token, "--url", "--token", found.ca_bundle))
    path = credentials_path(cli.env)
    save(path, server, token)
    out.say("Logged in to ", server, " as ", str(account.get("email", "operator")))
    out.tell(f"Saved to {path} (readable by you only).")


def _given_token(cli: Cli, token: str | None, token_file: Path | None) -> str:
    """The token from --token, --token-file, stdin, or typed at a prompt (not echoed)."""
    if token is not None and token_file is not None:
        raise CliError("Pass --token or --token-file, not both.")
    if token_file is not None:
        token = _read_token_file(token_file)
    elif token is None or token == STDIN:
        if cli.out.stdin_is_terminal():  # typed: not echoed
            token = getpass.getpass("Operator token: ")
        else:
            token = cli.out.ask("") or ""
    token = token.strip()
    if not token:
        raise CliError(
            "No token given: pass --token - (stdin) or --token-file PATH, or type the one "
            "`securekey server` printed."
        )
    return token


def _check_token(credentials: Credentials) -> dict[str, Any]:
    """The account the server knows ``credentials`` by; refuses app and unknown tokens."""
    from securekey.cli.api import ApiClient

    check = ApiClient(credentials)
    try:
        return dict(check.get("/account"))
    except ResponseError as error:
        server = credentials.url
        if error.status == 401:
            raise CliError(
                f"The server at {server} does not know this token; nothing was saved. Use the "
                "operator token `securekey server` printed when it first started."
            ) from None
        if error.status == 403:
            raise CliError(
                "That is an app token: it can only read one app's config vars. Log in with the "
                "operator token `securekey server` printed when it first started."
            ) from None
        raise
    finally:
        check.close()


def _read_token_file(path: Path) -> str:
    """The first line of ``path``; a clear error (never its content) when it cannot be used."""
    try:
        with path.open(encoding="utf-8") as handle:
            first = handle.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise CliError(f"Cannot read the token file {path}: {reason}.") from None
    if not first:
        raise CliError(f"The token file {path} is empty.")
    return first


def logout(ctx: typer.Context) -> None:
    """Forget the saved server and token.

    \b
    Example:
      $ securekey logout
      Logged out: removed /home/me/.config/securekey/credentials.json
    """
    cli = use(ctx)
    path = credentials_path(cli.env)
    if forget(path):
        cli.out.say(f"Logged out: removed {path}")
    else:
        cli.out.tell("Not logged in: nothing to forget.")


def whoami(ctx: typer.Context, json: JsonOption = False) -> None:
    """Show the server and account in use (checks the token).

    \b
    Example:
      $ securekey auth:whoami
      operator@securekey.local on http://127.0.0.1:5000
    """
    cli = use(ctx)
    api = cli.api()
    account = api.get("/account")
    if json:
        cli.out.json({**account, "url": api.url})
        return
    cli.out.say(str(account.get("email", "operator")), " on ", api.url)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    add_commands(app, [("login", login), ("logout", logout), ("auth:whoami", whoami)])
