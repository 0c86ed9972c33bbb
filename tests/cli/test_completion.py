"""bash completion (issue 12, point 5): colon commands, and app / add-on names from the server.

The completion function that ``--show-completion bash`` prints is sourced into a real bash and
called the way bash calls it: ``COMP_WORDS`` split at ``:`` (bash's default
``COMP_WORDBREAKS``), ``COMP_CWORD``, ``COMP_LINE`` and ``COMP_POINT``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Cli, make_app

_CALL = r"""
source <(securekey --show-completion bash)
[[ $COMP_WORDBREAKS == *:* ]] || { echo "no colon in COMP_WORDBREAKS"; exit 3; }
COMP_LINE=$1
COMP_POINT=${#COMP_LINE}
# What bash itself would pass: words split at spaces and at ':'.
read -r -a COMP_WORDS <<< "${COMP_LINE//:/ : }"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_securekey_completion securekey "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def complete(cli: Cli, line: str) -> list[str]:
    """What bash would offer for ``line`` (cursor at its end)."""
    if shutil.which("bash") is None:
        if os.environ.get("CI"):
            pytest.fail("bash is needed for the completion tests")
        pytest.skip("bash missing")
    env = cli.env()
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-c", _CALL, "complete", line],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return [w for w in done.stdout.splitlines() if w]


def test_colon_commands_complete_after_the_colon(bare_cli: Cli) -> None:
    """addons:cr completes to 'create' (bash keeps 'addons:'); apps: lists apps' subcommands."""
    assert complete(bare_cli, "securekey addons:cr") == ["create"]
    after_colon = complete(bare_cli, "securekey apps:")
    assert {"create", "info", "destroy"} <= set(after_colon)
    assert all(":" not in w for w in after_colon)
    assert "audit" in complete(bare_cli, "securekey au")
    assert {"config", "config:get", "config:set"} <= set(complete(bare_cli, "securekey con"))


def test_app_and_addon_names_come_from_the_server(cli: Cli, http: httpx.Client) -> None:
    """-a completes app names and ADDON add-on names, asked of the server, then cached briefly."""
    addon = make_app(http, "cmp-one", "securekey:weekly")
    make_app(http, "cmp-two")
    assert {"cmp-one", "cmp-two"} <= set(complete(cli, "securekey config -a cmp-"))
    assert complete(cli, "securekey addons:info " + addon[:12]) == [addon]
    cached = list((cli.home / ".cache" / "securekey").glob("names-*.json"))
    assert cached
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in cached)
    assert "sko_" not in "".join(p.read_text() for p in cached)
    # Within the cache time a new app is not asked for again. The cache is marked fresh now: on
    # a loaded machine the completions above may have taken longer than the cache time.
    make_app(http, "cmp-three")
    for path in cached:
        os.utime(path)
    assert "cmp-three" not in complete(cli, "securekey config -a cmp-")


def test_completion_without_a_server_offers_nothing(bare_cli: Cli) -> None:
    """With no login the name completion quietly offers nothing (no error text, no traceback)."""
    assert complete(bare_cli, "securekey config -a ") == []
