"""Apps and add-on commands, with their failure paths, against one real server."""

from __future__ import annotations

import json
import re

import httpx

from tests.cli.conftest import Cli, fails, make_app, one_clear_line


def test_apps_listing_info_and_failures(cli: Cli, http: httpx.Client) -> None:
    """``apps`` lists, ``apps:info`` shows; a taken name, a bad name, an unknown app are refused."""
    addon = make_app(http, "apps-one", "securekey:fortnightly")
    made = cli("apps:create", "apps-two")
    assert made.err == "Creating ⬢ apps-two... done\n"
    listed, as_json, info = cli.many(
        [("apps",), ("apps", "--json"), ("apps:info", "-a", "apps-one")]
    )
    assert listed.lines[0] == "=== Apps"
    assert {"apps-one", "apps-two"} <= set(listed.lines)
    assert "apps-one" in [a["name"] for a in json.loads(as_json.out)]
    assert info.lines[0] == "=== apps-one"
    fields = {k: v.strip() for k, _, v in (line.partition(":") for line in info.lines[1:])}
    assert fields["Add-ons"] == addon
    assert fields["Attachments"] == f"SECURE ({addon})"
    assert fields["Release"] == "v2"
    fails(
        cli,
        (("apps:create", "apps-one"), ["already taken"]),
        (("apps:create", "Bad_Name"), ["Name must"]),
        (("apps:info", "-a", "no-such-app"), ["Couldn't find that app", "securekey apps"]),
    )


def test_apps_destroy_confirms_and_refuses_to_break_others(cli: Cli, http: httpx.Client) -> None:
    """``apps:destroy`` needs the name typed or --confirm, and --force while others attach."""
    addon = make_app(http, "doomed-app", "securekey:weekly")
    make_app(http, "user-app")
    http.post("/addon-attachments", json={"addon": addon, "app": "user-app"})
    fails(
        cli,
        (("apps:destroy", "-a", "doomed-app"), ["not a terminal", "--confirm doomed-app"]),
        (("apps:destroy", "-a", "doomed-app", "--confirm", "other"), ["did not match"]),
        (("apps:destroy", "-a", "nope-app", "--confirm", "nope-app"), ["Couldn't find"]),
    )
    refused = cli("apps:destroy", "-a", "doomed-app", "--confirm", "doomed-app")
    assert refused.code == 1
    assert "       SECURE on ⬢ user-app" in refused.err_lines
    assert "--force" in refused.err_lines[-1]
    forced = cli("apps:destroy", "-a", "doomed-app", "--confirm", "doomed-app", "--force")
    assert forced.err == "Destroying ⬢ doomed-app (including all add-ons)... done\n"
    assert http.get("/apps/doomed-app").status_code == 404
    assert "SECURE_KEY" not in http.get("/apps/user-app/config-vars").json()


def test_create_with_options_custom_period_and_failures(cli: Cli, http: httpx.Client) -> None:
    """--as, --name and ``-- --period 10s`` reach the server; bad plans and config are refused."""
    make_app(http, "opts-app")
    made = cli(
        "addons:create", "securekey:daily", "-a", "opts-app", "--as", "FAST",
        "--name", "fast-keys", "--", "--period", "10s", merge=True,
    )  # fmt: skip
    assert made.lines == [
        "Creating securekey:daily on ⬢ opts-app... free",
        "Created fast-keys as FAST_KEY",
    ]
    for _ in range(5):  # a 10 s period may rotate between the two reads: read both again
        info, shown = cli.many(
            [("addons:info", "fast-keys"), ("addons:info", "fast-keys", "--json")]
        )
        version = json.loads(shown.out)["securekey"]["key_version"]
        if f"Key version:   {version}" in info.lines:
            break
    assert info.lines[0] == "=== fast-keys"
    for line in (
        "Attachments:   opts-app::FAST",
        "Billing app:   ⬢ opts-app",
        "Period:        10 seconds",
        "Plan:          securekey:daily",
        "Price:         free",
    ):
        assert line in info.lines
    prints = json.loads(shown.out)["securekey"]["fingerprints"]
    assert re.fullmatch(r"[0-9a-f]{8,}", prints["latest"])
    assert f"Latest key:    {prints['latest']} (fingerprint)" in info.lines
    fails(
        cli,
        (("addons:create", "securekey:daily", "-a", "opts-app", "--name", "fast-keys"),
         ["already taken"]),
        (("addons:create", "securekey:daily", "-a", "opts-app", "--as", "FAST"), ["FAST"]),
        (("addons:create", "securekey:hourly", "-a", "opts-app"), ["Unknown plan"]),
        (("addons:create", "securekey:daily", "-a", "nope-app"), ["Couldn't find that app"]),
        (("addons:create", "securekey:daily", "-a", "opts-app", "--", "--period"),
         ["needs a value"]),
        (("addons:create", "securekey:daily", "-a", "opts-app", "--", "--colour", "red"),
         ["Unknown add-on config"]),
        (("addons:info", "no-such-addon"), ["Couldn't find that add-on"]),
    )  # fmt: skip


def test_listing_attach_detach_and_their_failures(cli: Cli, http: httpx.Client) -> None:
    """``addons`` shows attachments at 80 columns; attach and detach refuse bad names."""
    addon = make_app(http, "list-one", "securekey:fortnightly")
    make_app(http, "list-two")
    attached = cli("addons:attach", addon, "--as", "ONE", "-a", "list-two", merge=True)
    assert attached.lines == [
        f"Attaching {addon} as ONE to ⬢ list-two... done",
        "Setting ONE config vars and restarting ⬢ list-two... done, v2",
    ]
    table, as_json, everything = cli.many(
        [("addons", "-a", "list-two"), ("addons", "-a", "list-two", "--json"), ("addons",)]
    )
    assert table.lines[0].split() == ["Add-on", "Plan", "Billing", "app", "Attachments"]
    assert table.lines[2].split() == [addon, "fortnightly", "list-one", "list-one::SECURE"]
    assert table.lines[3].split() == ["list-two::ONE"]
    assert max(len(line) for line in table.lines) <= 80
    assert [a["name"] for a in json.loads(as_json.out)] == [addon]
    assert addon in everything.out
    fails(
        cli,
        (("addons", "-a", "nope-app"), ["Couldn't find that app"]),
        (("addons:attach", "no-such-addon", "-a", "list-two"), ["add-on", "securekey addons"]),
        (("addons:attach", addon, "--as", "ONE", "-a", "list-two"), ["ONE"]),
        (("addons:attach", addon, "-a", "nope-app"), ["Couldn't find that app"]),
        (("addons:detach", "NOPE", "-a", "list-two"), ["attachment"]),
    )
    detached = cli("addons:detach", "ONE", "-a", "list-two", merge=True)
    assert detached.lines == [
        f"Detaching ONE to {addon} from ⬢ list-two... done",
        "Unsetting ONE config vars and restarting ⬢ list-two... done, v3",
    ]
    last = cli("addons:detach", "SECURE", "-a", "list-one")
    one_clear_line(last, "no other attachment", "Destroy the add-on")


def test_destroy_refusals_and_wrong_answers_change_nothing(cli: Cli, http: httpx.Client) -> None:
    """Attached elsewhere, no terminal, a wrong --confirm or typed answer: nothing is destroyed."""
    addon = make_app(http, "keep-one", "securekey:fortnightly")
    make_app(http, "keep-two")
    http.post("/addon-attachments", json={"addon": addon, "app": "keep-two", "name": "KEEP"})
    refused = cli("addons:destroy", addon, "-a", "keep-one", "--confirm", "keep-one")
    assert refused.code == 1
    assert refused.err_lines == [
        f" ▸    {addon} is still attached to other apps; destroying it would break them:",
        "       KEEP on ⬢ keep-two",
        " ▸    Detach them first (securekey addons:detach KEEP -a keep-two), or re-run with "
        "--force to detach it everywhere.",
    ]
    assert cli("addons:detach", "KEEP", "-a", "keep-two").code == 0
    fails(
        cli,
        (("addons:destroy", addon, "-a", "keep-one"), ["not a terminal", "--confirm keep-one"]),
        (("addons:destroy", addon, "-a", "keep-one", "--confirm", "keep-two"),
         ["Confirmation keep-two did not match keep-one"]),
        (("addons:destroy", addon, "-a", "keep-two", "--confirm", "keep-two"),
         ["billed to keep-one"]),
        (("addons:destroy", "no-such-addon", "-a", "keep-one"), ["Couldn't find that add-on"]),
    )  # fmt: skip
    typed = cli.pty(
        "addons:destroy", addon, "-a", "keep-one", answers=[("> ", "keep-two")],
        env=cli.env(NO_COLOR="1"),
    )  # fmt: skip
    assert typed.code == 1
    assert typed.lines[-2:] == [
        "> keep-two",
        " ▸    Confirmation keep-two did not match keep-one. Aborted.",
    ]
    assert "SECURE_KEY" in http.get("/apps/keep-one/config-vars").json()


def test_destroy_with_force_and_the_remove_alias(cli: Cli, http: httpx.Client) -> None:
    """--force detaches everywhere; ``addons:remove`` is the same command."""
    addon = make_app(http, "force-one", "securekey:fortnightly")
    make_app(http, "force-two")
    http.post("/addon-attachments", json={"addon": addon, "app": "force-two"})
    forced = cli("addons:remove", addon, "-a", "force-one", "--confirm", "force-one", "--force")
    assert forced.err == f"Destroying {addon} on ⬢ force-one... done\n"
    assert "SECURE_KEY" not in http.get("/apps/force-two/config-vars").json()


def test_rotate_emergency_and_key_history(cli: Cli, http: httpx.Client) -> None:
    """Rotation keeps the old LATEST; emergency replaces both, only after confirmation."""
    addon = make_app(http, "rot-app", "securekey:fortnightly")
    before = http.get("/apps/rot-app/config-vars").json()["SECURE_KEY"].split(",")
    fails(
        cli,
        (("addons:rotate", addon, "--emergency"), ["not a terminal", f"--confirm {addon}"]),
        (("addons:rotate", addon, "--emergency", "--confirm", "x"), ["did not match"]),
        (("addons:rotate", "no-such-addon"), ["Couldn't find that add-on"]),
        (("addons:keys", "no-such-addon"), ["Couldn't find that add-on"]),
    )
    assert http.get("/apps/rot-app/config-vars").json()["SECURE_KEY"].split(",") == before
    typed = cli.pty(
        "addons:rotate", addon, "--emergency", answers=[("> ", addon)], env=cli.env(NO_COLOR="1")
    )
    assert typed.code == 0, typed.out
    assert typed.lines[:3] == [
        " ▸    WARNING: Emergency rotation",
        f" ▸    This replaces both keys of {addon} at once: clients holding",
        " ▸    either old key fail until they load the new pair",
    ]
    assert f"Rotating (emergency) {addon}... done" in typed.lines
    after = http.get("/apps/rot-app/config-vars").json()["SECURE_KEY"].split(",")
    assert not set(after) & set(before)
    keys, history = cli.many([("addons:keys", addon), ("addons:keys", addon, "--json")])
    assert keys.lines[0].split() == ["Version", "State", "Fingerprint", "Created", "Retired"]
    states = [line.split()[1] for line in keys.lines[2:]]
    assert states == ["latest", "previous", "revoked", "revoked"]
    assert [k["version"] for k in json.loads(history.out)] == [4, 3, 2, 1]
    rotated = json.loads(cli("addons:rotate", addon, "--json").out)
    assert rotated["emergency"] is False
    assert rotated["fingerprints"]["previous"] == json.loads(history.out)[0]["fingerprint"]


def test_a_refused_action_prints_its_cut_short_line(cli: Cli) -> None:
    """A failed action ends its progress line with ``!`` before the error, as Heroku does."""
    result = cli("addons:create", "securekey:daily", "-a", "ghost-app")
    one_clear_line(result)
    assert result.err_lines[0] == "Creating securekey:daily on ⬢ ghost-app... !"
