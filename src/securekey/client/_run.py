"""``securekey run``: run a command with an app's config vars; restart it on every new release.

The command runs in its own process group; SIGTERM, SIGINT and SIGHUP sent to ``run`` are
passed on to that group. A command that exits 0 ends ``run`` with status 0; one that fails is
started again after an exponential back-off, and ``run`` gives up (with the command's status,
128+N for signal N) after ``--max-restarts`` failures in a row that each came sooner than
``--min-uptime`` after their start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from typing import Any, TextIO

from securekey.client._api import ConfigSnapshot
from securekey.client._envfile import write_env_file
from securekey.client._errors import ServerUnavailableError
from securekey.client._loop import LoopThread
from securekey.client._run_args import (
    PROG,
    build_parser,
    fail,
    problem,
    split_argv,
    token,
    usage_error,
)
from securekey.client._supervisor import FORWARDED, Supervisor, say
from securekey.client._watch import ConfigWatcher
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    SecureKeyError,
)

__all__ = ["run_main"]

#: How long the first fetch may take before run gives up.
FIRST_FETCH_TIMEOUT = 30


def _hint(exc: SecureKeyError, app: str, token_source: str) -> str:
    """The SDK's error for a failed first fetch, with the step that fixes it."""
    if isinstance(exc, AuthenticationError):
        return (
            f"{exc.message} The app token from {token_source} is unknown or was revoked: mint "
            f"one with `securekey tokens:create -a {app}` and pass it as SECUREKEY_TOKEN."
        )
    if isinstance(exc, ForbiddenError):
        return f"{exc.message} Use a token of {app}: `securekey tokens:create -a {app}` makes one."
    if isinstance(exc, NotFoundError):
        return f"{exc.message} List apps with `securekey apps` (operator token)."
    if isinstance(exc, ServerUnavailableError):
        return (
            f"{exc.message} Start it with `securekey server`, or point SECUREKEY_URL or --url "
            "at the right address."
        )
    return exc.message


def _parse(argv: list[str], err: TextIO) -> tuple[argparse.Namespace, list[str], str, str] | int:
    """(arguments, command, server URL, token), or the exit status of a usage error."""
    options, command = split_argv(argv)
    try:
        args = build_parser().parse_args(options)
    except SystemExit as exc:  # argparse has printed its one-line usage error
        return int(exc.code or 0)
    if command is None:
        command = list(args.command)
    elif args.command:
        fail("Put the whole command after --. See `securekey run --help`.", err)
        return 2
    url = args.url or os.environ.get("SECUREKEY_URL")
    key, token_problem = token(args)
    wrong = token_problem or problem(args, command, url, key)
    if wrong or not url or not key:
        usage_error(wrong or "bad arguments", err)
        return 2
    return args, command, url, key


def _log_to(err: TextIO) -> None:
    """Show the SDK's news (lost stream, reconnected) on ``err``, unless the host app logs it."""
    client_log = logging.getLogger("securekey.client")
    if not client_log.handlers:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        client_log.addHandler(handler)
        client_log.setLevel(logging.INFO)
        client_log.propagate = False


def _first_fetch(
    thread: LoopThread, watcher: ConfigWatcher, args: argparse.Namespace, err: TextIO
) -> ConfigSnapshot | None:
    """The app's config vars now, or None after saying why they could not be read."""
    try:
        return thread.submit(watcher.fetch()).result(FIRST_FETCH_TIMEOUT)
    except SecureKeyError as exc:
        fail(_hint(exc, args.app, "--token" if args.token else "SECUREKEY_TOKEN"), err)
    except TimeoutError:
        fail(
            f"The securekey server did not answer within {FIRST_FETCH_TIMEOUT} s. Check it is "
            "healthy (`securekey doctor`), then try again.",
            err,
        )
    return None


def _supervisor(
    args: argparse.Namespace, command: list[str], snapshot: ConfigSnapshot, key: str, err: TextIO
) -> Supervisor:
    """The supervisor the arguments ask for, starting from ``snapshot``."""
    return Supervisor(
        command,
        snapshot,
        # The command finds the file it should re-read (KeyRing.from_env_file) here.
        base_env=(
            {**os.environ, "SECUREKEY_ENV_FILE": os.path.abspath(args.env_file)}
            if args.env_file
            else os.environ
        ),
        grace=args.grace,
        splay=args.splay,
        restart=not args.no_restart,
        env_file=args.env_file,
        out=err,
        token=key if args.pass_token else None,
        max_restarts=args.max_restarts,
        min_uptime=args.min_uptime,
        max_backoff=args.max_backoff,
    )


def _supervise(
    supervisor: Supervisor, thread: LoopThread, watcher: ConfigWatcher, err: TextIO
) -> int:
    """Start the command, follow the app's releases, and return run's exit status."""
    task: asyncio.Task[None] | None = None
    previous: dict[int, Any] = {}
    try:
        env_file = supervisor.env_file
        if env_file:
            try:
                write_env_file(env_file, supervisor.snapshot.vars)
            except (OSError, SecureKeyError) as exc:
                say(f"cannot write {env_file}: {exc}", err)
                return 1
        # Handlers first: a signal arriving while the child starts must not kill run alone.
        if threading.current_thread() is threading.main_thread():
            for signum in FORWARDED:
                previous[signum] = signal.signal(signum, supervisor.on_signal)
        try:
            supervisor.spawn()
        except OSError as exc:
            say(f"cannot start {supervisor.command[0]}: {exc.strerror or exc}", err)
            return 127 if isinstance(exc, FileNotFoundError) else 126
        if supervisor.stopping:
            supervisor.send(supervisor.child, signal.SIGTERM)
        events = supervisor.events
        thread.loop.call_soon_threadsafe(
            watcher.add_listener, lambda snap: events.put(("release", snap))
        )
        task = thread.start(watcher.run())
        return supervisor.loop()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        thread.close(watcher.stop(task))


def run_main(argv: list[str], *, out: TextIO | None = None) -> int:
    """``securekey run`` with ``argv`` (without the program name); returns the exit status."""
    err = out or sys.stderr
    parsed = _parse(argv, err)
    if isinstance(parsed, int):
        return parsed
    args, command, url, key = parsed
    _log_to(err)
    try:
        watcher = ConfigWatcher(url, args.app, key, ca_bundle=args.ca_bundle)
    except SecureKeyError as exc:  # an unreadable CA bundle
        say(exc.message, err)
        return 2
    thread = LoopThread("securekey-run")
    snapshot = _first_fetch(thread, watcher, args, err)
    if snapshot is None:
        thread.close(watcher.aclose())
        return 1
    return _supervise(_supervisor(args, command, snapshot, key, err), thread, watcher, err)


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    sys.exit(run_main(sys.argv[1:]))
