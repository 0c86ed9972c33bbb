"""The seed walkthrough, verbatim, through the ``securekey`` CLI against a real server."""

from __future__ import annotations

import re

from tests.cli.conftest import Cli, strip_ansi

PAIR = re.compile(r"[0-9A-F]{64},[0-9A-F]{64}")


def grep(lines: list[str], word: str) -> list[str]:
    """What ``| grep word`` would keep."""
    return [line for line in lines if word in line]


def test_seed_walkthrough_line_by_line(cli: Cli) -> None:
    """Every line the seed shows comes out exactly, with product.md's release numbers."""
    assert cli("apps:create", "service-1", merge=True).lines == ["Creating ⬢ service-1... done"]
    assert cli("apps:create", "service-2", merge=True).lines == ["Creating ⬢ service-2... done"]

    created = cli("addons:create", "securekey:fortnightly", "-a", "service-1", merge=True)
    assert created.code == 0, created.out
    assert created.lines[0] == "Creating securekey:fortnightly on ⬢ service-1... free"
    made = re.fullmatch(r"Created (securekey-[a-z]+-\d+) as SECURE_KEY", created.lines[1])
    assert made is not None, created.lines
    assert len(created.lines) == 2
    addon = made.group(1)

    config_1 = cli("config", "-a", "service-1")
    assert config_1.lines[0] == "=== service-1 Config Vars"
    [line] = grep(config_1.lines, "SECURE_KEY")
    name, _, pair = line.partition(": ")
    assert name == "SECURE_KEY"
    assert PAIR.fullmatch(pair)

    attached = cli(
        "addons:attach", addon, "--as", "SERVICE_ONE_SECURE", "-a", "service-2", merge=True
    )
    assert attached.lines == [
        f"Attaching {addon} as SERVICE_ONE_SECURE to ⬢ service-2... done",
        "Setting SERVICE_ONE_SECURE config vars and restarting ⬢ service-2... done, v2",
    ]
    assert grep(cli("config", "-a", "service-2").lines, "SERVICE_ONE_SECURE_KEY") == [
        f"SERVICE_ONE_SECURE_KEY: {pair}"
    ]

    rotated = cli("addons:rotate", addon, merge=True)
    assert rotated.code == 0, rotated.out
    assert rotated.lines[:3] == [
        f"Rotating {addon}... done",
        f"Released ⬢ service-1 v3: Update SECURE by {addon}",
        f"Released ⬢ service-2 v3: Update SERVICE_ONE_SECURE by {addon}",
    ]
    [after_1] = grep(cli("config", "-a", "service-1").lines, "SECURE_KEY")
    [after_2] = grep(cli("config", "-a", "service-2").lines, "SERVICE_ONE_SECURE_KEY")
    new_pair = after_1.partition(": ")[2]
    assert after_2 == f"SERVICE_ONE_SECURE_KEY: {new_pair}"
    assert new_pair.split(",")[1] == pair.split(",")[0], "the old LATEST is now PREVIOUS"
    assert new_pair.split(",")[0] not in pair

    detached = cli("addons:detach", "SERVICE_ONE_SECURE", "-a", "service-2", merge=True)
    assert detached.lines == [
        f"Detaching SERVICE_ONE_SECURE to {addon} from ⬢ service-2... done",
        "Unsetting SERVICE_ONE_SECURE config vars and restarting ⬢ service-2... done, v4",
    ]

    destroyed = cli.pty(
        "addons:destroy",
        addon,
        "-a",
        "service-1",
        answers=[("> ", "service-1")],
        env=cli.env(NO_COLOR="1"),
    )
    assert destroyed.code == 0, destroyed.out
    assert destroyed.lines == [
        " ▸    WARNING: Destructive Action",
        " ▸    This command will affect the app service-1",
        " ▸    To proceed, type service-1 or re-run this command with",
        " ▸    --confirm service-1",
        "> service-1",
        f"Destroying {addon} on ⬢ service-1... done",
    ]
    assert cli("config", "-a", "service-1").lines == ["=== service-1 Config Vars"]
    assert cli("addons", "--json").out.strip() == "[]"


def test_colour_on_a_terminal_keeps_the_same_text(cli: Cli) -> None:
    """On a terminal the glyph and names are coloured, and without the codes the text is equal."""
    cli("apps:create", "colour-app")
    coloured = cli.pty("apps:info", "-a", "colour-app")
    plain = cli.pty("apps:info", "-a", "colour-app", env=cli.env(NO_COLOR="1"))
    assert coloured.code == plain.code == 0
    assert "\x1b[" in coloured.out
    assert "\x1b[" not in plain.out
    assert strip_ansi(coloured.out) == plain.out
    made = cli.pty("addons:create", "securekey:daily", "-a", "colour-app")
    text = strip_ansi(made.out)
    assert "Creating securekey:daily on ⬢ colour-app... free" in text
    assert "\x1b[35m⬢ colour-app" in made.out, "the app and its glyph in Heroku's magenta"
