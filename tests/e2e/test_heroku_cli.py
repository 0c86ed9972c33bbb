"""The real Heroku CLI (npm ``heroku``, unmodified) drives a real securekey server on 127.0.0.1.

Runs the seed walkthrough's commands, plus ``config:set/get/unset``, and asserts the lines the
CLI prints (stdout and stderr together: progress lines go to stderr). The CLI is installed by
``scripts/install-heroku-cli.sh`` into the git-ignored ``.cache/heroku-cli``; without it this
test skips, except under CI, where a missing CLI is a failure.

Each CLI invocation costs a few seconds of Node start-up, so every command runs exactly once and
the few independent ones run two at a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

from tests.servers import Server, running_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLI_BIN = ROOT / ".cache" / "heroku-cli" / "node_modules" / ".bin"
CLI = CLI_BIN / "heroku"

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PAIR = r"([0-9A-F]{64}),([0-9A-F]{64})"
T = TypeVar("T")


def _cli() -> Path:
    """The installed CLI; skip without it, but never in CI."""
    if CLI.exists():
        return CLI
    message = f"Heroku CLI not installed at {CLI}; run scripts/install-heroku-cli.sh"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (.ci/run must install it)")
    pytest.skip(message)


class Heroku:
    """Runs ``heroku …`` against ``server`` with a throwaway HOME, offline, without colour."""

    def __init__(self, cli: Path, server: Server, home: Path) -> None:
        self.cli = cli
        self.cwd = home / "work"  # not a git checkout: the app comes from -a, never a git remote
        self.cwd.mkdir(parents=True)
        # The terms-of-service banner is printed once per cache dir; mark it seen.
        (home / ".cache" / "heroku").mkdir(parents=True)
        (home / ".cache" / "heroku" / "terms-of-service").touch()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HEROKU_", "XDG_", "SECUREKEY_")) and k != "FORCE_COLOR"
        }
        env.update(
            {
                "HOME": str(home),
                "PATH": f"{CLI_BIN}{os.pathsep}{env.get('PATH', '')}",
                "HEROKU_HOST": server.url,
                "HEROKU_API_KEY": server.token,
                # Keep every request on 127.0.0.1: no telemetry, no update checks or
                # background self-update, and the account "delinquency" probe (sent along
                # with GET /account, carrying the token) goes to our server, not Heroku.
                "DISABLE_TELEMETRY": "true",
                "HEROKU_SKIP_NEW_VERSION_CHECK": "true",
                "HEROKU_DISABLE_AUTOUPDATE": "true",
                "HEROKU_PARTICLEBOARD_URL": server.url,
                "NO_COLOR": "1",
            }
        )
        self.env = env
        self.log: list[tuple[str, float]] = []

    def __call__(self, *args: str, color: bool = False) -> str:
        """Run one command; it must succeed. Returns stdout + stderr, ANSI codes removed."""
        env = dict(self.env)
        if color:
            # 256 colours: the level at which the CLI prefixes app names with ⬢.
            del env["NO_COLOR"]
            env["FORCE_COLOR"] = "3"
        started = time.monotonic()
        proc = subprocess.run(
            [str(self.cli), *args],
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        self.log.append((" ".join(args), time.monotonic() - started))
        out = ANSI.sub("", proc.stdout + proc.stderr)
        assert proc.returncode == 0, f"heroku {' '.join(args)} exited {proc.returncode}:\n{out}"
        return out


def lines(text: str) -> list[str]:
    """Output lines without trailing blanks."""
    return [line.rstrip() for line in text.splitlines()]


def has_line(text: str, pattern: str) -> re.Match[str]:
    """The first whole line matching ``pattern`` (a regex); fails showing the output."""
    for line in lines(text):
        found = re.fullmatch(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matches {pattern!r} in:\n{text}")


def both(first: Callable[[], T], second: Callable[[], T]) -> tuple[T, T]:
    """Run two independent CLI commands at once (each is mostly Node start-up)."""
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.submit(first), pool.submit(second)
        return a.result(), b.result()


def test_heroku_cli_runs_the_seed_walkthrough(tmp_path: Path) -> None:
    """The seed's commands, verbatim, through the real CLI: output lines and shared keys."""
    cli = _cli()
    started = time.monotonic()
    with running_server(tmp_path / "data") as server, server.client() as http:
        heroku = Heroku(cli, server, tmp_path / "home")

        # The seed assumes both apps exist.
        made = both(
            lambda: heroku("apps:create", "service-1", "--no-remote"),
            lambda: heroku("apps:create", "service-2", "--no-remote"),
        )
        for name, out in zip(("service-1", "service-2"), made, strict=True):
            has_line(out, rf"Creating {name}\.\.\. done")
            has_line(out, rf"{re.escape(server.url)}/apps/{name}/ \| .*")

        # > heroku addons:create securekey:fortnightly -a service-1
        out = heroku("addons:create", "securekey:fortnightly", "-a", "service-1")
        has_line(out, r"Creating securekey:fortnightly on service-1\.\.\. free")
        addon = has_line(out, r"Created (securekey-[a-z]+-\d+) as SECURE_KEY").group(1)
        assert http.get(f"/addons/{addon}").json()["app"]["name"] == "service-1"

        # > heroku config -a service-1 | grep SECURE_KEY   (and config:set on the side)
        config_1, set_foo = both(
            lambda: heroku("config", "-a", "service-1"),
            lambda: heroku("config:set", "FOO=bar", "-a", "service-1"),
        )
        has_line(config_1, r"=== service-1 Config Vars")
        pair = has_line(config_1, rf"SECURE_KEY: {PAIR}").groups()
        assert pair[0] != pair[1]
        has_line(set_foo, r"Setting FOO and restarting service-1\.\.\. done, v3")
        has_line(set_foo, r"FOO: bar")

        # > heroku addons:attach <addon> --as SERVICE_ONE_SECURE -a service-2
        out = heroku("addons:attach", addon, "--as", "SERVICE_ONE_SECURE", "-a", "service-2")
        has_line(out, rf"Attaching {addon} as SERVICE_ONE_SECURE to service-2\.\.\. done")
        has_line(
            out, r"Setting SERVICE_ONE_SECURE config vars and restarting service-2\.\.\. done, v2"
        )

        # > heroku config -a service-2 | grep SERVICE_ONE_SECURE_KEY: the same pair.
        config_2, get_foo = both(
            lambda: heroku("config", "-a", "service-2"),
            lambda: heroku("config:get", "FOO", "-a", "service-1"),
        )
        has_line(config_2, r"=== service-2 Config Vars")
        assert has_line(config_2, rf"SERVICE_ONE_SECURE_KEY: {PAIR}").groups() == pair
        assert lines(get_foo)[0] == "bar"

        # Both sides of the attachment, as `heroku addons` and `heroku addons:info` show them.
        listing, info = both(
            lambda: heroku("addons", "-a", "service-2"),
            lambda: heroku("addons:info", addon),
        )
        row = has_line(listing, rf"\s*securekey \({addon}\)\s+fortnightly\s+(.*?)\s+created")
        assert "?" not in row.group(0)
        assert "(billed to service-1 app)" in row.group(1)
        has_line(listing, r"\s*├─ as SERVICE_ONE_SECURE")
        has_line(listing, r"\s*└─ as SECURE on service-1 app")
        has_line(info, rf"=== {addon}")
        has_line(info, r"Plan:\s+securekey:fortnightly")
        has_line(info, r"Price:\s+free")
        has_line(info, r"Attachments:\s+service-1::SECURE")
        has_line(info, r"\s+service-2::SERVICE_ONE_SECURE")
        has_line(info, r"Owning app:\s+service-1")
        has_line(info, r"State:\s+created")

        # > heroku addons:detach SERVICE_ONE_SECURE -a service-2   (with colour: the ⬢ lines)
        detach, unset_foo = both(
            lambda: heroku("addons:detach", "SERVICE_ONE_SECURE", "-a", "service-2", color=True),
            lambda: heroku("config:unset", "FOO", "-a", "service-1"),
        )
        # The seed's lines verbatim, ⬢ included; v3, not the seed's v4, as nothing rotated.
        has_line(detach, rf"Detaching SERVICE_ONE_SECURE to {addon} from ⬢ service-2\.\.\. done")
        has_line(
            detach,
            r"Unsetting SERVICE_ONE_SECURE config vars and restarting ⬢ service-2\.\.\. done, v3",
        )
        plain = detach.replace("⬢ ", "")
        has_line(plain, rf"Detaching SERVICE_ONE_SECURE to {addon} from service-2\.\.\. done")
        has_line(unset_foo, r"Unsetting FOO and restarting service-1\.\.\. done, v4")

        # Release history of service-2: v1..v3 with our descriptions, newest first.
        out = heroku("releases", "-a", "service-2")
        has_line(out, r"=== service-2 Releases - Current: v3")
        user = r"\s+operator@securekey\.local\s+\d{4}/\d\d/\d\d .*"
        desc = [
            rf"v3\s+Detach SERVICE_ONE_SECURE \(@ref:{addon}\)",
            rf"v2\s+Attach SERVICE_ONE_SECURE \(@ref:{addon}\)",
            r"v1\s+Initial release",
        ]
        rows = [i for i, line in enumerate(lines(out)) if re.fullmatch(r"\s*v\d+\s.*", line)]
        assert len(rows) == 3, out
        for index, pattern in zip(rows, desc, strict=True):
            assert re.fullmatch(rf"\s*{pattern}{user}", lines(out)[index]), out

        # > heroku addons:destroy <addon> -a service-1 --confirm service-1
        out = heroku("addons:destroy", addon, "-a", "service-1", "--confirm", "service-1")
        has_line(out, rf"Destroying {addon} on service-1\.\.\. done")
        assert http.get(f"/addons/{addon}").status_code == 404
        assert "SECURE_KEY" not in http.get("/apps/service-1/config-vars").json()

    elapsed = time.monotonic() - started
    timings = ", ".join(f"{cmd}: {secs:.1f}s" for cmd, secs in heroku.log)
    print(f"\nheroku CLI e2e: {elapsed:.1f}s total; {timings}")


def test_lookups_the_cli_makes(tmp_path: Path) -> None:
    """What `heroku apps` and the CLI's add-on resolver ask for, over HTTP (no CLI needed).

    `heroku apps` lists ``/users/~/apps``; ``addons:info``/``addons:remove`` resolve an add-on
    by ``APP::ATTACHMENT`` or by service or plan name (the seed's own clean-up runs
    ``heroku addons:remove securekey -a service-1``); several matches come back as a list, which
    the CLI reports as ambiguous.
    """
    with running_server(tmp_path / "data") as server, server.client() as http:
        for name in ("service-1", "service-2"):
            assert http.post("/apps", json={"name": name}).status_code == 201
        addon = http.post(
            "/apps/service-1/addons", json={"plan": {"name": "securekey:fortnightly"}}
        ).json()["name"]
        attached = http.post(
            "/addon-attachments",
            json={"addon": {"name": addon}, "app": {"name": "service-2"}, "name": "ONE"},
        )
        assert attached.status_code == 201

        for user in ("~", "operator@securekey.local"):
            apps = http.get(f"/users/{user}/apps")
            assert apps.status_code == 200
            assert [a["name"] for a in apps.json()] == ["service-1", "service-2"]
        nobody = http.get("/users/nobody@example.com/apps")
        assert (nobody.status_code, nobody.json()["resource"]) == (404, "user")

        def resolve(ref: str, app: str | None = None) -> list[str]:
            answer = http.post("/actions/addons/resolve", json={"addon": ref, "app": app})
            assert answer.status_code == 200, answer.text
            return [a["name"] for a in answer.json()]

        assert resolve("securekey", "service-1") == [addon]
        assert resolve("securekey", "service-2") == [addon]  # attached there from service-1
        assert resolve("securekey:fortnightly") == [addon]
        assert resolve("service-2::ONE") == [addon]
        assert resolve("service-1::SECURE") == [addon]
        other = http.post("/apps/service-2/addons", json={"plan": "securekey:daily"}).json()
        assert sorted(resolve("securekey")) == sorted([addon, other["name"]])
        assert sorted(resolve("securekey", "service-2")) == sorted([addon, other["name"]])
        assert resolve("securekey:daily", "service-2") == [other["name"]]

        missing = http.post("/actions/addons/resolve", json={"addon": "securekey:weekly"})
        assert (missing.status_code, missing.json()["resource"]) == (404, "add_on")
        no_app = http.post("/actions/addons/resolve", json={"addon": "nope::ONE"})
        assert (no_app.status_code, no_app.json()["resource"]) == (404, "app")
        unknown = http.post("/actions/addons/resolve", json={"addon": "service-1::NOPE"})
        assert (unknown.status_code, unknown.json()["resource"]) == (404, "add_on")
