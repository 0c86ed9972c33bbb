"""The seed walkthrough through `securekey` and through the real Heroku CLI ends in one state.

Issue 4's third acceptance point: two fresh servers, the same walkthrough (both apps, create,
attach --as, a rotation, detach, destroy, one more add-on), one driven by our CLI and one by
the unmodified Heroku CLI; their apps, attachments, add-ons, config var names and every
release (number and description) are compared after normalising generated names and keys.
The Heroku CLI has no rotate command, so that one step goes through the HTTP API, as a
Heroku user would script it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.cli.test_state import cli_walkthrough
from tests.e2e.test_heroku_cli import Heroku, _cli, has_line
from tests.servers import running_server
from tests.state import normalised, snapshot

pytestmark = pytest.mark.slow


def heroku_walkthrough(heroku: Heroku, rotate: object) -> None:
    """The walkthrough of tests/cli/test_state.py, in the Heroku CLI's words."""
    heroku("apps:create", "service-1", "--no-remote")
    heroku("apps:create", "service-2", "--no-remote")
    created = heroku("addons:create", "securekey:fortnightly", "-a", "service-1")
    addon = has_line(created, r"Created (securekey-[a-z]+-\d+) as SECURE_KEY").group(1)
    heroku("addons:attach", addon, "--as", "SERVICE_ONE_SECURE", "-a", "service-2")
    rotate(addon)  # type: ignore[operator]
    heroku("addons:detach", "SERVICE_ONE_SECURE", "-a", "service-2")
    heroku("addons:destroy", addon, "-a", "service-1", "--confirm", "service-1")
    heroku("addons:create", "securekey:fortnightly", "-a", "service-2", "--as", "LEFT")


def test_securekey_cli_and_heroku_cli_leave_the_same_state(tmp_path: Path) -> None:
    """Apps, add-ons, attachments, var names and releases agree between the two CLIs."""
    binary = _cli()
    with running_server(tmp_path / "ours") as ours:
        cli_walkthrough(Cli(tmp_path / "cli-home", ours))
        with ours.client() as http:
            by_securekey = normalised(snapshot(http))
    with running_server(tmp_path / "heroku") as theirs, theirs.client() as http:

        def rotate(addon: str) -> None:
            assert http.post(f"/addons/{addon}/actions/rotate", json={}).status_code == 200

        heroku_walkthrough(Heroku(binary, theirs, tmp_path / "heroku-home"), rotate)
        by_heroku = normalised(snapshot(http))
    assert by_heroku == by_securekey
    releases = by_heroku["apps"]["service-2"]["releases"]
    assert [v for v, _ in releases] == [1, 2, 3, 4, 5]
    assert re.fullmatch(r"Update SERVICE_ONE_SECURE by addon-1", releases[2][1])
