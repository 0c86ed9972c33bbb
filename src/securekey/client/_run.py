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
import contextlib
import logging
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, TextIO

from securekey.client._api import ConfigSnapshot
from securekey.client._envfile import write_env_file
from securekey.client._errors import ServerUnavailableError
from securekey.client._watch import ConfigWatcher, _LoopThread, _stop_watching
from securekey.exceptions import (
    AuthenticationError,
    ForbiddenError,
    NotFoundError,
    SecureKeyError,
)

__all__ = ["run_main"]

PROG = "securekey run"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_STOPPING = (signal.SIGTERM, signal.SIGINT)
#: ``--token -``: read the token from stdin.
STDIN = "-"
TOKEN_VAR = "SECUREKEY_TOKEN"  # noqa: S105 - the variable's name, not a token


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line in the CLI's style, with the next step."""

    def error(self, message: str) -> Any:  # argparse's hook; never returns
        _fail(f"{message[:1].upper()}{message[1:]}. See `securekey run --help`.", sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=(
            "Run CMD with APP's config vars in its environment. On every new release, restart "
            "it (SIGTERM, --grace seconds, then SIGKILL), or with --no-restart only rewrite "
            "--env-file."
        ),
        epilog="example: securekey run -a service-2 -- gunicorn app:app",
    )
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


def _say(message: str, out: TextIO) -> None:
    print(f"{PROG}: {message}", file=out, flush=True)


def _fail(message: str, out: TextIO) -> None:
    """An error as every securekey command prints one: one line, what is wrong and what to do."""
    print(f" \u25b8    {message}", file=out, flush=True)


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


def _status(returncode: int) -> int:
    """A shell-style exit status: 128+N when the command died of signal N."""
    return 128 - returncode if returncode < 0 else returncode


class _Supervisor:
    """Keeps one child running with the newest config vars; all decisions on one thread."""

    def __init__(
        self,
        command: Sequence[str],
        snapshot: ConfigSnapshot,
        *,
        base_env: Mapping[str, str],
        grace: float,
        splay: float,
        restart: bool,
        env_file: str | None,
        out: TextIO,
        token: str | None = None,
        max_restarts: int = 0,
        min_uptime: float = 10.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.command = list(command)
        self.snapshot = snapshot
        # The child gets the token only when asked (--pass-token): a child that needs no
        # token cannot leak it, e.g. through an error page that dumps its environment.
        self.base_env = {k: v for k, v in base_env.items() if k != TOKEN_VAR}
        if token is not None:
            self.base_env[TOKEN_VAR] = token
        self.grace, self.splay, self.restart, self.env_file = grace, splay, restart, env_file
        self.out = out
        self.max_restarts, self.min_uptime, self.max_backoff = max_restarts, min_uptime, max_backoff
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.child: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.failures = 0  # failed starts in a row, each shorter than min_uptime
        self.stopping = False

    # -- children -------------------------------------------------------------------------

    def spawn(self) -> None:
        env = {**self.base_env, **self.snapshot.vars}
        child = subprocess.Popen(self.command, env=env, process_group=0)
        self.child = child
        self.started = time.monotonic()

        def wait() -> None:
            self.events.put(("exit", (child, child.wait())))

        threading.Thread(target=wait, name=f"securekey-run-wait-{child.pid}", daemon=True).start()

    @staticmethod
    def send(child: subprocess.Popen[bytes] | None, signum: int) -> None:
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between bytecodes of the main thread: set a flag and signal, nothing else.
        if signum in _STOPPING:
            self.stopping = True
        self.send(self.child, signum)

    # -- releases -------------------------------------------------------------------------

    def on_release(self, snapshot: ConfigSnapshot) -> bool:
        """Take a newer snapshot in; True if the child needs restarting for it."""
        if snapshot.release <= self.snapshot.release:
            return False
        old = self.snapshot.vars
        changed = sorted(
            n for n in set(old) | set(snapshot.vars) if old.get(n) != snapshot.vars.get(n)
        )
        self.snapshot = snapshot
        names = ", ".join(changed) or "nothing"
        if self.env_file:
            try:
                write_env_file(self.env_file, snapshot.vars)
            except (OSError, SecureKeyError) as exc:
                _say(f"release v{snapshot.release}: could not write the env file ({exc})", self.out)
            else:
                _say(f"release v{snapshot.release}: wrote {self.env_file} ({names})", self.out)
        return self.restart and bool(changed)

    def wait_exit(self, child: subprocess.Popen[bytes], timeout: float) -> int | None:
        """Wait for ``child`` to exit, still taking releases in; its returncode or None."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                kind, payload = self.events.get(timeout=remaining)
            except queue.Empty:
                return None
            if kind == "exit" and payload[0] is child:
                return int(payload[1])
            if kind == "release":
                self.on_release(payload)
        return None

    def do_restart(self) -> int | None:
        """Stop the child (TERM, grace, KILL) and start it again; a status if we must exit."""
        old = self.child
        assert old is not None
        _say(f"release v{self.snapshot.release}: restarting (stopping pid {old.pid})", self.out)
        self.send(old, signal.SIGTERM)
        code = self.wait_exit(old, self.grace)
        if code is None:
            _say(f"pid {old.pid} still running after {self.grace:g} s: SIGKILL", self.out)
            self.send(old, signal.SIGKILL)
            code = self.wait_exit(old, 30.0)
        if self.stopping:
            return _status(code if code is not None else -signal.SIGKILL)
        try:
            self.spawn()
        except OSError as exc:
            _say(f"cannot start {self.command[0]}: {exc.strerror or exc}", self.out)
            return 127
        assert self.child is not None
        _say(f"started pid {self.child.pid}", self.out)
        return None

    def backoff(self, child: subprocess.Popen[bytes], code: int) -> float | None:
        """Seconds to wait before starting the command again after it exited, or None to exit.

        A command that exits 0, or while run is stopping, is not restarted. A failing one is,
        after 1, 2, 4 ... seconds (at most ``max_backoff``), so a command that dies on start
        never spins; ``max_restarts`` failures in a row, each within ``min_uptime`` of its
        start, and run gives up. A start that lasted ``min_uptime`` resets the count.
        """
        if code == 0 or self.stopping or self.max_restarts == 0:
            return None
        uptime = time.monotonic() - self.started
        if uptime >= self.min_uptime:
            self.failures = 0
        self.failures += 1
        how = (
            f"exited with status {code}"
            if code > 0
            else f"was killed by {signal.Signals(-code).name}"
            if -code in signal.valid_signals()
            else f"was killed by signal {-code}"
        )
        said = f"pid {child.pid} {how} after {uptime:.1f} s"
        if self.failures > self.max_restarts:
            _say(
                f"{said}; giving up: it failed {self.failures} times in a row, each within "
                f"{self.min_uptime:g} s of starting (--max-restarts {self.max_restarts})",
                self.out,
            )
            return None
        delay = min(self.max_backoff, 2.0 ** (self.failures - 1))
        _say(
            f"{said}; restarting in {delay:g} s (restart {self.failures} of {self.max_restarts})",
            self.out,
        )
        return delay

    def loop(self) -> int:
        restart_at: float | None = None  # a restart for a new release, after the splay
        respawn_at: float | None = None  # a start after the command failed, after the back-off
        last = 0
        while True:
            due = [t - time.monotonic() for t in (restart_at, respawn_at) if t is not None]
            try:
                kind, payload = self.events.get(timeout=max(0.0, min([0.5, *due])))
            except queue.Empty:
                kind, payload = "", None
            if kind == "exit" and self.child is not None and payload[0] is self.child:
                last = _status(int(payload[1]))
                delay = self.backoff(self.child, int(payload[1]))
                if delay is None:
                    return last
                restart_at, respawn_at = None, time.monotonic() + delay
            # A release during a back-off only updates the snapshot the next start will use.
            if (
                kind == "release"
                and self.on_release(payload)
                and (restart_at, respawn_at) == (None, None)
            ):
                delay = random.uniform(0.0, self.splay) if self.splay > 0 else 0.0  # noqa: S311 - spreading restarts, not a secret
                if delay:
                    _say(f"release v{payload.release}: restarting in {delay:.1f} s", self.out)
                restart_at = time.monotonic() + delay
            if respawn_at is not None:
                if self.stopping:
                    _say("stopped while waiting to restart the command", self.out)
                    return last
                if time.monotonic() >= respawn_at:
                    respawn_at = None
                    try:
                        self.spawn()
                    except OSError as exc:
                        _say(f"cannot start {self.command[0]}: {exc.strerror or exc}", self.out)
                        return 127
                    assert self.child is not None
                    _say(
                        f"started pid {self.child.pid} (release v{self.snapshot.release})", self.out
                    )
            if restart_at is not None and time.monotonic() >= restart_at and not self.stopping:
                restart_at = None
                status = self.do_restart()
                if status is not None:
                    return status


def _stop_quietly(thread: _LoopThread, watcher: ConfigWatcher) -> None:
    with contextlib.suppress(Exception):
        thread.submit(watcher.aclose()).result(5)
    thread.stop()


def _split(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
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


def _token(args: argparse.Namespace) -> tuple[str | None, str | None]:
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


def run_main(argv: list[str], *, out: TextIO | None = None) -> int:
    """``securekey run`` with ``argv`` (without the program name); returns the exit status."""
    err = out or sys.stderr
    parser = _parser()
    options, command = _split(argv)
    try:
        args = parser.parse_args(options)
    except SystemExit as exc:  # argparse has printed its one-line usage error
        return int(exc.code or 0)
    if command is None:
        command = list(args.command)
    elif args.command:
        _fail("Put the whole command after --. See `securekey run --help`.", err)
        return 2
    url = args.url or os.environ.get("SECUREKEY_URL")
    token, token_problem = _token(args)
    problem = (
        token_problem
        if token_problem
        else "no command given (put it after --)"
        if not command
        else "no server URL: pass --url or set SECUREKEY_URL"
        if not url
        else "no token: set SECUREKEY_TOKEN, or pass --token-file PATH or --token -"
        if not token
        else "--no-restart needs --env-file"
        if args.no_restart and not args.env_file
        else "--grace, --splay, --max-restarts, --min-uptime and --max-backoff must not be negative"
        if min(args.grace, args.splay, args.max_restarts, args.min_uptime, args.max_backoff) < 0
        else None
    )
    if problem or not url or not token:
        text = problem or "bad arguments"
        _fail(f"{text[:1].upper()}{text[1:]}. See `securekey run --help`.", err)
        return 2

    client_log = logging.getLogger("securekey.client")
    if not client_log.handlers:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        client_log.addHandler(handler)
        client_log.setLevel(logging.INFO)
        client_log.propagate = False

    try:
        watcher = ConfigWatcher(url, args.app, token, ca_bundle=args.ca_bundle)
    except SecureKeyError as exc:  # an unreadable CA bundle
        _say(exc.message, err)
        return 2
    thread = _LoopThread("securekey-run")
    try:
        snapshot = thread.submit(watcher.fetch()).result(30)
    except SecureKeyError as exc:
        _fail(_hint(exc, args.app, "--token" if args.token else "SECUREKEY_TOKEN"), err)
        _stop_quietly(thread, watcher)
        return 1
    except TimeoutError:
        _fail(
            "The securekey server did not answer within 30 s. Check it is healthy "
            "(`securekey doctor`), then try again.",
            err,
        )
        _stop_quietly(thread, watcher)
        return 1

    supervisor = _Supervisor(
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
        token=token if args.pass_token else None,
        max_restarts=args.max_restarts,
        min_uptime=args.min_uptime,
        max_backoff=args.max_backoff,
    )
    task: asyncio.Task[None] | None = None
    previous: dict[int, Any] = {}
    try:
        if args.env_file:
            try:
                write_env_file(args.env_file, snapshot.vars)
            except (OSError, SecureKeyError) as exc:
                _say(f"cannot write {args.env_file}: {exc}", err)
                return 1
        # Handlers first: a signal arriving while the child starts must not kill run alone.
        if threading.current_thread() is threading.main_thread():
            for signum in FORWARDED:
                previous[signum] = signal.signal(signum, supervisor.on_signal)
        try:
            supervisor.spawn()
        except OSError as exc:
            _say(f"cannot start {command[0]}: {exc.strerror or exc}", err)
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
        for number, handler_ in previous.items():
            signal.signal(number, handler_)
        with contextlib.suppress(Exception):
            thread.submit(_stop_watching(task, watcher)).result(5)
        thread.stop()


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess tests
    sys.exit(run_main(sys.argv[1:]))
