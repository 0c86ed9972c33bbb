"""Config vars, releases, app tokens, webhooks and ``run``, with their failure paths."""

from __future__ import annotations

import json
import sys

import httpx

from tests.cli.conftest import Cli, fails, make_app, one_clear_line


def test_config_views_set_get_unset(cli: Cli, http: httpx.Client) -> None:
    """``config`` aligns values, --json and --shell are exact, set/unset make one release each."""
    make_app(http, "cfg-app")
    made = cli("config:set", "A=one", "LONGER_NAME=it's two", "-a", "cfg-app", merge=True)
    assert made.lines == [
        "Setting A, LONGER_NAME and restarting ⬢ cfg-app... done, v2",
        "A:           one",
        "LONGER_NAME: it's two",
    ]
    shown, as_json, shell, got = cli.many(
        [
            ("config", "-a", "cfg-app"),
            ("config", "-a", "cfg-app", "--json"),
            ("config", "-a", "cfg-app", "--shell"),
            ("config:get", "LONGER_NAME", "-a", "cfg-app"),
        ]
    )
    assert shown.lines == ["=== cfg-app Config Vars", "A:           one", "LONGER_NAME: it's two"]
    assert json.loads(as_json.out) == {"A": "one", "LONGER_NAME": "it's two"}
    assert shell.lines == ["A=one", "LONGER_NAME='it'\"'\"'s two'"]
    assert got.out == "it's two\n"
    unset = cli("config:remove", "A", "-a", "cfg-app", merge=True)
    assert unset.lines == ["Unsetting A and restarting ⬢ cfg-app... done, v3"]
    assert "A" not in http.get("/apps/cfg-app/config-vars").json()


def test_config_failures(cli: Cli, http: httpx.Client) -> None:
    """A malformed pair, an add-on's var, a missing var, an unknown app: one line each."""
    make_app(http, "cfg-bad", "securekey:weekly")
    bad = cli("config:set", "NOEQUALS", "-a", "cfg-bad")
    assert bad.code == 2
    assert bad.err_lines == [" ▸    NOEQUALS is invalid. Must be in the format FOO=bar."]
    fails(
        cli,
        (("config:set", "SECURE_KEY=x", "-a", "cfg-bad"), ["attachment SECURE"]),
        (("config:get", "MISSING", "-a", "cfg-bad"), ["MISSING is not set"]),
        (("config", "-a", "nope-app"), ["Couldn't find that app"]),
        (("config:unset", "X", "-a", "nope-app"), ["Couldn't find that app"]),
    )


def test_releases_list_and_info(cli: Cli, http: httpx.Client) -> None:
    """``releases`` shows vN, description, user and time, newest first; ``releases:info`` one."""
    make_app(http, "rel-app")
    http.patch("/apps/rel-app/config-vars", json={"X": "1"})
    listed, as_json, one, info, info_json = cli.many(
        [
            ("releases", "-a", "rel-app"),
            ("releases", "-a", "rel-app", "--json"),
            ("releases", "-a", "rel-app", "-n", "1"),
            ("releases:info", "v2", "-a", "rel-app"),
            ("releases:info", "1", "-a", "rel-app", "--json"),
        ]
    )
    assert listed.lines[0] == "=== rel-app Releases - Current: v2"
    assert listed.lines[1].split()[:6] == [
        "v2", "Set", "X", "config", "vars", "operator@securekey.local",
    ]  # fmt: skip
    assert listed.lines[2].split()[:4] == ["v1", "Initial", "release", "operator@securekey.local"]
    assert max(len(line) for line in listed.lines) <= 80
    assert [r["version"] for r in json.loads(as_json.out)] == [2, 1]
    assert len(one.lines) == 2
    assert info.lines[0] == "=== Release v2"
    assert "Change:  Set X config vars" in info.lines
    assert json.loads(info_json.out)["version"] == 1
    fails(
        cli,
        (("releases:info", "v9", "-a", "rel-app"), ["Couldn't find that release"]),
        (("releases", "-a", "nope-app"), ["Couldn't find that app"]),
    )


def test_tokens_create_list_revoke(cli: Cli, http: httpx.Client) -> None:
    """A token is shown once alone on stdout, listed without its value, and revoked for good."""
    make_app(http, "tok-app")
    made = cli("tokens:create", "-a", "tok-app", "-d", "web dynos")
    assert made.code == 0, made.err
    token = made.out.strip()
    assert made.lines == [token]
    assert made.err_lines[0] == "Creating a token for ⬢ tok-app... done"
    as_json, table = cli.many([("tokens", "-a", "tok-app", "--json"), ("tokens", "-a", "tok-app")])
    [row] = json.loads(as_json.out)
    assert row["description"] == "web dynos"
    assert token not in json.dumps(row)
    assert table.lines[0].split() == ["ID", "Description", "Created", "Last", "used"]
    assert row["id"] in table.lines[2]
    revoked = cli("tokens:revoke", row["id"], "-a", "tok-app")
    assert revoked.err == f"Revoking token {row['id']} on ⬢ tok-app... done\n"
    fails(
        cli,
        (("tokens:revoke", row["id"], "-a", "tok-app"), ["Couldn't find that token"]),
        (("tokens:create", "-a", "nope-app"), ["Couldn't find that app"]),
        (("tokens", "-a", "nope-app"), ["Couldn't find that app"]),
    )
    revoked_token = cli.env(SECUREKEY_TOKEN=token)
    one_clear_line(
        cli("config", "-a", "tok-app", env=revoked_token), "unknown or was revoked", "tokens:create"
    )


def test_webhooks_add_list_remove(cli: Cli, http: httpx.Client) -> None:
    """A webhook is added (its made-up secret shown once), listed, and removed."""
    make_app(http, "hook-app")
    url = "http://127.0.0.1:9/hook"
    made = cli("webhooks:add", "-a", "hook-app", "--url", url, "--include", "api:release")
    assert made.code == 0, made.err
    assert made.err_lines == ["Adding webhook to ⬢ hook-app... done"]
    assert made.lines[0] == "=== Webhooks Signing Secret"
    assert len(made.lines[1]) >= 16
    given = cli("webhooks:add", "-a", "hook-app", "--url", url + "2", "--secret", "s" * 20)
    assert given.out == ""
    as_json, table = cli.many(
        [("webhooks", "-a", "hook-app", "--json"), ("webhooks", "-a", "hook-app")]
    )
    hooks = json.loads(as_json.out)
    assert sorted(h["url"] for h in hooks) == [url, url + "2"]
    assert table.lines[0] == "=== hook-app Webhooks"
    assert table.lines[1].split() == ["ID", "URL", "Include", "Level"]
    removed = cli("webhooks:remove", hooks[0]["id"], "-a", "hook-app")
    assert removed.err == f"Removing webhook {hooks[0]['id']} from ⬢ hook-app... done\n"
    assert len(http.get("/apps/hook-app/webhooks").json()) == 1
    fails(
        cli,
        (("webhooks:remove", hooks[0]["id"], "-a", "hook-app"), ["webhook"]),
        (("webhooks:add", "-a", "hook-app", "--url", url, "--include", "x:y"), ["api:release"]),
        (("webhooks", "-a", "nope-app"), ["Couldn't find that app"]),
    )


def test_run_starts_the_command_with_the_apps_vars(cli: Cli, http: httpx.Client) -> None:
    """``securekey run -a APP -- CMD`` hands CMD the app's config vars (via the supervisor)."""
    make_app(http, "run-app")
    http.patch("/apps/run-app/config-vars", json={"GREETING": "hello"})
    token = http.post("/apps/run-app/tokens", json={}).json()["token"]
    code = "import os; print('got', os.environ['GREETING'])"
    result = cli(
        "run", "-a", "run-app", "--", sys.executable, "-c", code,
        env=cli.env(SECUREKEY_TOKEN=token),
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "got hello" in result.out
    no_token = cli("run", "-a", "run-app", "--", "true", env=cli.env(SECUREKEY_TOKEN=None))
    assert no_token.code == 2
    assert "No token" in no_token.err
