"""``addons:rotate --all | --plan | --app``: the incident command, against one real server.

The module has a server of its own, so ``--all`` sees only the add-ons made here.
"""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import Cli, fails, make_app


def _versions(http: httpx.Client) -> dict[str, int]:
    return {a["name"]: a["securekey"]["key_version"] for a in http.get("/addons").json()}


def _pair(http: httpx.Client, app: str, var: str) -> set[str]:
    return set(http.get(f"/apps/{app}/config-vars").json()[var].split(","))


def test_rotate_by_plan_app_and_all_with_progress_and_json(cli: Cli, http: httpx.Client) -> None:
    """Each filter rotates exactly its add-ons, reports progress on stderr and counts on stdout."""
    daily = make_app(http, "rot-a", "securekey:daily")
    weekly = make_app(http, "rot-b", "securekey:weekly")
    monthly = make_app(http, "rot-c", "securekey:monthly")
    attached = http.post(
        "/addon-attachments", json={"addon": daily, "app": "rot-b", "name": "FROM_A"}
    )
    assert attached.status_code == 201

    by_plan = cli("addons:rotate", "--plan", "securekey:weekly", "--confirm", "securekey:weekly")
    assert by_plan.code == 0, by_plan.err
    assert by_plan.lines == ["Rotated 1 add-on (1 releases)"]
    assert "Rotating add-ons on securekey:weekly: 1/1" in by_plan.err_lines
    assert _versions(http) == {daily: 2, weekly: 3, monthly: 2}

    old = {var: _pair(http, "rot-b", var) for var in ("SECURE_KEY", "FROM_A_KEY")}
    emergency = cli("addons:rotate", "-a", "rot-b", "--emergency", "--confirm", "rot-b", "--json")
    assert emergency.code == 0, emergency.err
    summary = json.loads(emergency.out)
    assert summary == {
        "matched": 2,
        "rotated": 2,
        "releases": 3,
        "failed": [],
        "emergency": True,
    }
    for var, keys in old.items():
        assert not keys & _pair(http, "rot-b", var)
    assert _versions(http) == {daily: 4, weekly: 5, monthly: 2}

    counted = cli("addons:rotate", "--all", "--dry-run")
    assert (counted.code, counted.lines) == (0, ["3 add-ons match; nothing rotated."])
    everything = cli("addons:rotate", "--all", "--confirm", "all", "--batch-size", "1")
    assert everything.code == 0, everything.err
    steps = [line for line in everything.err_lines if line.startswith("Rotating every add-on")]
    assert steps == [f"Rotating every add-on: {n}/3" for n in (1, 2, 3)]
    assert _versions(http) == {daily: 5, weekly: 6, monthly: 3}


def test_on_a_terminal_it_asks_and_shows_a_progress_bar(cli: Cli, http: httpx.Client) -> None:
    """On a terminal the warning names the count, typing the plan confirms, a bar shows 1/1."""
    addon = make_app(http, "rot-tty", "securekey:fortnightly")
    done = cli.pty(
        "addons:rotate",
        "--plan",
        "securekey:fortnightly",
        answers=[("> ", "securekey:fortnightly")],
        env=cli.env(NO_COLOR="1"),
    )
    assert done.code == 0, done.out
    assert "WARNING: Rotation of 1 add-on" in done.out
    assert "1/1" in done.out
    assert "━" in done.out  # the bar itself
    assert "Rotated 1 add-on (1 releases)" in done.out
    assert _versions(http)[addon] == 3


def test_bad_filters_and_missing_confirmation_change_nothing(cli: Cli, http: httpx.Client) -> None:
    """Several or no filters, an unknown plan or app, no or a wrong confirmation: one clear line."""
    make_app(http, "rot-refused", "securekey:daily")
    before = _versions(http)
    fails(
        cli,
        (("addons:rotate",), ["Give an ADDON, or exactly one of --all, --plan PLAN, --app APP"]),
        (("addons:rotate", "--all", "--plan", "securekey:daily"), ["exactly one of"]),
        (("addons:rotate", "some-addon", "--app", "rot-refused"), ["exactly one of"]),
        (("addons:rotate", "--plan", "securekey:hourly", "--confirm", "x"), ["plan"]),
        (("addons:rotate", "--app", "no-such-app", "--confirm", "x"), ["Couldn't find that app"]),
        (("addons:rotate", "--all"), ["not a terminal", "--confirm all"]),
        (("addons:rotate", "--all", "--confirm", "everything"), ["did not match all"]),
        (("addons:rotate", "-a", "rot-refused", "--confirm", "all"), ["did not match rot-refused"]),
    )
    assert _versions(http) == before
