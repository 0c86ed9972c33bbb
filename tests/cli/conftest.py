"""Run the ``securekey`` CLI as a subprocess against a real server: pipes, or a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.servers import Server, running_server

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """Text without terminal colour codes."""
    return ANSI.sub("", text)


@dataclass
class Result:
    """One CLI run: exit status, and what it printed on each stream."""

    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """Stdout's lines."""
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        """Stderr's lines."""
        return self.err.splitlines()


class Cli:
    """Runs ``python -m securekey ARGS`` with a private HOME and, by default, a server's creds."""

    def __init__(
        self, home: Path, server: Server | None = None, command: Sequence[str] | None = None
    ) -> None:
        self.home = home
        self.server = server
        #: What runs (``python -m securekey`` unless told otherwise); ARGS are appended.
        self.command = list(command or [sys.executable, "-m", "securekey"])

    def env(self, **overrides: str | None) -> dict[str, str]:
        """A clean environment: no inherited SECUREKEY_* or NO_COLOR, 80 columns."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SECUREKEY_", "XDG_")) and k not in ("NO_COLOR", "FORCE_COLOR")
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / "config"),
            COLUMNS="80",
            PYTHONIOENCODING="utf-8",
        )
        if self.server is not None:
            env.update(SECUREKEY_URL=self.server.url, SECUREKEY_TOKEN=self.server.token)
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def __call__(
        self,
        *args: str,
        stdin: str = "",
        merge: bool = False,
        env: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Result:
        """Run with pipes (stdin is not a terminal); ``merge`` sends stderr into stdout."""
        done = subprocess.run(
            [*self.command, *args],
            input=stdin,
            capture_output=not merge,
            stdout=subprocess.PIPE if merge else None,
            stderr=subprocess.STDOUT if merge else None,
            text=True,
            env=env or self.env(),
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr or "")

    def many(self, runs: Sequence[Sequence[str]]) -> list[Result]:
        """Several independent runs at once (each its own process), results in order."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self(*args), runs))

    def pty(
        self,
        *args: str,
        answers: list[tuple[str, str]] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> Result:
        """Run on a pseudo-terminal; type each answer once its prompt text has appeared.

        The transcript (both streams and the terminal's echo of what was typed) is ``out``.
        """
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        proc = subprocess.Popen(
            [*self.command, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env or self.env(),
            start_new_session=True,
        )
        os.close(slave)
        pending = list(answers or [])
        seen = b""
        searched = 0
        deadline = time.monotonic() + timeout
        try:
            while True:
                if time.monotonic() > deadline:
                    raise AssertionError(f"CLI still running after {timeout} s:\n{seen.decode()}")
                ready, _, _ = select.select([master], [], [], 0.1)
                if not ready:
                    continue
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
                if pending and pending[0][0].encode() in seen[searched:]:
                    searched = len(seen)
                    os.write(master, pending.pop(0)[1].encode() + b"\n")
            code = proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        text = seen.decode("utf-8", errors="replace").replace("\r\n", "\n")
        return Result(code, text, "")


def one_clear_line(result: Result, *words: str) -> None:
    """A failed run: exit status 1, one error line with ``words`` on stderr, no traceback.

    A progress line cut short (``Creating ⬢ x... !``) may come before it, as in Heroku's CLI.
    """
    assert result.code == 1, result
    assert "Traceback" not in result.err
    errors = [line for line in result.err_lines if line.startswith(" ▸    ")]
    assert len(errors) == 1, result.err_lines
    others = [line for line in result.err_lines if line not in errors]
    assert all(line.endswith("... !") for line in others), result.err_lines
    for word in words:
        assert word in errors[0], errors[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server for the module's tests (webhooks may target 127.0.0.1 receivers)."""
    with running_server(
        tmp_path_factory.mktemp("server") / "data",
        extra_env={"SECUREKEY_ALLOW_PRIVATE_WEBHOOKS": "1"},
    ) as running:
        yield running


@pytest.fixture
def cli(server: Server, tmp_path: Path) -> Cli:
    """The CLI pointed at the module's server through SECUREKEY_URL and SECUREKEY_TOKEN."""
    return Cli(tmp_path, server)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """Operator API access for setting the scene quickly (the CLI is what is under test)."""
    with server.client() as client:
        yield client


def make_app(http: httpx.Client, name: str, plan: str | None = None, **body: object) -> str:
    """Create app ``name`` over the API, with an add-on of ``plan``; the add-on's name or ''."""
    assert http.post("/apps", json={"name": name}).status_code == 201
    if plan is None:
        return ""
    created = http.post(f"/apps/{name}/addons", json={"plan": {"name": plan}, **body})
    assert created.status_code == 201, created.text
    return str(created.json()["name"])


def fails(cli: Cli, *cases: tuple[Sequence[str], Sequence[str]]) -> None:
    """Run each (args, words) at once; each must fail with one clear line holding its words."""
    results = cli.many([args for args, _ in cases])
    for (args, words), result in zip(cases, results, strict=True):
        try:
            one_clear_line(result, *words)
        except AssertionError as error:
            raise AssertionError(f"securekey {' '.join(args)}: {error}") from None


@pytest.fixture
def bare_cli(tmp_path: Path) -> Cli:
    """The CLI with no server or token configured."""
    return Cli(tmp_path)
