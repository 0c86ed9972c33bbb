"""Every transcript of docs/cli.md runs against a real server (issue 12, point 3).

Each fenced block of docs/cli.md is a list of ``$ securekey …`` commands, each followed by the
lines it prints. The test runs the commands in order in bash (stdout and stderr together, as a
terminal shows them; a command whose transcript has a ``> answer`` line runs on a
pseudo-terminal and types the answer, as does one whose comment says "on a terminal"), on a
fresh server per block holding the state the block assumes, made over the API first. Printed
lines must equal the documented ones except for placeholders that differ by nature: made-up
add-on names and UUIDs (the first one seen is bound to the documented one and substituted in
later commands), key material, fingerprints, times and dates, the port, the home directory
(``/home/you``), tokens (``sko_…``, ``ska_…``), a hex secret shown as ``0f4e…``, and the
spacing of table columns (their width follows the made-up names). A line ``…`` stands for any
lines. ``# comment`` after a command or a shown line is the reader's note and is dropped. A
command with no lines shown must succeed; what it prints is not checked. Commands that cannot
run here are listed in ``SKIPPED`` with their reason, and a block without a scene here fails
the test.
"""

from __future__ import annotations

import itertools
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli, strip_ansi
from tests.pg import free_port
from tests.servers import Server, running_server

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cli.md"
_FENCE = re.compile(r"^```\n(.*?)^```", re.MULTILINE | re.DOTALL)
_COMMENT = re.compile(r"\s+# .*$")
DOC_PORT = "5000"
DOC_HOME = "/home/you"

#: Commands that do not run here, by their text, each with the reason. Keep this short.
SKIPPED: dict[str, str] = {
    "securekey server --data-dir ./data": "the fixture starts the server",
    "securekey server --host 127.0.0.1 --port 5000 --data-dir ./data": "the fixture's server",
    "securekey server --database-url postgresql+psycopg://… --scheduler-interval 1 --log-level info": (  # noqa: E501
        "the PostgreSQL server runs in tests/store and tests/e2e"
    ),
    "SECUREKEY_TOKEN=ska_… securekey run -a service-2 -- gunicorn app:app": (
        "runs for ever; tests/e2e/test_docs_snippets.py runs `securekey run` for real"
    ),
    "securekey server --log-format json": "the fixture's server",
    "securekey --install-completion": "edits the reader's shell start-up files",
    # Bulk rotation's transcript shows a fleet (14 add-ons, 9 on the daily plan); the bulk
    # commands run for real in tests/cli (bulk rotation tests).
    "securekey addons:rotate --app service-2 --emergency": "needs the doc's fleet of add-ons",
    "securekey addons:rotate --all --dry-run": "needs the doc's fleet of add-ons",
    "securekey addons:rotate --plan securekey:daily --confirm securekey:daily --json": (
        "needs the doc's fleet of add-ons"
    ),
}


@dataclass
class Step:
    """One ``$`` command of a block and the lines shown after it."""

    command: str
    shown: list[str] = field(default_factory=list)
    #: The doc's comment says the command runs "on a terminal": run it on a pseudo-terminal.
    terminal: bool = False


def blocks() -> list[list[Step]]:
    """docs/cli.md's fenced blocks, as steps."""
    out: list[list[Step]] = []
    for match in _FENCE.finditer(DOC.read_text()):
        steps: list[Step] = []
        for line in match.group(1).splitlines():
            if line.startswith("$ "):
                command = _COMMENT.sub("", line[2:]).strip()
                steps.append(Step(command, terminal="on a terminal" in line[2 + len(command) :]))
            elif line.strip():
                assert steps, f"output before any command in {match.group(1)!r}"
                steps[-1].shown.append(_COMMENT.sub("", line).rstrip())
        out.append(steps)
    return out


class Bindings:
    """Documented names (add-ons, UUIDs) bound to the real ones as they first appear."""

    NAMES = re.compile(
        r"securekey-[a-z]+-\d+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    )

    def __init__(self, server: Server, http: httpx.Client, home: Path) -> None:
        self.server = server
        self.home = str(home)
        self.http = http
        self.port = server.url.rsplit(":", 1)[1]
        self.app_token = ""
        self.unknown = False
        self.bound: dict[str, str] = {}

    def _app_token(self) -> str:
        """An app token for ``ska_…``, made on the block's first app when first needed."""
        if not self.app_token:
            if self.unknown:
                return "ska_" + "0" * 43
            apps = self.http.get("/apps").json()
            assert apps, "ska_… needs an app in the scene"
            made = self.http.post(f"/apps/{apps[0]['name']}/tokens")
            assert made.status_code == 201, made.text
            self.app_token = made.json()["token"]
        return self.app_token

    def command(self, text: str) -> str:
        """The documented command with the real port, tokens and bound names."""
        text = text.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{self.port}")
        text = text.replace(DOC_HOME, self.home)
        text = text.replace("sko_…", self.server.token)
        if "ska_…" in text:
            text = text.replace("ska_…", self._app_token())
        for doc, real in self.bound.items():
            text = text.replace(doc, real)
        return text

    def pattern(self, line: str) -> tuple[re.Pattern[str], list[str]]:
        """A shown line as a regex, and the documented names its groups bind, in order."""
        parts: list[str] = []
        names: list[str] = []
        pos = 0
        for match in self.NAMES.finditer(line):
            parts.append(self._literal(line[pos : match.start()]))
            doc = match.group()
            if doc in self.bound:
                parts.append(re.escape(self.bound[doc]))
            elif doc in names:
                parts.append(f"(?P=n{names.index(doc)})")
            else:
                kind = r"[a-z]+-[a-z]+-\d+" if doc.startswith("securekey-") else r"[0-9a-f-]{36}"
                parts.append(f"(?P<n{len(names)}>{kind})")
                names.append(doc)
            pos = match.end()
        parts.append(self._literal(line[pos:]))
        return re.compile("".join(parts)), names

    def _literal(self, text: str) -> str:
        """Documented text as a regex, with the placeholders that differ by nature."""
        out = re.escape(text.replace(DOC_HOME, self.home))
        subs = [
            (r"127\\.0\\.0\\.1:" + DOC_PORT, r"127\.0\.0\.1:\d+"),
            (r"\\ \\ (\\ )*", r" {2,}"),
            (r"─(─)*", "─+"),
            (r"sko_…", r"sko_\S+"),
            (r"ska_…", r"ska_\S+"),
            (r"^[0-9a-f]{4}…$", "[0-9a-f]{16,}"),
            (r"\b[0-9A-F]{64}\b", "[0-9A-F]{64}"),
            (r"\b[0-9A-F]{4}…[0-9A-F]{4}\b", "[0-9A-F]{4}…[0-9A-F]{4}"),
            (r"\b[0-9a-f]{16}\b", "[0-9a-f]{16}"),
            (r"\b[0-9a-f]{12}\b", "[0-9a-f]{12}"),
            (r"\d{4}\\-\d\d\\-\d\d\\ \d\d:\d\d:\d\d\\ UTC", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"),
            (r"\d{4}\\-\d\d\\-\d\d\\ \d\d:\d\dZ", r"\d{4}-\d\d-\d\d \d\d:\d\dZ"),
            (r"\d{4}\\-\d\d\\-\d\d", r"\d{4}-\d\d-\d\d"),
        ]
        for old, new in subs:
            out = re.sub(old, lambda _, new=new: new, out)
        return out

    def match(self, shown: list[str], printed: list[str]) -> str | None:
        """None when ``printed`` is what ``shown`` documents (binding names), else why not."""
        return self._match(shown, printed, 0, 0)

    def _match(self, shown: list[str], printed: list[str], i: int, j: int) -> str | None:
        if i == len(shown):
            return None if j == len(printed) else f"unexpected line {printed[j]!r}"
        if shown[i] == "…":
            for k in range(j, len(printed) + 1):
                if self._match(shown, printed, i + 1, k) is None:
                    return None
            return f"nothing after … matches {shown[i + 1 :]!r}"
        if j == len(printed):
            return f"missing line {shown[i]!r}"
        regex, names = self.pattern(shown[i])
        found = regex.fullmatch(printed[j])
        if found is None:
            return f"line {printed[j]!r} does not match documented {shown[i]!r}"
        before = dict(self.bound)
        for n, doc in enumerate(names):
            self.bound[doc] = found.group(f"n{n}")
        why = self._match(shown, printed, i + 1, j + 1)
        if why is not None:
            self.bound = before
        return why


@dataclass
class Scene:
    """The state a block assumes, made over the API; ``before`` runs before named commands."""

    setup: Callable[[httpx.Client], None]
    before: dict[str, Callable[[httpx.Client, str], None]] = field(default_factory=dict)
    #: Commands run against a port where nothing listens (the connection-error transcript).
    offline: tuple[str, ...] = ()
    #: ``ska_…`` is a token the server does not know (the refused-token transcript).
    unknown_app_token: bool = False
    #: Log in (saved credentials) instead of SECUREKEY_URL and SECUREKEY_TOKEN.
    saved_login: bool = False
    #: The terminal's width the transcript was taken at.
    columns: int = 80
    #: Listings whose rows (below the header and rule) come in no set order (sorted by id).
    unordered: tuple[str, ...] = ()


def _apps(http: httpx.Client, *names: str) -> None:
    """Create the apps ``names``."""
    for name in names:
        assert http.post("/apps", json={"name": name}).status_code == 201


def _addon(http: httpx.Client, _name: str = "") -> None:
    """Give service-1 the doc's fortnightly add-on, under the doc's name."""
    created = http.post(
        "/apps/service-1/addons",
        json={"plan": {"name": "securekey:fortnightly"}, "name": "securekey-solid-14332"},
    )
    assert created.status_code == 201, created.text


def _seed(http: httpx.Client) -> None:
    """The walkthrough's state: service-1's add-on, attached to service-2 too."""
    _apps(http, "service-1", "service-2")
    _addon(http)
    attached = http.post(
        "/addon-attachments",
        json={"addon": "securekey-solid-14332", "app": "service-2", "name": "SERVICE_ONE_SECURE"},
    )
    assert attached.status_code == 201, attached.text
    _attachments.append(attached.json()["id"])


#: The ids of the attachments ``_seed`` made, newest last.
_attachments: list[str] = []


def _rotate(http: httpx.Client, name: str = "securekey-solid-14332") -> None:
    """Rotate the add-on ``name`` once, as an operator."""
    rotated = http.post(f"/addons/{name}/actions/rotate")
    assert rotated.status_code < 300, rotated.text


def _rotated_and_detached(http: httpx.Client) -> None:
    """The walkthrough's state after its rotation and detach."""
    _seed(http)
    _rotate(http)
    gone = http.delete(f"/addon-attachments/{_attachments[-1]}")
    assert gone.status_code < 300, gone.text


def _log_level(http: httpx.Client) -> None:
    """The walkthrough's state with LOG_LEVEL=debug set on service-1."""
    _seed(http)
    patched = http.patch("/apps/service-1/config-vars", json={"LOG_LEVEL": "debug"})
    assert patched.status_code == 200, patched.text


def _nothing(http: httpx.Client) -> None:
    """A block that starts from an empty server."""


#: Each block's scene, by its first command (as written, comment dropped; ``(2)`` for the
#: second block starting with the same command).
SCENES: dict[str, Scene] = {
    "securekey server --data-dir ./data": Scene(_nothing, saved_login=True),
    "securekey apps": Scene(lambda http: _apps(http, "service-1"), offline=("securekey apps",)),
    "securekey apps:create service-1": Scene(_nothing),
    "securekey apps:create service-1 (2)": Scene(
        lambda http: _apps(http, "service-2"), before={"securekey apps:info service-1": _addon}
    ),
    "securekey addons:create securekey:fortnightly -a service-1": Scene(
        lambda http: _apps(http, "service-1", "service-2")
    ),
    "securekey addons:destroy securekey-solid-14332 -a service-1 --confirm service-1": Scene(_seed),
    "securekey addons:rotate securekey-solid-14332": Scene(_seed),
    "securekey config -a service-1": Scene(_log_level),
    "securekey releases -a service-2": Scene(_rotated_and_detached),
    'securekey tokens:create -a service-2 -d "web dynos"': Scene(_seed),
    "securekey webhooks:add -a service-2 --url https://hooks.example/sk --include api:release": (
        Scene(_seed)
    ),
    "SECUREKEY_TOKEN=ska_… securekey run -a service-2 -- gunicorn app:app": Scene(_nothing),
    "securekey server --host 127.0.0.1 --port 5000 --data-dir ./data": Scene(_nothing),
    "securekey --install-completion": Scene(_nothing),
    "securekey addons:rotate --app service-2 --emergency": Scene(_nothing),
    'securekey tokens:create --operator -d "ci deploys"': Scene(
        _nothing, columns=100, unordered=("securekey tokens --operator",)
    ),
    "SECUREKEY_TOKEN=ska_… securekey run -a service-2 -- gunicorn app:app (2)": Scene(
        _nothing, unknown_app_token=True
    ),
    "securekey audit --addon securekey-solid-14332 --since 1d": Scene(
        lambda http: (_seed(http), _rotate(http))
    ),
    "securekey doctor": Scene(_seed, saved_login=True),
}


def _keys() -> list[str]:
    """Each block's key in SCENES, in the order of docs/cli.md."""
    keys: list[str] = []
    for steps in blocks():
        key = steps[0].command
        keys.append(key if key not in keys else f"{key} (2)")
    return keys


def _env(cli: Cli, offline: bool, saved: bool) -> dict[str, str]:
    """The CLI's environment: the venv's ``securekey`` on PATH, no colour, the server's login."""
    env = cli.env(NO_COLOR="1")
    if saved:
        env.pop("SECUREKEY_URL")
        env.pop("SECUREKEY_TOKEN")
        env.pop("XDG_CONFIG_HOME")
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    if offline:
        env["SECUREKEY_URL"] = f"http://127.0.0.1:{free_port()}"
    return env


def _run(
    command: str, answers: list[str], env: dict[str, str], cli: Cli, cwd: Path, terminal: bool
) -> tuple[int, str]:
    """Run one command in bash (both streams together), or on a terminal when it asks."""
    if answers or terminal:
        result = cli.pty(*shlex.split(command)[1:], answers=[("> ", a) for a in answers], env=env)
        return result.code, result.out
    done = subprocess.run(
        ["bash", "-c", f"{{ {command} ; }} 2>&1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=cwd,
    )
    return done.returncode, done.stdout


def test_every_block_has_a_scene() -> None:
    """Every block of docs/cli.md has a scene here, and every skipped command is in the doc."""
    assert sorted(_keys()) == sorted(SCENES), "docs/cli.md blocks and SCENES differ"
    commands = {step.command for steps in blocks() for step in steps}
    assert set(SKIPPED) <= commands, set(SKIPPED) - commands


@pytest.mark.parametrize(("key", "steps"), list(zip(_keys(), blocks(), strict=True)), ids=_keys())
def test_transcript(key: str, steps: list[Step], tmp_path: Path) -> None:
    """The block's commands, run in order on a fresh server, print the documented lines."""
    scene = SCENES[key]
    runnable = [step for step in steps if step.command not in SKIPPED]
    if not runnable:
        return
    with (
        running_server(tmp_path / "data", scheduler_interval=1) as server,
        server.client() as http,
    ):
        scene.setup(http)
        (tmp_path / "data").chmod(0o700)  # as `securekey server` makes ./data
        bindings = Bindings(server, http, tmp_path)
        bindings.unknown = scene.unknown_app_token
        cli = Cli(tmp_path, server)
        if scene.saved_login and steps[0].command == "securekey doctor":
            env = _env(cli, offline=False, saved=True)
            login = f"securekey login --url {server.url} --token {server.token}"
            assert _run(login, [], env, cli, tmp_path, terminal=False)[0] == 0
        for step in runnable:
            if step.command in scene.before:
                scene.before[step.command](http, bindings.command("securekey-solid-14332"))
            answers = [line[2:] for line in step.shown if line.startswith("> ")]
            shown = step.shown
            env = _env(cli, step.command in scene.offline, scene.saved_login)
            env["COLUMNS"] = str(scene.columns)
            command = bindings.command(step.command)
            code, out = _run(command, answers, env, cli, tmp_path, step.terminal)
            printed = [line.rstrip() for line in strip_ansi(out).splitlines()]
            assert code == 0 or shown, f"$ {step.command}\n{out}"
            if not shown:
                continue
            orders = [printed]
            if step.command in scene.unordered:
                head, rows = printed[:2], printed[2:]
                orders = [head + list(rows) for rows in itertools.permutations(rows)]
            whys = [bindings.match(shown, order) for order in orders]
            why = None if None in whys else whys[0]
            assert why is None, f"$ {step.command}: {why}\nprinted:\n" + "\n".join(printed)
