"""``securekey run``'s command line: the options, the token's sources, and the usage checks.

Usage errors are one line in the CLI's style, with the next step; nothing here starts anything.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = [
    "PROG",
    "STDIN",
    "TOKEN_VAR",
    "build_parser",
    "fail",
    "problem",
    "split_argv",
    "token",
    "usage_error",
]

PROG = "securekey run"
#: ``--token -``: read the token from stdin.
STDIN = "-"
TOKEN_VAR = "SECUREKEY_TOKEN"  # noqa: S105 - the variable's name, not a token


def fail(message: str, out: TextIO) -> None:
    """An error as every securekey command prints one: one line, what is wrong and what to do."""
    print(f" \u25b8    {message}", file=out, flush=True)


def usage_error(text: str, out: TextIO) -> None:
    """A usage error, capitalised, with where to read more."""
    fail(f"{text[:1].upper()}{text[1:]}. See `securekey run --help`.", out)


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line in the CLI's style, with the next step."""

    def error(self, message: str) -> Any:  # argparse's hook; never returns
        usage_error(message, sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``securekey run``'s options (the command itself comes after ``--``)."""
    parser = _Parser(
        prog=PROG,
        description=(
            "Run CMD with APP's config vars in its environment. On every new release, restart "
            "it (SIGTERM, --grace seconds, then SIGKILL), or with --no-restart only rewrite "
            "--env-file."
        ),
        epilog="example: securekey run -a service-2 -- gunicorn app:app",
    )
    _server_options(parser)
    _restart_options(parser)
    parser.add_argument(
        "--no-restart",
        action="store_true",
        help="keep CMD running; write each release's config vars to --env-file instead",
    )
    parser.add_argument(
        "--env-file", help="write the config vars here (mode 0600, replaced atomically)"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARG ...]")
    return parser


def _server_options(parser: argparse.ArgumentParser) -> None:
    """Which app, on which server, with which token."""
    parser.add_argument("-a", "--app", required=True, help="the app whose config vars to use")
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        help=(
            "an app token, or - to read it from stdin (one line); default: $SECUREKEY_TOKEN. "
            "A token written here shows in `ps`: prefer the variable, - or --token-file"
        ),
    )
    parser.add_argument(
        "--token-file", metavar="PATH", help="read the app token from this file (first line)"
    )
    parser.add_argument(
        "--pass-token",
        action="store_true",
        help=(
            "give CMD the token as SECUREKEY_TOKEN (by default CMD never sees it, whether it "
            "came from --token, --token-file or the environment)"
        ),
    )
    parser.add_argument("--url", help="the securekey server (default: $SECUREKEY_URL)")
    parser.add_argument(
        "--ca-bundle",
        help="PEM file of the CA certificates to trust for an https server "
        "(default: $SECUREKEY_CA_BUNDLE, else the public CAs)",
    )


def _restart_options(parser: argparse.ArgumentParser) -> None:
    """How CMD is restarted: on a release (grace, splay) and after a failure (back-off)."""
    parser.add_argument(
        "--grace",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL on restart (default: 10)",
    )
    parser.add_argument(
        "--splay",
        type=float,
        default=0.0,
        help="wait a random 0..S seconds before restarting, so instances spread out",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        help=(
            "restart a failing command (non-zero exit or killed) at most N times in a row, "
            "waiting 1, 2, 4 ... s (at most --max-backoff) before each; 0 exits with its status "
            "at once (default: 5)"
        ),
    )
    parser.add_argument(
        "--min-uptime",
        type=float,
        default=10.0,
        help="a start that lasts this many seconds is healthy and resets the count (default: 10)",
    )
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=60.0,
        help="the longest wait between restarts of a failing command, in seconds (default: 60)",
    )


def split_argv(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """(options, command) split at the first ``--``; command None when there is no ``--``."""
    if "--" in argv:
        at = list(argv).index("--")
        return list(argv[:at]), list(argv[at + 1 :])
    return list(argv), None


def _read_line(fd: int) -> str:
    """One line from ``fd``, read a byte at a time so nothing after it is taken from CMD."""
    data = bytearray()
    while len(data) < 4096:
        chunk = os.read(fd, 1)
        if not chunk or chunk == b"\n":
            break
        data += chunk
    return data.decode("utf-8", "replace").strip()


def token(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(the token, a problem): from --token (or - for stdin), --token-file, or the env."""
    if args.token is not None and args.token_file is not None:
        return None, "pass --token or --token-file, not both"
    if args.token_file is not None:
        try:
            with open(args.token_file, encoding="utf-8") as handle:
                first = handle.readline().strip()
        except OSError as exc:
            return None, f"cannot read --token-file {args.token_file}: {exc.strerror or exc}"
        return (first, None) if first else (None, f"--token-file {args.token_file} is empty")
    if args.token == STDIN:
        line = _read_line(sys.stdin.fileno())
        return (line, None) if line else (None, "--token -: nothing on stdin")
    return args.token or os.environ.get(TOKEN_VAR), None


def problem(args: argparse.Namespace, command: list[str], url: str | None, key: str | None) -> str:
    """What is wrong with the arguments (the first thing), or "" when nothing is."""
    if not command:
        return "no command given (put it after --)"
    if not url:
        return "no server URL: pass --url or set SECUREKEY_URL"
    if not key:
        return "no token: set SECUREKEY_TOKEN, or pass --token-file PATH or --token -"
    if args.no_restart and not args.env_file:
        return "--no-restart needs --env-file"
    if min(args.grace, args.splay, args.max_restarts, args.min_uptime, args.max_backoff) < 0:
        return (
            "--grace, --splay, --max-restarts, --min-uptime and --max-backoff must not be negative"
        )
    return ""
