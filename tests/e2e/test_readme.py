"""README's quick start and walkthrough, run as written (issue 12, point 1).

The console blocks of README's "Quick start" and "The walkthrough" are read from the file:
``make run`` starts the server (on a free port, in a temporary data directory, both given as
``make`` variables as README says), every other ``$`` line runs in bash on a terminal from the
repository root, after the lines before it that change the shell (``. .venv/bin/activate``).
The lines README shows must appear in the output. Three things differ by nature and are
matched as patterns: the port, the made-up add-on name, and key material (masked keys,
fingerprints); the token placeholder ``sko_…`` is the token the server printed, as README says.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.pg import free_port
from tests.support import wait_ready

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DOC_PORT = "5000"
DOC_ADDON = "securekey-solid-14332"


@dataclass
class Step:
    """One ``$`` line of a console block and the lines README shows after it."""

    command: str
    shown: list[str]


def console_blocks(section: str) -> list[list[Step]]:
    """The ``console`` blocks under README's ``## section`` heading, as steps."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", body, re.DOTALL)
    assert blocks, f"no console block under {section}"
    out: list[list[Step]] = []
    for block in blocks:
        steps: list[Step] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                command = re.sub(r"\s+#.*$", "", line[2:]).strip()
                steps.append(Step(command, []))
            elif line.strip():
                steps[-1].shown.append(line)
        out.append(steps)
    return out


def pattern(line: str, port: str, addon: str | None) -> re.Pattern[str]:
    """A README line as a regex: the port, the add-on's name and key material may differ."""
    text = re.escape(line)
    text = text.replace(re.escape(f"127.0.0.1:{DOC_PORT}"), re.escape(f"127.0.0.1:{port}"))
    text = text.replace(re.escape(DOC_ADDON), re.escape(addon) if addon else r"[a-z0-9-]+")
    text = re.sub(r"[0-9A-F]{4}…[0-9A-F]{4}", "[0-9A-F]{4}…[0-9A-F]{4}", text)
    text = re.sub(r"\b[0-9a-f]{12}\b", "[0-9a-f]{12}", text)
    text = text.replace(re.escape("sko_…"), r"sko_\S+")
    return re.compile(text)


def on_terminal(script: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``bash -c script`` on a pseudo-terminal in the repository; status and transcript."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(
        ["bash", "-c", script],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        code = proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, ANSI.sub("", seen.decode("utf-8", "replace")).replace("\r\n", "\n")


@pytest.fixture
def shell_env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's environment: own HOME, no securekey settings, nothing on PATH from .venv."""
    if not (ROOT / ".venv" / "bin" / "activate").exists() or shutil.which("make") is None:
        if os.environ.get("CI"):
            pytest.fail("README's quick start needs make and the .venv made by `make install`")
        pytest.skip("make or .venv missing")
    venv_bin = str(ROOT / ".venv" / "bin")
    path = ":".join(p for p in os.environ.get("PATH", "").split(":") if p != venv_bin)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECUREKEY_", "XDG_", "VIRTUAL_ENV")) and k != "NO_COLOR"
    }
    env.update(HOME=str(tmp_path / "home"), PATH=path, TERM="xterm", PYTHONIOENCODING="utf-8")
    (tmp_path / "home").mkdir()
    return env


@pytest.fixture
def make_run(tmp_path: Path, shell_env: dict[str, str]) -> Iterator[tuple[str, str, Path]]:
    """README's ``make run``, with PORT and DATA_DIR given on the command line; (port, output)."""
    [first, _login] = console_blocks("Quick start")
    assert first[0].command == "make run"
    port = str(free_port())
    log = tmp_path / "make-run.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ["make", "run", f"PORT={port}", f"DATA_DIR={tmp_path / 'data'}"],
            cwd=ROOT,
            env=shell_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc, log.read_text)
        yield port, log.read_text(), log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_readme_quick_start_and_walkthrough_run_as_written(
    make_run: tuple[str, str, Path], shell_env: dict[str, str]
) -> None:
    """make run prints the login line README shows; README's commands then all succeed as shown."""
    port, output, _log = make_run
    [first, second] = console_blocks("Quick start")
    for line in first[0].shown:
        assert pattern(line.strip(), port, None).search(output), (line, output)
    printed = re.search(r"^\s*(securekey login --url \S+ --token (sko_\S+))$", output, re.M)
    assert printed is not None, output
    token = printed.group(2)
    prefix: list[str] = []
    addon: str | None = None
    walkthrough = console_blocks("The walkthrough")
    assert len(walkthrough) == 1
    for step in [*second, *walkthrough[0]]:
        command = step.command.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{port}")
        command = command.replace("sko_…", token)
        if addon:
            command = command.replace(DOC_ADDON, addon)
        if command.startswith((". ", "source ", "export ", "cd ")):
            prefix.append(command)
            continue
        code, transcript = on_terminal("; ".join([*prefix, command]), shell_env)
        assert code == 0, (step.command, transcript)
        made = re.search(r"^Created (\S+) as SECURE_KEY$", transcript, re.M)
        if made and addon is None:
            addon = made.group(1)
        lines = transcript.splitlines()
        for shown in step.shown:
            wanted = pattern(shown, port, addon)
            assert any(wanted.fullmatch(line) for line in lines), (step.command, shown, lines)
    assert addon is not None
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        apps = http.get("/apps", headers={"Authorization": f"Bearer {token}"}).json()
    assert sorted(a["name"] for a in apps) == ["service-1", "service-2"]
