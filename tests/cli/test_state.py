"""The walkthrough through ``securekey`` and straight through the API ends in the same state."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.cli.conftest import Cli
from tests.servers import Server, running_server
from tests.state import normalised, snapshot


def cli_walkthrough(cli: Cli) -> None:
    """product.md's walkthrough with the ``securekey`` CLI (a rotation in the middle)."""
    assert cli("apps:create", "service-1").code == 0
    assert cli("apps:create", "service-2").code == 0
    created = cli("addons:create", "securekey:fortnightly", "-a", "service-1")
    found = re.search(r"Created (\S+) as SECURE_KEY", created.out)
    assert found is not None, created.err
    addon = found.group(1)
    steps = [
        ("addons:attach", addon, "--as", "SERVICE_ONE_SECURE", "-a", "service-2"),
        ("addons:rotate", addon),
        ("addons:detach", "SERVICE_ONE_SECURE", "-a", "service-2"),
        ("addons:destroy", addon, "-a", "service-1", "--confirm", "service-1"),
        ("addons:create", "securekey:fortnightly", "-a", "service-2", "--as", "LEFT"),
    ]
    for step in steps:
        result = cli(*step)
        assert result.code == 0, (step, result.err)


def api_walkthrough(http: httpx.Client) -> None:
    """The same walkthrough as raw Heroku Platform API calls."""
    for name in ("service-1", "service-2"):
        assert http.post("/apps", json={"name": name}).status_code == 201
    body = {"attachment": {}, "config": {}, "plan": {"name": "securekey:fortnightly"}}
    addon = http.post("/apps/service-1/addons", json=body).json()
    attach = {"addon": {"name": addon["name"]}, "app": {"name": "service-2"}}
    att = http.post("/addon-attachments", json={**attach, "name": "SERVICE_ONE_SECURE"}).json()
    assert http.post(f"/addons/{addon['id']}/actions/rotate", json={}).status_code == 200
    assert http.delete(f"/addon-attachments/{att['id']}").status_code == 200
    gone = http.request(
        "DELETE", f"/apps/{addon['app']['id']}/addons/{addon['id']}", json={"force": False}
    )
    assert gone.json()["state"] == "deprovisioned"
    body = {"attachment": {"name": "LEFT"}, "plan": {"name": "securekey:fortnightly"}}
    assert http.post("/apps/service-2/addons", json=body).status_code == 201


def test_cli_and_api_leave_the_same_state(cli: Cli, server: Server, tmp_path: Path) -> None:
    """Apps, add-ons, attachments, release numbers and descriptions, var names all agree."""
    cli_walkthrough(cli)
    with running_server(tmp_path / "api-data") as other, other.client() as http:
        api_walkthrough(http)
        by_api = normalised(snapshot(http))
    with server.client() as http:
        by_cli = normalised(snapshot(http))
    assert by_cli == by_api
    assert by_cli["apps"]["service-2"]["releases"] == [
        (1, "Initial release"),
        (2, "Attach SERVICE_ONE_SECURE (@ref:addon-1)"),
        (3, "Update SERVICE_ONE_SECURE by addon-1"),
        (4, "Detach SERVICE_ONE_SECURE (@ref:addon-1)"),
        (5, "Attach LEFT (@ref:addon-2)"),
    ]
    assert by_cli["attachments"] == [{"app": "service-2", "name": "LEFT", "addon": "addon-2"}]
