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
from securekey.client._watch import ConfigWatcher, _LoopThread, _stop_watching
from securekey.exceptions import SecureKeyError

__all__ = ["run_main"]

PROG = "securekey run"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_STOPPING = (signal.SIGTERM, signal.SIGINT)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run CMD with APP's config vars in its environment. On every new release, restart "
            "it (SIGTERM, --grace seconds, then SIGKILL), or with --no-restart only rewrite "
            "--env-file."
        ),
        epilog="example: securekey run -a service-2 -- gunicorn app:app",
    )
    parser.add_argument("-a", "--app", required=True, help="the app whose config vars to use")
    parser.add_argument("--token", help="an app token (default: $SECUREKEY_TOKEN)")
    parser.add_argument("--url", help="the securekey server (default: $SECUREKEY_URL)")
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
        max_restarts: int = 0,
        min_uptime: float = 10.0,
        max_backoff: float = 60.0,
    ) -> None:
        self.command = list(command)
        self.snapshot = snapshot
        self.base_env = dict(base_env)
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
        _say("put the whole command after --", err)
        return 2
    url = args.url or os.environ.get("SECUREKEY_URL")
    token = args.token or os.environ.get("SECUREKEY_TOKEN")
    problem = (
        "no command given (put it after --)"
        if not command
        else "no server URL: pass --url or set SECUREKEY_URL"
        if not url
        else "no token: pass --token or set SECUREKEY_TOKEN"
        if not token
        else "--no-restart needs --env-file"
        if args.no_restart and not args.env_file
        else "--grace, --splay, --max-restarts, --min-uptime and --max-backoff must not be negative"
        if min(args.grace, args.splay, args.max_restarts, args.min_uptime, args.max_backoff) < 0
        else None
    )
    if problem or not url or not token:
        _say(problem or "bad arguments", err)
        return 2

    client_log = logging.getLogger("securekey.client")
    if not client_log.handlers:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter(f"{PROG}: %(message)s"))
        client_log.addHandler(handler)
        client_log.setLevel(logging.INFO)
        client_log.propagate = False

    thread = _LoopThread("securekey-run")
    watcher = ConfigWatcher(url, args.app, token)
    try:
        snapshot = thread.submit(watcher.fetch()).result(30)
    except SecureKeyError as exc:
        _say(exc.message, err)
        _stop_quietly(thread, watcher)
        return 1
    except TimeoutError:
        _say("the securekey server did not answer within 30 s", err)
        _stop_quietly(thread, watcher)
        return 1

    supervisor = _Supervisor(
        command,
        snapshot,
        base_env=os.environ,
        grace=args.grace,
        splay=args.splay,
        restart=not args.no_restart,
        env_file=args.env_file,
        out=err,
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
