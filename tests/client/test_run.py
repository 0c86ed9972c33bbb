"""``securekey run`` as a real process supervising a real child, against the fake on uvicorn."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from securekey.client import FakeSecureKeyServer, read_env_file
from securekey.client._run import run_main
from tests.client.conftest import Served, wait_until

CHILD = str(Path(__file__).with_name("child.py"))


@dataclass
class Run:
    """A running ``securekey run`` process and the files it and its children write."""

    process: subprocess.Popen[bytes]
    log: Path
    stderr: Path

    def lines(self) -> list[tuple[int, str]]:
        """The child log as (pid, what) pairs."""
        if not self.log.exists():
            return []
        out = []
        for line in self.log.read_text().splitlines():
            pid, _, what = line.partition(" ")
            out.append((int(pid), what))
        return out

    def starts(self) -> list[tuple[int, str]]:
        """(pid, SECURE_KEY) of every child start, in order."""
        return [(pid, what[6:]) for pid, what in self.lines() if what.startswith("START ")]

    def errors(self) -> str:
        """What run printed on stderr so far."""
        return self.stderr.read_text() if self.stderr.exists() else ""

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal run and wait for its exit status."""
        self.process.send_signal(signum)
        return self.process.wait(10)


@pytest.fixture
def start_run(tmp_path: Path, live: Served, fake: FakeSecureKeyServer) -> Iterator[object]:
    """Start ``securekey run`` (as ``python -m``) with extra options, the child and its mode."""
    runs: list[Run] = []

    def start(
        *options: str,
        mode: str = "normal",
        token: str | None = None,
        token_args: tuple[str, ...] | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
    ) -> Run:
        log = tmp_path / f"child-{len(runs)}.log"
        errors = tmp_path / f"run-{len(runs)}.err"
        given = ("--token", token or fake.token) if token_args is None else token_args
        argv = [
            sys.executable, "-m", "securekey.client._run",
            "-a", fake.app, "--url", live.url, *given,
            *options, "--", sys.executable, CHILD, str(log), mode,
        ]  # fmt: skip
        with errors.open("wb") as err:
            process = subprocess.Popen(
                argv,
                stderr=err,
                env=env,
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            )
            if stdin is not None:
                assert process.stdin is not None
                process.stdin.write(stdin)
                process.stdin.close()
        run = Run(process, log, errors)
        runs.append(run)
        return run

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(10)
        for pid, _ in run.lines():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_run_gives_the_command_its_vars_and_restarts_it_on_rotation(
    start_run: object, fake: FakeSecureKeyServer
) -> None:
    """The child starts with SECURE_KEY; a rotation restarts it (TERM) with the new pair."""
    run: Run = start_run()  # type: ignore[operator]
    wait_until(lambda: len(run.starts()) == 1, 15, "the first child")
    first_pid, first_key = run.starts()[0]
    assert first_key == fake.pair().value
    new = fake.rotate()
    wait_until(lambda: len(run.starts()) == 2, 15, "the restarted child")
    second_pid, second_key = run.starts()[1]
    assert second_key == new.value
    assert second_pid != first_pid
    assert (first_pid, "TERM") in run.lines()
    assert "release v2: restarting" in run.errors()
    assert run.stop() == 0
    assert (second_pid, "TERM") in run.lines()
    assert new.latest.hex not in run.errors()


def test_no_restart_rewrites_the_env_file_and_keeps_the_child(
    start_run: object, fake: FakeSecureKeyServer, tmp_path: Path
) -> None:
    """With --no-restart the child keeps running and the env file (0600) gets the new pair."""
    env_file = tmp_path / "app.env"
    run: Run = start_run("--no-restart", "--env-file", str(env_file))  # type: ignore[operator]
    wait_until(lambda: len(run.starts()) == 1, 15, "the child")
    assert read_env_file(env_file) == fake.config()
    new = fake.rotate()
    wait_until(lambda: read_env_file(env_file).get("SECURE_KEY") == new.value, 15, "the file")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert len(run.starts()) == 1
    assert run.stop() == 0


def test_signals_reach_the_command_and_its_status_is_run_s(start_run: object) -> None:
    """SIGHUP is passed on and the child lives; SIGINT is passed on and its exit code returns."""
    run: Run = start_run()  # type: ignore[operator]
    wait_until(lambda: len(run.starts()) == 1, 15, "the child")
    pid = run.starts()[0][0]
    run.process.send_signal(signal.SIGHUP)
    wait_until(lambda: (pid, "HUP") in run.lines(), 10, "the HUP")
    assert run.process.poll() is None
    assert run.stop(signal.SIGINT) == 7
    assert (pid, "INT") in run.lines()


def test_a_command_ignoring_sigterm_is_killed_after_the_grace(
    start_run: object, fake: FakeSecureKeyServer
) -> None:
    """On restart a child that ignores SIGTERM gets SIGKILL once --grace has passed."""
    run: Run = start_run("--grace", "0.3", mode="stubborn")  # type: ignore[operator]
    wait_until(lambda: len(run.starts()) == 1, 15, "the child")
    first = run.starts()[0][0]
    fake.rotate()
    wait_until(lambda: len(run.starts()) == 2, 15, "the replacement")
    assert (first, "TERM-ignored") in run.lines()
    assert "SIGKILL" in run.errors()
    assert run.stop(signal.SIGINT) == 7


def test_splay_delays_the_restart(start_run: object, fake: FakeSecureKeyServer) -> None:
    """--splay announces a random delay, then restarts."""
    run: Run = start_run("--splay", "0.3")  # type: ignore[operator]
    wait_until(lambda: len(run.starts()) == 1, 15, "the child")
    fake.rotate()
    wait_until(lambda: len(run.starts()) == 2, 15, "the restart")
    assert run.stop() == 0


def test_the_command_keeps_running_when_the_server_goes_away(
    start_run: object, fake: FakeSecureKeyServer, live: Served
) -> None:
    """Losing the server later is logged once; the child keeps its keys and keeps running."""
    run: Run = start_run()  # type: ignore[operator]
    wait_until(lambda: len(run.starts()) == 1, 15, "the child")
    pid = run.starts()[0][0]
    fake.shutdown()
    live.stop()
    wait_until(lambda: "Lost the config-var stream" in run.errors(), 15, "the warning")
    assert run.process.poll() is None
    os.kill(pid, 0)  # still alive
    assert run.stop() == 0
    assert run.starts() == [(pid, fake.pair().value)]


def test_exit_status_is_the_command_s(live: Served, fake: FakeSecureKeyServer) -> None:
    """With --max-restarts 0, run exits with the command's code, and 128+N for signal N."""
    base = [sys.executable, "-m", "securekey.client._run", "-a", fake.app, "--max-restarts", "0"]
    base += ["--url", live.url, "--token", fake.token, "--", sys.executable, "-c"]
    three = subprocess.run([*base, "raise SystemExit(3)"], timeout=30, check=False)
    assert three.returncode == 3
    killed = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    assert subprocess.run([*base, killed], timeout=30, check=False).returncode == 137


def test_an_unreachable_server_fails_at_once_in_one_line() -> None:
    """With nothing listening, run prints one line naming the host and exits non-zero."""
    argv = [sys.executable, "-m", "securekey.client._run", "-a", "service-1"]
    argv += ["--url", "http://127.0.0.1:9", "--token", "t", "--", "true"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "Cannot reach the securekey server at http://127.0.0.1:9" in done.stderr


def test_a_refused_token_fails_in_one_line(start_run: object) -> None:
    """A token the server does not know is reported in one line, and no child starts."""
    run: Run = start_run(token="wrong")  # type: ignore[operator]
    assert run.process.wait(30) == 1
    assert "refused the token" in run.errors()
    assert run.errors().count("\n") == 1
    assert run.lines() == []


def test_a_missing_command_is_status_127(live: Served, fake: FakeSecureKeyServer) -> None:
    """A command that does not exist is reported and run exits 127."""
    out = io.StringIO()
    argv = ["-a", fake.app, "--url", live.url, "--token", fake.token, "--", "/nonexistent/cmd"]
    assert run_main(argv, out=out) == 127
    assert "cannot start /nonexistent/cmd" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-a", "x", "--url", "u", "--token", "t"], "No command given"),
        (["-a", "x", "--token", "t", "--", "cmd"], "No server URL"),
        (["-a", "x", "--url", "u", "--", "cmd"], "No token"),
        (["-a", "x", "--url", "u", "--token", "t", "--no-restart", "--", "c"], "needs --env-file"),
        (["-a", "x", "--url", "u", "--token", "t", "--grace", "-1", "--", "c"], "negative"),
        (["-a", "x", "--url", "u", "--token", "t", "cmd", "--", "more"], "after --"),
    ],
)
def test_bad_arguments_are_status_2_with_a_reason(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Usage mistakes are caught before any network access, with exit status 2."""
    monkeypatch.delenv("SECUREKEY_URL", raising=False)
    monkeypatch.delenv("SECUREKEY_TOKEN", raising=False)
    out = io.StringIO()
    assert run_main(argv, out=out) == 2
    assert message in out.getvalue()


def test_url_and_token_default_from_the_environment(
    live: Served, fake: FakeSecureKeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SECUREKEY_URL and SECUREKEY_TOKEN stand in for --url and --token."""
    monkeypatch.setenv("SECUREKEY_URL", live.url)
    monkeypatch.setenv("SECUREKEY_TOKEN", fake.token)
    out = io.StringIO()
    assert run_main(["-a", fake.app, "--", sys.executable, "-c", "pass"], out=out) == 0


def _child_token(run: Run) -> str:
    """The SECUREKEY_TOKEN the first child saw ("-" when it had none)."""
    wait_until(lambda: any(w.startswith("TOKEN ") for _, w in run.lines()), 15, "the child")
    return next(w[6:] for _, w in run.lines() if w.startswith("TOKEN "))


def test_run_does_not_pass_the_token_to_the_command_unless_asked(
    start_run: object, fake: FakeSecureKeyServer
) -> None:
    """The token run used (from the env here) is kept from CMD; --pass-token hands it over."""
    env = {**os.environ, "SECUREKEY_TOKEN": fake.token}
    quiet: Run = start_run(token_args=(), env=env)  # type: ignore[operator]
    assert _child_token(quiet) == "-"
    assert quiet.stop() == 0
    passed: Run = start_run("--pass-token", token_args=(), env=env)  # type: ignore[operator]
    assert _child_token(passed) == fake.token
    assert passed.stop() == 0


def test_run_reads_the_token_from_a_file_or_stdin(
    start_run: object, fake: FakeSecureKeyServer, tmp_path: Path
) -> None:
    """--token-file PATH and --token - keep the token out of argv; a wrong file says so."""
    env = {k: v for k, v in os.environ.items() if k != "SECUREKEY_TOKEN"}
    token_file = tmp_path / "token"
    token_file.write_text(fake.token + "\n")
    from_file: Run = start_run(  # type: ignore[operator]
        "--pass-token", token_args=("--token-file", str(token_file)), env=env
    )
    assert _child_token(from_file) == fake.token
    assert fake.token not in " ".join(from_file.process.args)  # type: ignore[arg-type]
    assert from_file.stop() == 0
    from_stdin: Run = start_run(  # type: ignore[operator]
        token_args=("--token", "-"), env=env, stdin=fake.token.encode() + b"\n"
    )
    wait_until(lambda: len(from_stdin.starts()) == 1, 15, "the child")
    assert _child_token(from_stdin) == "-"
    assert from_stdin.stop() == 0
    missing: Run = start_run(  # type: ignore[operator]
        token_args=("--token-file", str(tmp_path / "nope")), env=env
    )
    assert missing.process.wait(15) == 2
    assert "Cannot read --token-file" in missing.errors()
