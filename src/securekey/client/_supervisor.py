"""``securekey run``'s supervisor: keeps one child running with the newest config vars.

Every decision (restart on a release, back off after a failure, stop) is taken on one thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import random
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any, TextIO

from securekey.client._api import ConfigSnapshot
from securekey.client._envfile import write_env_file
from securekey.client._run_args import PROG, TOKEN_VAR
from securekey.exceptions import SecureKeyError

__all__ = ["FORWARDED", "Supervisor", "exit_status", "say"]

#: The signals run passes on to the command's process group.
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOPPING = (signal.SIGTERM, signal.SIGINT)


def say(message: str, out: TextIO) -> None:
    """One line of run's own news, prefixed with its name."""
    print(f"{PROG}: {message}", file=out, flush=True)


def exit_status(returncode: int) -> int:
    """A shell-style exit status: 128+N when the command died of signal N."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
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
        """Start the command with the newest config vars; a thread reports its exit."""
        env = {**self.base_env, **self.snapshot.vars}
        child = subprocess.Popen(self.command, env=env, process_group=0)
        self.child = child
        self.started = time.monotonic()

        def wait() -> None:
            self.events.put(("exit", (child, child.wait())))

        threading.Thread(target=wait, name=f"securekey-run-wait-{child.pid}", daemon=True).start()

    @staticmethod
    def send(child: subprocess.Popen[bytes] | None, signum: int) -> None:
        """Signal ``child``'s whole process group, if it still runs."""
        if child is None or child.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The handler of the signals run forwards to the command."""
        # Runs between bytecodes of the main thread: set a flag and signal, nothing else.
        if signum in STOPPING:
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
                say(f"release v{snapshot.release}: could not write the env file ({exc})", self.out)
            else:
                say(f"release v{snapshot.release}: wrote {self.env_file} ({names})", self.out)
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
        say(f"release v{self.snapshot.release}: restarting (stopping pid {old.pid})", self.out)
        self.send(old, signal.SIGTERM)
        code = self.wait_exit(old, self.grace)
        if code is None:
            say(f"pid {old.pid} still running after {self.grace:g} s: SIGKILL", self.out)
            self.send(old, signal.SIGKILL)
            code = self.wait_exit(old, 30.0)
        if self.stopping:
            return exit_status(code if code is not None else -signal.SIGKILL)
        return self.start_again()

    def start_again(self, note: str = "") -> int | None:
        """Start the command again; 127 (for run to exit with) if it cannot be started."""
        try:
            self.spawn()
        except OSError as exc:
            say(f"cannot start {self.command[0]}: {exc.strerror or exc}", self.out)
            return 127
        assert self.child is not None
        say(f"started pid {self.child.pid}{note}", self.out)
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
            say(
                f"{said}; giving up: it failed {self.failures} times in a row, each within "
                f"{self.min_uptime:g} s of starting (--max-restarts {self.max_restarts})",
                self.out,
            )
            return None
        delay = min(self.max_backoff, 2.0 ** (self.failures - 1))
        say(
            f"{said}; restarting in {delay:g} s (restart {self.failures} of {self.max_restarts})",
            self.out,
        )
        return delay

    def loop(self) -> int:
        """Take exits and releases in until run must end; returns run's exit status."""
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
                last = exit_status(int(payload[1]))
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
                    say(f"release v{payload.release}: restarting in {delay:.1f} s", self.out)
                restart_at = time.monotonic() + delay
            if respawn_at is not None:
                if self.stopping:
                    say("stopped while waiting to restart the command", self.out)
                    return last
                if time.monotonic() >= respawn_at:
                    respawn_at = None
                    status = self.start_again(f" (release v{self.snapshot.release})")
                    if status is not None:
                        return status
            if restart_at is not None and time.monotonic() >= restart_at and not self.stopping:
                restart_at = None
                status = self.do_restart()
                if status is not None:
                    return status
