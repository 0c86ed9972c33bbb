"""Every code block of docs/sdk.md and README.md runs, or is listed here as illustrative with
its reason (issue 12, point 3), so the documentation cannot drift from the code again.

Python blocks run as scripts against a real server holding the seed's state, with the
variables docs/sdk.md names: ``SECUREKEY_URL``, ``SECUREKEY_TOKEN``, ``SERVICE_ONE_URL`` (the
example service-1, running) and the config vars a process started by ``securekey run`` has.
The ``securekey run --no-restart --env-file`` block runs literally, and the Python block that
follows it runs as its command (it reads ``SECUREKEY_ENV_FILE``). ``sh`` blocks run in bash
with the documented port and token replaced by the test server's, and the program after
``--`` (the reader's own: gunicorn, uvicorn) replaced by one that checks its environment.
``json`` blocks must parse. README's console blocks run in ``tests/e2e/test_readme.py``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "two_services"
FILES = ("docs/sdk.md", "README.md")
_FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: Blocks that do not run, by (file, first line), each with the reason. Keep this short.
ILLUSTRATIVE: dict[tuple[str, str], str] = {
    # docs/sdk.md "On the wire": HTTP header and canonical-string formats, not programs; the
    # values shown are asserted by the sign_request block that follows them.
    (
        "docs/sdk.md",
        "Authorization: Bearer 3F6D463C2A79289DC5B3C13A4EB2736B0D51A80234CAEAF0EA12D15F12E9FDEE",
    ): "wire format",
    ("docs/sdk.md", "HTTP/1.1 200 OK"): "wire format",
    ("docs/sdk.md", "HTTP/1.1 401 Unauthorized"): "wire format",
    (
        "docs/sdk.md",
        "Handed LATEST fc4704b78708 over to 10.0.3.7, which presented PREVIOUS 04b87c368a9a, 12 s after the pair changed (key handover #3). If no service of yours is that caller, PREVIOUS has leaked: rotate with --emergency.",  # noqa: E501
    ): "a log line; tests/client asserts the handover log",
    (
        "docs/sdk.md",
        "import redis  # not a securekey dependency: any client with set(name, value, nx=, px=) works",  # noqa: E501
    ): "needs a Redis server; KeyValueReplayCache runs against an in-memory client in tests/client",
    (
        "docs/sdk.md",
        "Securekey-Signature: keyid=<12 hex>,ts=<Unix seconds>,nonce=<16 to 64 hex>,sig=<64 hex>",
    ): "wire format",
    ("docs/sdk.md", "securekey-v2"): "checked against the sign_request block's output below",
    (
        "docs/sdk.md",
        "Securekey-Signature: keyid=04b87c368a9a,ts=1764460800,nonce=9f86d081884c7d659a2feaa0c55ad015,sig=c4075456e39c2a752fded313e57f19b9e1c825d1750fad5170da6e0a039bd037",  # noqa: E501
    ): "asserted by the sign_request block",
    # README's Python blocks are one-screen summaries of docs/sdk.md's runnable blocks (which
    # run here in full); they name the reader's objects (URL, APP_TOKEN, app, wsgi_app).
    ("README.md", "from securekey.client import KeyRing, WatchedKeyRing"): "summary of sdk.md",
    ("README.md", "import httpx, requests"): "summary of sdk.md",
    (
        "README.md",
        "from securekey.client import HandoverStats, KeyValueReplayCache, SecureKeyMiddleware, SecureKeyWSGIMiddleware",  # noqa: E501
    ): "summary of sdk.md",
    ("README.md", "import os"): "summary of sdk.md (Django)",
    ("README.md", "from itsdangerous import URLSafeSerializer"): "summary of sdk.md (Flask)",
    (
        "README.md",
        "from securekey.client import FakeSecureKeyServer, StaticKeyRing, WatchedKeyRing",
    ): "summary of sdk.md",
    # README sh blocks: a synopsis with [optional] flags, the Heroku CLI (run for real by
    # tests/e2e/test_heroku_cli.py), the Makefile targets (CI runs them), and run's summary.
    (
        "README.md",
        "securekey server [--host 127.0.0.1] [--port 5000] [--data-dir ./data] [--database-url URL] \\",  # noqa: E501
    ): "synopsis",
    ("README.md", "npm install heroku"): "tests/e2e/test_heroku_cli.py",
    (
        "README.md",
        "make install     # .venv with the package in editable mode and the dev tools",
    ): "CI runs the targets",
    (
        "README.md",
        "export SECUREKEY_URL=http://127.0.0.1:5000 SECUREKEY_TOKEN=<app token>",
    ): "summary of sdk.md's run blocks",
}


@dataclass
class Block:
    """One fenced block: its file, language, text and position."""

    file: str
    lang: str
    text: str
    index: int

    @property
    def first(self) -> str:
        """Its first line, which names it in ILLUSTRATIVE."""
        return self.text.splitlines()[0] if self.text else ""

    def __str__(self) -> str:
        return f"{self.file} block {self.index} ({self.lang or 'plain'}): {self.first[:60]}"


def blocks() -> list[Block]:
    """Every fenced block of the checked files, in order."""
    out = []
    for name in FILES:
        text = (ROOT / name).read_text()
        for i, found in enumerate(_FENCE.finditer(text)):
            out.append(Block(name, found.group(1), found.group(2), i))
    return out


@dataclass
class World:
    """The running server and service-1, and the environment the snippets read."""

    server: Server
    env: dict[str, str]
    tokens: dict[str, str]


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A server with the seed's state and service-1 (examples/two_services) in front of it."""
    from tests.e2e.test_two_services import Proc, _env, _uvicorn
    from tests.pg import free_port

    base = tmp_path_factory.mktemp("snippets")
    with running_server(base / "data") as server, server.client() as http:
        for name in ("service-1", "service-2"):
            assert http.post("/apps", json={"name": name}).status_code == 201
        addon = http.post("/apps/service-1/addons", json={"plan": "securekey:fortnightly"})
        attached = http.post(
            "/addon-attachments",
            json={"addon": addon.json()["name"], "app": "service-2", "name": "SERVICE_ONE_SECURE"},
        )
        assert attached.status_code == 201, attached.text
        tokens = {
            app: http.post(f"/apps/{app}/tokens", json={}).json()["token"]
            for app in ("service-1", "service-2")
        }
        token_one = tokens["service-1"]
        port = free_port()
        log = base / "service-one.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                _uvicorn("service_one", "--host", "127.0.0.1", "--port", str(port)),
                env=_env(SECUREKEY_URL=server.url, SECUREKEY_TOKEN=token_one),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        service_one = Proc("service-1", f"http://127.0.0.1:{port}", process, log)
        try:
            service_one.wait_ready()
            env = {k: v for k, v in os.environ.items() if not k.startswith("SECUREKEY_")}
            env.update(
                SECUREKEY_URL=server.url,
                # One operator token reads both apps' vars (the snippets use service-1 and -2).
                SECUREKEY_TOKEN=server.token,
                SERVICE_ONE_URL=service_one.url,
                SECURE_KEY=http.get("/apps/service-1/config-vars").json()["SECURE_KEY"],
                SERVICE_ONE_SECURE_KEY=http.get("/apps/service-2/config-vars").json()[
                    "SERVICE_ONE_SECURE_KEY"
                ],
                PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            )
            yield World(server, env, tokens)
        finally:
            process.terminate()
            process.wait(15)


def test_every_block_runs_or_is_listed() -> None:
    """Each block is python, sh or json (all run below), or listed as illustrative."""
    found = blocks()
    assert len(found) > 20
    keys = {(b.file, b.first) for b in found}
    stale = [k for k in ILLUSTRATIVE if k not in keys]
    assert not stale, f"ILLUSTRATIVE names blocks that no longer exist: {stale}"
    for block in found:
        if (block.file, block.first) in ILLUSTRATIVE:
            continue
        assert block.lang in ("python", "sh", "json", "console"), f"unrun block: {block}"


def _runnable(lang: str) -> list[Block]:
    return [
        b
        for b in blocks()
        if b.lang == lang and (b.file, b.first) not in ILLUSTRATIVE and b.file != "README.md"
    ]


def test_json_blocks_parse() -> None:
    """Every json block is valid JSON."""
    for block in _runnable("json"):
        json.loads(block.text)


def test_python_blocks_run(world: World, tmp_path: Path) -> None:
    """Every Python block of docs/sdk.md exits 0 against the real server and service-1."""
    python = _runnable("python")
    assert len(python) >= 12
    failures = []
    for block in python:
        if "SECUREKEY_ENV_FILE" in block.text:
            continue  # runs under `securekey run` in test_run_blocks_run
        done = _python(block.text, world.env, tmp_path)
        if done.returncode != 0:
            failures.append(f"{block}\n{done.stderr[-2000:]}")
    assert not failures, "\n\n".join(failures)


def test_the_signing_example_prints_the_documented_canonical_string(
    world: World, tmp_path: Path
) -> None:
    """The canonical string docs/sdk.md shows is what its sign_request block prints."""
    found = blocks()
    shown = next(b for b in found if b.first == "securekey-v2").text.strip()
    code = next(b for b in found if "canonical_request(" in b.text and b.lang == "python").text
    done = _python(code, world.env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == shown


def test_run_blocks_run(world: World, tmp_path: Path) -> None:
    """docs/sdk.md's `securekey run` lines work; --env-file hands the path to the command."""
    sh = _runnable("sh")
    assert len(sh) == 2
    reader = next(b for b in _runnable("python") if "SECUREKEY_ENV_FILE" in b.text)
    for block in sh:
        line = " ".join(part.strip() for part in block.text.replace("\\\n", " ").splitlines())
        line = line.replace("http://127.0.0.1:5000", world.server.url)
        app = re.search(r" -a (\S+)", line)
        assert app is not None, line
        token = world.tokens[app.group(1)]
        line = line.replace("ska_…", token)
        line = line.replace("/run/service-1.env", str(tmp_path / "service-1.env"))
        head, _, _program = line.partition(" -- ")
        if "--env-file" in head:
            program = f"python -c {shlex.quote(reader.text)}"
        else:
            program = "python -c " + shlex.quote(
                "import os; assert len(os.environ['SERVICE_ONE_SECURE_KEY']) == 129"
            )
        env = {k: v for k, v in world.env.items() if k not in ("SECURE_KEY",)}
        env["SECUREKEY_TOKEN"] = token  # an app token, as docs/sdk.md says
        done = subprocess.run(
            ["bash", "-c", f"{head} -- {program}"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert done.returncode == 0, (line, done.stderr)
        if "--env-file" in head:
            assert re.fullmatch(r"LATEST [0-9a-f]{12}\n", done.stdout), done.stdout


def _doc_commands() -> dict[str, set[str]]:
    """Each ``$ securekey CMD …`` of docs/cli.md and README: the command and its flags."""
    found: dict[str, set[str]] = {}
    for name in ("docs/cli.md", "README.md"):
        for line in (ROOT / name).read_text().splitlines():
            said = re.match(r"^\$ (?:[A-Z_]+=\S+ )*(securekey .*)$", line)
            if said is None:
                continue
            words = said.group(1).split("#", 1)[0].split("|", 1)[0].split()
            words = words[: words.index("--")] if "--" in words else words
            command = words[1] if len(words) > 1 and not words[1].startswith("-") else ""
            if not command or not re.fullmatch(r"[a-z]+(:[a-z]+)?", command):
                command = ""  # root flags only: securekey --version
            flags = {
                w.split("=")[0] for w in words[1:] if re.fullmatch(r"--?[a-z][a-z-]*(=.*)?", w)
            }
            found.setdefault(command, set()).update(flags)
    return found


def test_documented_commands_and_flags_exist() -> None:
    """Every command and flag a ``$ securekey …`` line of docs/cli.md or README uses exists."""
    from concurrent.futures import ThreadPoolExecutor

    wanted = _doc_commands()
    assert {"apps:create", "addons:create", "config", "audit", "doctor", "run"} <= set(wanted)

    def helps(command: str) -> str:
        args = [command, "--help"] if command else ["--help"]
        done = subprocess.run(
            [sys.executable, "-m", "securekey", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr)
        return done.stdout

    with ThreadPoolExecutor(max_workers=4) as pool:
        texts = dict(zip(wanted, pool.map(helps, wanted), strict=True))
    missing = [
        f"securekey {command} {flag}"
        for command, flags in wanted.items()
        for flag in sorted(flags)
        if not re.search(rf"(^|[\s,]){re.escape(flag)}([\s,=]|$)", texts[command], re.M)
    ]
    assert not missing, missing
