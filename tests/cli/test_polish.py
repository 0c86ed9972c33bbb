"""A newcomer's papercuts (issue 12): clean help texts, --json everywhere, keys masked on a
terminal only, and error lines that name the next step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.cli.conftest import Cli, fails, make_app, one_clear_line, strip_ansi
from tests.cli.test_help import commands

#: Commands that print no data of their own: they log in, serve, or hand over to a child.
NO_JSON = {"login", "logout", "run", "server"}
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
_MASKED = re.compile(r"^SECURE_KEY: [0-9A-F]{4}…[0-9A-F]{4},[0-9A-F]{4}…[0-9A-F]{4}$")
_FULL = re.compile(r"^SECURE_KEY: [0-9A-F]{64},[0-9A-F]{64}$")


def test_help_texts_have_no_control_characters(bare_cli: Cli) -> None:
    """No command's --help (nor the root's) holds a backspace or any other control character."""
    names = [n for n in commands(bare_cli) if n != "run"]
    results = bare_cli.many([("--help",), *[(name, "--help") for name in names]])
    for name, result in zip(["(root)", *names], results, strict=True):
        assert result.code == 0, (name, result.err)
        found = _CONTROL.findall(result.out)
        assert not found, f"securekey {name} --help holds {found!r}"
    run = bare_cli("run", "--help")
    assert not _CONTROL.findall(run.out), run.out


def test_every_data_command_takes_json(bare_cli: Cli) -> None:
    """Every command but login, logout, run and server lists --json in its help."""
    names = [n for n in commands(bare_cli) if n not in NO_JSON]
    assert {"auth:whoami", "config:get", "addons:attach", "version"} <= set(names)
    results = bare_cli.many([(name, "--help") for name in names])
    missing = [n for n, r in zip(names, results, strict=True) if "--json" not in r.out]
    assert not missing, missing


def test_json_output_parses(cli: Cli, http: httpx.Client) -> None:
    """whoami, version, config:get/set/unset, attach and detach print one JSON document."""
    addon = make_app(http, "js-1", "securekey:weekly")
    make_app(http, "js-2")
    who, version = cli.many([("auth:whoami", "--json"), ("version", "--json")])
    assert json.loads(who.out)["email"] == "operator@securekey.local"
    assert json.loads(who.out)["url"] == cli.server.url  # type: ignore[union-attr]
    assert json.loads(version.out)["version"]
    made = cli("config:set", "A=1", "-a", "js-1", "--json")
    assert json.loads(made.out) == {"A": "1"}, made
    got = json.loads(cli("config:get", "SECURE_KEY", "-a", "js-1", "--json").out)
    assert _FULL.match(f"SECURE_KEY: {got['SECURE_KEY']}")
    gone = json.loads(cli("config:unset", "A", "-a", "js-1", "--json").out)
    assert "A" not in gone
    assert "SECURE_KEY" in gone
    attached = json.loads(cli("addons:attach", addon, "--as", "OTHER", "-a", "js-2", "--json").out)
    assert attached["name"] == "OTHER"
    detached = json.loads(cli("addons:detach", "OTHER", "-a", "js-2", "--json").out)
    assert detached["id"] == attached["id"]


def test_config_masks_keys_on_a_terminal_only(cli: Cli, http: httpx.Client) -> None:
    """On a terminal keys show as 3F6D…FDEE; --reveal, a pipe, --shell and --json show all."""
    make_app(http, "mask-app", "securekey:weekly")
    http.patch("/apps/mask-app/config-vars", json={"LOG_LEVEL": "debug"})
    on_tty = cli.pty("config", "-a", "mask-app")
    lines = strip_ansi(on_tty.out).splitlines()
    assert any(_MASKED.match(line) for line in lines), lines
    assert "LOG_LEVEL:  debug" in lines
    revealed = cli.pty("config", "-a", "mask-app", "--reveal")
    assert any(_FULL.match(line) for line in strip_ansi(revealed.out).splitlines()), revealed.out
    piped = cli("config", "-a", "mask-app")
    assert any(_FULL.match(line) for line in piped.lines), piped.lines
    shell = cli.pty("config", "-a", "mask-app", "--shell")
    assert re.search(r"SECURE_KEY=[0-9A-F]{64},[0-9A-F]{64}", shell.out)


def test_apps_info_takes_the_app_as_an_argument(cli: Cli, http: httpx.Client) -> None:
    """``apps:info service-1`` works like ``-a service-1``; two different apps are refused."""
    make_app(http, "pos-app")
    by_arg, by_flag = cli.many([("apps:info", "pos-app"), ("apps:info", "-a", "pos-app")])
    assert by_arg.code == 0, by_arg.err
    assert by_arg.out == by_flag.out
    both = cli("apps:info", "pos-app", "-a", "other")
    assert both.code == 2
    assert "give one" in both.err
    none = cli("apps:info")
    assert none.code == 2
    assert "apps:info APP" in none.err


def test_second_addon_on_an_app_suggests_as(cli: Cli, http: httpx.Client) -> None:
    """A second addons:create on one app is refused with the hint to use --as NAME."""
    make_app(http, "twice-app", "securekey:weekly")
    again = cli("addons:create", "securekey:daily", "-a", "twice-app")
    one_clear_line(again, "already has an attachment named SECURE", "Use --as NAME")


def test_unknown_or_revoked_app_token_says_so(cli: Cli, http: httpx.Client) -> None:
    """A revoked or unknown app token is named as such, with tokens:create as the way on."""
    make_app(http, "tok-app", "securekey:weekly")
    made = http.post("/apps/tok-app/tokens", json={"description": "t"}).json()
    assert http.delete(f"/apps/tok-app/tokens/{made['id']}").status_code == 200
    env_revoked = cli.env(SECUREKEY_TOKEN=made["token"])
    env_unknown = cli.env(SECUREKEY_TOKEN="ska_" + "x" * 40)
    for env in (env_revoked, env_unknown):
        result = cli("config", "-a", "tok-app", env=env)
        one_clear_line(result, "app token", "unknown or was revoked", "tokens:create")
        assert "securekey login" not in result.err
    fails(cli, (("apps:info", "missing-app"), ["Couldn't find that app"]))


def test_run_errors_are_one_line_with_the_next_step(cli: Cli, http: httpx.Client) -> None:
    """run: usage mistakes, an unreachable server and a revoked token each get one ▸ line."""
    from tests.pg import free_port

    make_app(http, "run-err", "securekey:weekly")
    made = http.post("/apps/run-err/tokens", json={}).json()
    http.delete(f"/apps/run-err/tokens/{made['id']}")
    usage = cli("run", "-a", "run-err")
    assert usage.code == 2
    wanted = " ▸    No command given (put it after --). See `securekey run --help`."
    assert usage.err_lines == [wanted]
    missing = cli("run", "--", "true")
    assert missing.code == 2
    assert missing.err_lines[0].startswith(" ▸    The following arguments are required: -a/--app")
    down = cli(
        "run", "-a", "run-err", "--", "true",
        env=cli.env(SECUREKEY_URL=f"http://127.0.0.1:{free_port()}"),
    )  # fmt: skip
    one_clear_line(down, "Cannot reach the securekey server", "Start it with `securekey server`")
    revoked = cli("run", "-a", "run-err", "--", "true", env=cli.env(SECUREKEY_TOKEN=made["token"]))
    one_clear_line(revoked, "unknown or was revoked", "securekey tokens:create -a run-err")


def test_run_exports_the_env_file_path(cli: Cli, http: httpx.Client, tmp_path: Path) -> None:
    """With --env-file the command finds the file's absolute path in SECUREKEY_ENV_FILE."""
    import sys

    make_app(http, "run-env", "securekey:weekly")
    token = http.post("/apps/run-env/tokens", json={}).json()["token"]
    env_file = tmp_path / "app.env"
    code = "import os; print(os.environ['SECUREKEY_ENV_FILE'])"
    done = cli(
        "run", "-a", "run-env", "--env-file", str(env_file), "--",
        sys.executable, "-c", code,
        env=cli.env(SECUREKEY_TOKEN=token),
    )  # fmt: skip
    assert done.code == 0, done.err
    assert done.out.strip() == str(env_file.resolve())
    assert "SECURE_KEY=" in env_file.read_text()
