"""Help with an example on every command, version, completion, and the kept server flags."""

from __future__ import annotations

import re
import subprocess
import sys

from securekey import __version__
from tests.cli.conftest import Cli

#: Each command and where its help's example starts (aliases show the command they alias).
ALIASES = {"addons:remove": "addons:destroy", "config:remove": "config:unset"}


def commands(cli: Cli) -> list[str]:
    """The command names ``securekey --help`` lists."""
    text = cli("--help").out
    listed = text.split("Commands:", 1)[1]
    return re.findall(r"^  ([a-z:]+)\s", listed, re.MULTILINE)


def test_every_command_has_help_with_an_example(bare_cli: Cli) -> None:
    """``--help`` works on every command and shows at least one ``$ securekey …`` example."""
    names = commands(bare_cli)
    assert {"apps:create", "addons:create", "addons:destroy", "config", "run", "server"} <= set(
        names
    )
    helps = bare_cli.many([(name, "--help") for name in names if name != "run"])
    for name, result in zip([n for n in names if n != "run"], helps, strict=True):
        assert result.code == 0, (name, result.err)
        assert "Example:" in result.out, name
        assert f"$ securekey {ALIASES.get(name, name)}" in result.out, name
        assert max(len(line) for line in result.lines) <= 100, name


def test_run_help_has_the_layout_of_every_command(bare_cli: Cli) -> None:
    """``securekey run --help``: Usage, description, Example, Options, as the other commands."""
    result = bare_cli("run", "--help")
    assert result.code == 0, result.err
    assert result.out.startswith("Usage: securekey run [OPTIONS] -- COMMAND [ARGS]...")
    assert "  Example:\n    $ SECUREKEY_TOKEN=ska_… securekey run -a service-2" in result.out
    assert "\nOptions:\n" in result.out
    assert "  -a, --app APP " in result.out
    assert "SECUREKEY_ENV_FILE" in result.out
    assert result.lines[-1].startswith("  -h, --help ")
    assert max(len(line) for line in result.lines) <= 100


def test_version_and_flag(bare_cli: Cli) -> None:
    """``version`` and ``--version`` print the package version."""
    assert bare_cli("version").out == f"securekey {__version__}\n"
    assert bare_cli("--version").out == f"securekey {__version__}\n"


def test_server_keeps_its_flags(bare_cli: Cli) -> None:
    """``securekey server`` still takes every flag the tests and the README use."""
    text = bare_cli("server", "--help").out
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--database-url",
        "--scheduler-interval",
        "--log-level",
    ):
        assert flag in text


def test_completion_installs_for_bash(bare_cli: Cli) -> None:
    """From bash, ``--install-completion`` writes a script that ~/.bashrc sources."""
    command = f"{sys.executable} -m securekey --install-completion; exit $?"
    done = subprocess.run(
        ["bash", "-c", command],
        env=bare_cli.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "bash completion installed" in done.stdout
    script = bare_cli.home / ".bash_completions" / "securekey.sh"
    assert "_SECUREKEY_COMPLETE" in script.read_text()
    assert str(script) in (bare_cli.home / ".bashrc").read_text()


def test_unknown_command_is_a_usage_error(bare_cli: Cli) -> None:
    """A mistyped command exits 2 with click's usage message, not a traceback."""
    result = bare_cli("apps:craete", "x")
    assert result.code == 2
    assert "No such command" in result.err
    assert "Traceback" not in result.err
